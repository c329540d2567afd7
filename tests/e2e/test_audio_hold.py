"""Hold and resume keep audio through the relay (issue 14, "What it must show"): the router
of tests/e2e/test_audio.py (serlite on the UCI-generated config, option relay 'auto'), a LAN
phone calling a WAN phone; one side puts the call on hold (a re-INVITE with ``a=sendonly``,
answered ``a=recvonly``, RFC 3264 8.4) and resumes it (a re-INVITE ``a=sendrecv``); after the
resume each side hears the other's tone for most of the time left.

The phones are linphonec (tests/e2e/linphone.py), not baresip: baresip 1.0 (Debian 12's)
stops decoding what it receives after hold and resume, with direct media too (two LAN phones,
no relay: each recording holds the 2 s before the hold and nothing of the 3 s after the
resume, while baresip's own status line shows 43 kbit/s coming in and the relay, in the
relayed call, counted ~156 packets relayed each way after the resume to the same latched
addresses).  That is baresip's, not the relay's."""

import time

import pytest

from . import audio
from .linphone import LinphonePhone
from .test_audio import HEARD_SHARE, net, router  # noqa: F401

BEFORE_HOLD = 1.5       # seconds of audio before the hold,
ON_HOLD = 1.5           # ... on hold,
RESUMED = 3.0           # ... and after the resume
PACKETS_PER_SECOND = 50     # G.711 at 20 ms


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
