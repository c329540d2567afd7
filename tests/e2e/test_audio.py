"""Calls you can hear (issue 14): real phones in network namespaces, each playing its own tone
and recording what it hears, call each other through serlite on the router.

The topology is tests/e2e/netns.py's ``Net(phones=True)``: two phones on the house's LAN
(192.168.77.2 and .3, each in its own namespace, on the router's br-lan), the router (serlite on the UCI-generated config, ``wan_open 1``, one
``config user`` per phone, an nftables masquerade on its WAN as OpenWrt's firewall4 does), a
phone on the Internet (192.0.2.10, no NAT) and a phone behind a second home's NAT (192.168.1.2
behind 203.0.113.2).  Every phone registers to the router (the LAN phones at its LAN address,
the others at its WAN address) and dials the other's extension.

Each phone is a headless baresip: its audio source is a WAV file of one tone (``aufile``) and
the ``sndfile`` filter writes the call's decoded audio (what the phone would play) and encoded
audio (what it sent) to files.  tests/e2e/audio.py says which tone a recording holds and for
what share of the call (the length of the audio the same phone sent).

Without a relay, media crosses the router's NAT in no direction that the SDP can name: the LAN
phone's SDP names 192.168.77.2, which no one outside can reach.  The generated config (option
relay 'auto', the default) sends the audio of every call between the LAN and elsewhere through
the built-in relay (rtpproxy_manage), and leaves calls between two LAN phones direct.

Bounded: each call lasts CALL_SECONDS, each phone step WAIT seconds, baresip quits by itself
after 120 s (-t); the module takes about 30 s.  Needs root, ip, nft and baresip.
"""

import glob
import os
import re
import shutil
import struct
import subprocess
import threading
import time
import wave

import pytest

from . import audio, netns
from .netns import (HOME2_PHONE, LAN6_PHONE, LAN6_PHONE2, LAN_PHONE, LAN_PHONE2, ROUTER_LAN,
                    ROUTER_LAN6, ROUTER_WAN, ROUTER_WAN6, WAN6_PHONE, WAN_PHONE)
from .test_attack import PASSWORD, USER, RouterServer, generate
from .test_phones import Baresip, Output

CALL_SECONDS = 3.0          # of audio per call
HEARD_SHARE = 0.75          # "for most of the call"
SETUP_SECONDS = 6           # dial to answer: well under 1 s when it works
TONES = {"lan": 440, "lan2": 1000, "wan": 600, "home2": 1400, "lan6": 440, "lan2_6": 1000,
         "wan6": 600}


class OneWayAudio(AssertionError):
    """A phone in an established call did not hear the other's tone for most of the call."""


class NotConnected(AssertionError):
    """The callee never saw the call established."""


# Where each phone lives: namespace attribute of Net, its address, its extension, and the
# router address it registers to.
PLACES = {
    "lan": ("lan", LAN_PHONE, USER, ROUTER_LAN),
    "lan2": ("lan2", LAN_PHONE2, "101", ROUTER_LAN),
    "wan": ("internet", WAN_PHONE, "200", ROUTER_WAN),
    "home2": ("home2lan", HOME2_PHONE, "300", ROUTER_WAN),
    # Net(ipv6=True): the same phones on IPv6 only (tests/e2e/test_audio_v6.py)
    "lan6": ("lan", LAN6_PHONE, USER, ROUTER_LAN6),
    "lan2_6": ("lan2", LAN6_PHONE2, "101", ROUTER_LAN6),
    "wan6": ("internet", WAN6_PHONE, "200", ROUTER_WAN6),
}


def host(address):
    """An address as a SIP URI's host: IPv6 in brackets (RFC 3261 25.1)."""
    return f"[{address}]" if ":" in address else address
PASSWORDS = {USER: PASSWORD, "101": "pw-101-lan2", "200": "pw-200-wan", "300": "pw-300-home2"}


class AudioPhone(Baresip):
    """baresip in a namespace at its own address: plays a tone file, records each call
    (sndfile), answers every call by itself, driven over ctrl_tcp inside its namespace."""

    def __init__(self, net, workdir, place, ctrl_port, user=None, answermode="auto",
                 registrar=None, password=None):
        """``registrar`` ("host:port"), ``password``: register elsewhere than at the router
        (a provider's phone at the provider: tests/e2e/test_provider_house.py)."""
        ns_attr, address, user_of_place, router = PLACES[place]
        registrar = registrar or router
        self.registered_at = "serlite" if registrar == router else None
        user = user or user_of_place
        self.net = net
        self.ns = getattr(net, ns_attr)
        self.name = f"{place}-{user}"
        self.place = place
        self.user = user
        self.registrar = registrar
        self.tone = TONES[place]
        self.dir = workdir / self.name
        self.dir.mkdir()
        tone = audio.tone_wav(self.dir / "tone.wav", self.tone, seconds=20)
        self.ctrl_port = ctrl_port
        (self.dir / "config").write_text(
            f"sip_listen\t{host(address)}:5060\n"
            f"net_interface\t{address}\n"        # SDP and RTP at the phone's own address
            "module_path\t/usr/lib/baresip/modules\n"
            "module\tg711.so\n"
            "module\taufile.so\n"
            "module\tsndfile.so\n"                # writes dump-TIME-{enc,dec}.wav per call
            "module\tctrl_tcp.so\n"
            "module_app\taccount.so\n"
            "module_app\tmenu.so\n"
            f"ctrl_tcp_listen\t127.0.0.1:{ctrl_port}\n"
            f"audio_source\taufile,{tone}\n"
            f"snd_path\t{self.dir}\n")
        (self.dir / "accounts").write_text(
            f"<sip:{user}@{host(registrar)};transport=udp>;"
            f"auth_pass={password or PASSWORDS[user]};"
            f"answermode={answermode}\n")
        self.proc = subprocess.Popen([*net.exec_args(self.ns), "baresip", "-f", str(self.dir),
                                      "-t", "120"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = Output(self.proc, self.name)
        self.sock = None
        self.events = []
        self.cond = threading.Condition()
        self.tokens = 0

    def wait_registered(self):
        family = "v6" if ":" in self.registrar else "v4"
        self.output.wait(rf"{self.user}@{re.escape(self.registrar)}: \{{0/UDP/{family}\}} "
                         + (r"200 OK \(serlite\)" if self.registered_at else "200 OK"))

    def connect(self):
        with self.net.inside(self.ns):
            super().connect()

    def recordings(self):
        """(heard, sent): the decoded and the encoded audio of the phone's one call."""
        heard = glob.glob(str(self.dir / "dump-*-dec.wav"))
        sent = glob.glob(str(self.dir / "dump-*-enc.wav"))
        assert len(heard) == 1 and len(sent) == 1, \
            f"{self.name}: want one call's recordings, found {heard + sent}"
        return heard[0], sent[0]


@pytest.fixture(scope="module")
def net():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"):
        pytest.fail("the audio tests need root, ip and nft: run tests/run as root (CI does)")
    if shutil.which("baresip") is None:
        pytest.fail("baresip is not installed: run tests/run, which installs it")
    n = netns.Net(pool_size=0, phones=True)
    yield n
    n.close()


@pytest.fixture(scope="module")
def router(net, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("router")
    users = "".join(f"\nconfig user\n\toption name '{u}'\n\toption password '{p}'\n"
                    for u, p in PASSWORDS.items() if u != USER)
    server = RouterServer(net, workdir, generate(workdir, users))
    server.start()
    yield server
    alive = server.running()
    server.stop()
    if not alive:
        pytest.fail("serlite exited during the audio tests:\n" + server.tail(), pytrace=False)


@pytest.fixture
def phones(request, net, router, tmp_path):
    """phones("lan", "wan") -> started, registered, connected AudioPhones; stopped after."""
    request.node._serlite_servers = [router]
    started = []

    def start(*places):
        """places: "lan", ... or (place, {AudioPhone's keyword arguments})."""
        for i, place in enumerate(places):
            place, kwargs = place if isinstance(place, tuple) else (place, {})
            started.append(AudioPhone(net, tmp_path, place, 4440 + i, **kwargs))
        for phone in started:
            phone.wait_registered()
            phone.connect()
        return started

    yield start
    for phone in started:
        phone.stop()


def call(caller, callee, seconds=CALL_SECONDS, during=None):
    """caller dials callee's extension; callee answers by itself; ``seconds`` of audio (then
    ``during()`` is called, the call still up); the caller hangs up.  Both phones are stopped
    (their recordings closed) before this returns."""
    caller.command("dial", callee.user)
    try:
        callee.wait_event("CALL_ESTABLISHED", timeout=SETUP_SECONDS)
    except AssertionError as e:
        raise NotConnected(str(e)) from None
    caller.wait_event("CALL_ESTABLISHED")
    time.sleep(seconds)             # the call itself: audio flows for this long
    if during is not None:
        during()
    caller.command("hangup")
    callee.wait_event("CALL_CLOSED")
    for phone in (caller, callee):
        phone.stop()


def assert_hear_each_other(*pair):
    """Each phone heard the other's tone for HEARD_SHARE of the call, and never its own."""
    hearings = {}
    for me, other in (pair, pair[::-1]):
        heard, sent = me.recordings()
        hearings[me.name] = h = audio.hearing(heard, sent, (me.tone, other.tone))
        assert h.call >= CALL_SECONDS * 0.8, f"{me.name}: a call of {h.call:.2f} s: {h}"
        assert h.seconds[me.tone] == 0, f"{me.name} hears its own tone: {h}"
    deaf = [f"{name}: {h}" for name, h in hearings.items()
            if h.share(next(p.tone for p in pair if p.name != name)) < HEARD_SHARE]
    if deaf:
        raise OneWayAudio("did not hear the other side for most of the call:\n"
                          + "\n".join(deaf) + f"\n(all: {hearings})")
    return hearings


# --- the helper itself ---------------------------------------------------------------------

def test_tone_analysis_says_which_tone_and_for_how_long(tmp_path):
    """A file of 1 s of 440 Hz, 0.5 s of silence, 1 s of 1000 Hz, each through G.711-like
    rounding: the helper finds each tone for its second, and silence as no tone."""
    a = audio.read_samples(audio.tone_wav(tmp_path / "a.wav", 440, seconds=1))[1]
    b = audio.read_samples(audio.tone_wav(tmp_path / "b.wav", 1000, seconds=1))[1]
    mixed = tmp_path / "mixed.wav"
    samples = [s & ~0x3f for s in a] + [0] * 4000 + [s & ~0x3f for s in b]
    with wave.open(str(mixed), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(audio.RATE)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    h = audio.Hearing(mixed, 2.5, (440, 1000, 600))
    assert h.seconds == {440: 1.0, 1000: 1.0, 600: 0.0}, h
    assert h.share(440) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        audio.tone_wav(tmp_path / "off-bin.wav", 441)


# --- calls ---------------------------------------------------------------------------------

def test_lan_phone_calls_lan_phone_and_both_hear_each_other(phones, router):
    """Direct media on the LAN, signalling through serlite: no relay needed, works today, and
    the router opens no socket for it (issue 14: LAN-to-LAN calls keep direct media)."""
    listeners = netns.udp_sockets(router.pid)
    assert listeners == sorted([f"{ROUTER_LAN}:5060", f"{ROUTER_WAN}:5060"]), listeners
    caller, callee = phones("lan", "lan2")
    during = []
    call(caller, callee, during=lambda: during.extend(netns.udp_sockets(router.pid)))
    assert during == listeners
    hearings = assert_hear_each_other(caller, callee)
    assert all(h.recorded >= CALL_SECONDS * HEARD_SHARE for h in hearings.values()), hearings


@pytest.mark.parametrize("caller,callee", [
    ("lan", "wan"),
    ("wan", "lan"),
    ("lan", "home2"),     # connects since mhomed=1: the INVITE leaves by the WAN
    ("home2", "lan"),
])
def test_a_call_across_the_routers_nat_is_heard_both_ways(phones, caller, callee):
    """The issue's fault: the call connects through serlite, and then one side hears nothing,
    because the LAN phone's SDP names an address (192.168.77.2) the far side cannot reach;
    the generated config relays these calls (option relay 'auto').

    Measured without the relay (3 s calls): LAN<->WAN, the WAN phone hears the LAN tone 96 %
    of the call (the LAN phone's RTP goes out masqueraded, and baresip plays what comes from
    anywhere)
    and the LAN phone hears nothing; home2->LAN, neither hears anything (both SDPs name
    private addresses)."""
    by_place = dict(zip((caller, callee), phones(caller, callee)))
    call(by_place[caller], by_place[callee])
    assert_hear_each_other(by_place[caller], by_place[callee])



EARLY_SECONDS = 1.0         # of early media from both phones before one answers


def relay_sessions(router, test, what, timeout=SETUP_SECONDS):
    """The relay's calls (ser-ctl rtpproxy) once ``test(sessions)`` holds, polled (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        sessions = router.ctl("rtpproxy")["sessions"]
        if test(sessions):
            return sessions
        if time.monotonic() > deadline:
            raise AssertionError(f"relay: no {what} within {timeout} s: {sessions}")
        time.sleep(0.1)


def test_a_call_to_two_phones_of_one_extension_is_heard_with_the_one_that_answers(
        phones, router):
    """Forking (issue 14): extension 200 has two phones, the WAN phone and the phone behind
    the second home's NAT (registered as 200 too).  The LAN phone dials 200; both ring with
    early media (183 with SDP: answermode early), each fork gets its own relay port facing
    the caller (the port facing the callees is shared); the WAN phone answers, the other is
    CANCELled and its fork's sockets are closed; the caller and the WAN phone hear each
    other; after BYE the relay holds no socket."""
    listeners = sorted([f"{ROUTER_LAN}:5060", f"{ROUTER_WAN}:5060"])
    caller, wan, home2 = phones("lan", ("wan", {"answermode": "early"}),
                                ("home2", {"user": "200", "answermode": "early"}))
    caller.command("dial", wan.user)
    early = relay_sessions(router, lambda s: s and len(s[0].get("forks", ())) == 2,
                           "a fork for each phone's early media")
    (session,) = early
    ports = {fork["streams"][0][0]["local"] for fork in session["forks"]}
    assert len(ports) == 2, session             # one caller-facing port per fork
    sockets = netns.udp_sockets(router.pid)
    assert len(sockets) == len(listeners) + 6, sockets
    time.sleep(EARLY_SECONDS)                   # early media flows for this long
    # baresip sends its early media to the last 183's port: that fork's phone gets it
    (session,) = router.ctl("rtpproxy")["sessions"]
    assert session["from_caller"]["packets"] > 0, session
    wan.command("accept")
    wan.wait_event("CALL_ESTABLISHED", timeout=SETUP_SECONDS)
    caller.wait_event("CALL_ESTABLISHED", timeout=SETUP_SECONDS)
    home2.wait_event("CALL_CLOSED", timeout=SETUP_SECONDS)      # CANCELled
    (answered,) = relay_sessions(router, lambda s: s and len(s[0]["forks"]) == 1,
                                 "fork closed after the answer")
    sockets = netns.udp_sockets(router.pid)
    assert len(sockets) == len(listeners) + 4, sockets
    (gone,) = ports - {answered["forks"][0]["streams"][0][0]["local"]}
    assert gone not in sockets, sockets         # the cancelled fork's port is given back
    time.sleep(CALL_SECONDS)                    # the call itself
    caller.command("hangup")
    wan.wait_event("CALL_CLOSED")
    for phone in (caller, wan, home2):
        phone.stop()
    assert netns.udp_sockets(router.pid) == listeners
    heard = {}
    for me, other in ((caller, wan), (wan, caller)):
        h = heard[me.name] = audio.hearing(*me.recordings(),
                                           (caller.tone, wan.tone, home2.tone))
        assert h.seconds[me.tone] == 0, f"{me.name} hears its own tone: {h}"
        assert h.seconds[other.tone] >= CALL_SECONDS * HEARD_SHARE, \
            OneWayAudio(f"{me.name} did not hear {other.name} for most of the call: {heard}")
