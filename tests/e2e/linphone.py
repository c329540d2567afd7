"""linphonec (Debian's linphone-cli) as a phone in a network namespace, for what baresip 1.0
cannot do: it stops decoding a call's audio after a re-INVITE that puts the call on hold and
back (tests/e2e/test_audio_hold.py says how that was found).

Driven over its stdin (linphonec's own commands), watched in its log file (-d 5: every
registration, call and stream state change; its stdout to a pipe is block-buffered); its
sound card is two files ("soundcard use files"): the tone it plays and the WAV it records
what it hears into, as tests/e2e/test_audio.py's AudioPhone (baresip) does.
linphone's network monitor takes a namespace without a default route (the internet one) for
"network down" a few seconds after the start and drops its registration without a word: a
test gives that namespace one (``default_route``).
(tests/e2e/test_phones.py's Linphonec is the one of docs/phones.md's settings, on loopback.)"""

import re
import subprocess
import time

from . import audio, netns
from .test_audio import PASSWORDS, PLACES, TONES


def default_route(net, place):
    """A default route in ``place``'s namespace if it has none (see the module's docstring):
    onlink out of its first link, so that only packets to nowhere else are concerned."""
    ns = getattr(net, PLACES[place][0])
    if "default" not in netns.run("ip", "-n", ns, "route", "show").stdout:
        dev = "uplink" if ns == net.internet else "eth0"
        netns.run("ip", "-n", ns, "route", "add", "default", "dev", dev)


class LinphonePhone:
    """linphonec in ``place``'s namespace (test_audio.PLACES), registered to the router,
    answering every call by itself (-a)."""

    def __init__(self, net, workdir, place):
        ns_attr, address, user, registrar = PLACES[place]
        self.net = net
        self.ns = getattr(net, ns_attr)
        self.name = f"{place}-{user}-linphone"
        self.place = place
        self.user = user
        self.address = address
        self.registrar = registrar
        self.tone = TONES[place]
        self.dir = workdir / self.name
        self.dir.mkdir()
        self.tone_file = audio.tone_wav(self.dir / "tone.wav", self.tone, seconds=30)
        self.heard_file = self.dir / "heard.wav"
        (self.dir / ".local" / "share" / "linphone").mkdir(parents=True)   # its database
        host = f"[{registrar}]" if ":" in registrar else registrar
        (self.dir / "linphonerc").write_text(
            "[sip]\n"
            "sip_port=5060\nsip_tcp_port=0\nsip_tls_port=0\n"
            f"bind_address={address}\n"
            "default_proxy=0\n"
            "[rtp]\naudio_rtp_port=7078\n"
            "[sound]\nechocancellation=0\n"
            "[net]\nfirewall_policy=0\n"
            "[video]\nenabled=0\ncapture=0\ndisplay=0\n"
            "[misc]\nenable_basic_to_client_group_chat_room_migration=0\n"
            "[audio_codec_0]\nmime=PCMU\nrate=8000\nchannels=1\nenabled=1\n"
            "[audio_codec_1]\nmime=PCMA\nrate=8000\nchannels=1\nenabled=1\n")
        self.proc = subprocess.Popen(
            [*net.exec_args(self.ns), "env", f"HOME={self.dir}", "linphonec", "-a",
             "-S", "-c", str(self.dir / "linphonerc"), "-d", "5", "-l", str(self.dir / "log")],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.send("soundcard use files")
        self.send(f"play {self.tone_file}")
        self.send(f"record {self.heard_file}")
        self.send(f"register sip:{user}@{host} sip:{host} {PASSWORDS[user]}")

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def log_text(self):
        try:
            return (self.dir / "log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self):
        return len(self.log_text())

    def wait(self, pattern, timeout=10, start=0):
        """The first match of ``pattern`` in linphonec's log from offset ``start`` (its
        messages name every state change: the registration, the call's, the streams')."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.log_text(), start)
            if found:
                return found
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{self.name}: no {pattern!r} within {timeout} s; log:\n"
                                     f"{self.log_text()[-3000:]}")
            time.sleep(0.05)

    def wait_registered(self):
        self.wait(r"to \[LinphoneRegistrationOk\]")

    def wait_call(self, state, timeout=10, start=0):
        """The call reached ``state`` (liblinphone's LinphoneCall<state>: Connected,
        StreamsRunning, Paused, PausedByRemote, End...)."""
        return self.wait(rf"moving from state LinphoneCall\w+ to LinphoneCall{state}\b",
                         timeout, start)

    def stop(self):
        """Unregister (a binding left behind would fork the next test's calls to a phone
        that is gone: linphonec's quit does not always wait for it), then quit."""
        if self.proc.poll() is None:
            try:
                start = self.mark()
                self.send("unregister")
                try:
                    self.wait(r"to \[LinphoneRegistrationCleared\]", 5, start)
                except AssertionError:
                    pass            # not registered: nothing to clear
                self.send("quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
