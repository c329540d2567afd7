"""Hold and resume keep audio through the relay (issue 14, "What it must show"): the router
of tests/e2e/test_audio.py (serlite on the UCI-generated config, option relay 'auto'), a LAN
phone calling a WAN phone; one side puts the call on hold (a re-INVITE with ``a=sendonly``,
answered ``a=recvonly``, RFC 3264 8.4) and resumes it (a re-INVITE back to sendrecv); after the
resume each side hears the other's tone for most of the time left.

The phones are linphonec (tests/e2e/linphone.py), not baresip: baresip 1.0 (Debian 12's)
stops decoding what it receives after hold and resume, with direct media too (two LAN phones,
no relay: each recording holds the 2 s before the hold and nothing of the 3 s after the
resume).  Relayed, the same: the relay counted ~156 packets relayed each way in the 3 s after
the resume, to the same latched addresses, and baresip's status line showed 43 kbit/s coming
in, yet nothing more was recorded.  That is baresip's, not the relay's.

A phone that vanishes mid-call (its process killed: no BYE; its link down): the other side's
BYE closes the relay's sockets at once; when both are gone, rtp_timeout s of silence on every
leg closes them and ends the call (``ser-ctl calls``)."""

import re
import time

import pytest

from . import audio, netns
from .linphone import LinphonePhone, default_route
from .netns import ROUTER_LAN
from .test_attack import USER, RouterServer, generate
from .test_audio import HEARD_SHARE, PASSWORDS, SETUP_SECONDS, net, phones  # noqa: F401

BEFORE_HOLD = 1.5       # seconds of audio before the hold,
ON_HOLD = 1.5           # ... on hold,
RESUMED = 3.0           # ... and after the resume
PACKETS_PER_SECOND = 50     # G.711 at 20 ms


RTP_TIMEOUT = 5         # s: the least rtpproxy's rtp_timeout allows


@pytest.fixture(scope="module")
def router(net, tmp_path_factory):      # noqa: F811 (test_audio's phones use this one)
    """test_audio's router (the UCI-generated config), its relay's rtp_timeout at the least."""
    workdir = tmp_path_factory.mktemp("router")
    users = "".join(f"\nconfig user\n\toption name '{u}'\n\toption password '{p}'\n"
                    for u, p in PASSWORDS.items() if u != USER)
    config, n = re.subn(r'(modparam\("rtpproxy", "rtp_port_max", \d+\)\n)',
                        rf'\1modparam("rtpproxy", "rtp_timeout", {RTP_TIMEOUT})\n',
                        generate(workdir, users))
    assert n == 1, config
    server = RouterServer(net, workdir, config)
    server.start()
    yield server
    alive = server.running()
    server.stop()
    if not alive:
        pytest.fail("serlite exited during the audio tests:\n" + server.tail(), pytrace=False)


def relayed(router):
    """(packets from the caller, packets from the callee) of the one relayed call."""
    (session,) = router.ctl("rtpproxy")["sessions"]
    return session["from_caller"]["packets"], session["from_callee"]["packets"]


def tail_share(phone, seconds, hz):
    """The share of the last ``seconds`` of what ``phone`` recorded that holds ``hz`` (a
    recording grows only while audio comes in: its end is the end of the call)."""
    blocks, block_seconds = audio.tone_blocks(phone.heard_file, (phone.tone, hz))
    tail = blocks[-round(seconds / block_seconds):]
    return tail.count(hz) * block_seconds / seconds, tail


@pytest.fixture
def linphones(request, net, router, tmp_path):  # noqa: F811
    request.node._serlite_servers = [router]
    started = []

    def start(*places):
        for place in places:
            default_route(net, place)
        started.extend(LinphonePhone(net, tmp_path, place) for place in places)
        for phone in started:
            phone.wait_registered()
        return started

    yield start
    for phone in started:
        phone.stop()


@pytest.mark.parametrize("holder", ["caller", "callee"])
def test_hold_and_resume_keep_the_audio_of_a_relayed_call(linphones, router, holder):
    caller, callee = linphones("lan", "wan")
    holding, other = (caller, callee) if holder == "caller" else (callee, caller)
    caller.send(f"call sip:{callee.user}@{caller.registrar}")
    for phone in (caller, callee):
        phone.wait_call("StreamsRunning")
    time.sleep(BEFORE_HOLD)

    marks = holding.mark(), other.mark()
    holding.send("pause")
    holding.wait_call("Paused", start=marks[0])
    other.wait_call("PausedByRemote", start=marks[1])
    holding.wait(r"a=sendonly", start=marks[0])     # its re-INVITE's offer ...
    other.wait(r"a=recvonly", start=marks[1])       # ... and the other side's answer
    time.sleep(ON_HOLD)

    marks = holding.mark(), other.mark()
    holding.send("resume")
    holding.wait_call("StreamsRunning", start=marks[0])
    other.wait_call("StreamsRunning", start=marks[1])
    before = relayed(router)
    time.sleep(RESUMED)
    after = relayed(router)
    print(f"packets relayed after the resume ({RESUMED} s), from the caller and the callee:",
          [a - b for a, b in zip(after, before)])
    caller.send("terminate")
    for phone in (caller, callee):
        phone.wait_call("Released")
    assert router.ctl("rtpproxy")["sessions"] == []       # the BYE closed it

    # the relay carried both directions after the resume ...
    want = PACKETS_PER_SECOND * RESUMED * HEARD_SHARE
    assert all(a - b >= want for a, b in zip(after, before)), (before, after)
    # ... and each phone heard the other's tone in it
    for me, them in ((caller, callee), (callee, caller)):
        share, tail = tail_share(me, RESUMED, them.tone)
        assert share >= HEARD_SHARE, f"{me.name} after the resume: {share:.0%} of " \
                                     f"{them.tone} Hz: {tail}"


# --- a phone that vanishes -----------------------------------------------------------------

def vanish(net, phone):
    """The phone is gone without a word: its process killed (no BYE), its link down."""
    phone.proc.kill()
    phone.proc.wait(5)
    netns.run("ip", "-n", phone.ns, "link", "set", "eth0", "down")


def back(net, router, phone):
    """Its namespace's link up again and its binding gone, for the module's next tests."""
    router.ctl("ul", "rm", phone.user)
    netns.run("ip", "-n", phone.ns, "link", "set", "eth0", "up")
    netns.run("ip", "-n", phone.ns, "route", "replace", "default", "via", ROUTER_LAN)


def wait_sockets(router, want, timeout):
    """Seconds until the server holds exactly the sockets ``want`` (polled every 50 ms)."""
    start = time.monotonic()
    while netns.udp_sockets(router.pid) != want:
        assert time.monotonic() - start < timeout, \
            f"after {timeout} s the server holds {netns.udp_sockets(router.pid)}, not {want}"
        time.sleep(0.05)
    return time.monotonic() - start


def established(router, caller, callee):
    """caller dials callee; both see it answered, and the relay carries it (more sockets)."""
    for phone in (caller, callee):      # one binding each: the call is not forked
        assert len(router.ctl("ul", "show", phone.user)) == 1, router.ctl("ul", "show")
    listeners = netns.udp_sockets(router.pid)
    caller.command("dial", callee.user)
    callee.wait_event("CALL_ESTABLISHED", timeout=SETUP_SECONDS)
    caller.wait_event("CALL_ESTABLISHED")
    time.sleep(1.0)                 # some audio: both sides latched
    assert len(netns.udp_sockets(router.pid)) == len(listeners) + 4
    (call,) = router.ctl("calls")["active"]
    assert call["state"] == "confirmed", call
    return listeners, call["call_id"]


def ended(router, call_id):
    """The call is no longer among ``ser-ctl calls``' active ones."""
    calls = router.ctl("calls")
    return all(c["call_id"] != call_id for c in calls["active"])


def test_a_vanished_phones_relay_is_closed_by_the_other_sides_bye(net, phones, router):
    """The LAN phone vanishes mid-call; the WAN phone's user hears nothing and hangs up: the
    BYE (relayed toward the vanished phone, which never answers it) closes the relay's
    sockets at once, and the call shows ended."""
    caller, callee = phones("lan", "wan")
    listeners, call_id = established(router, caller, callee)
    try:
        vanish(net, caller)
        callee.command("hangup")
        took = wait_sockets(router, listeners, timeout=2)
    finally:
        back(net, router, caller)
    print(f"relay sockets closed {took:.2f} s after the BYE")
    assert took < 1.0, f"{took:.2f} s after the BYE"
    assert ended(router, call_id)


def test_a_call_whose_phones_vanish_is_closed_after_rtp_timeout(net, phones, router):
    """Both phones vanish (no BYE will ever come): after rtp_timeout s of silence on every
    leg the relay closes the call's sockets, and the call shows ended."""
    caller, callee = phones("lan", "wan")
    listeners, call_id = established(router, caller, callee)
    try:
        vanish(net, caller)
        callee.proc.kill()
        callee.proc.wait(5)
        took = wait_sockets(router, listeners, timeout=RTP_TIMEOUT + 5)
    finally:
        back(net, router, caller)
    print(f"relay sockets closed {took:.2f} s after both phones vanished")
    # the relay's sweep runs every rtp_timeout / 4 s (at least 1 s)
    assert RTP_TIMEOUT - 0.5 <= took <= RTP_TIMEOUT + 2.5, f"closed {took:.2f} s after"
    assert ended(router, call_id), router.ctl("calls")
