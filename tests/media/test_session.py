"""serlite.media.session: legs, latching, counters, silence."""

from serlite.media import sdp
from serlite.media.session import CALLEE, CALLER, RTCP, RTP, RelaySession

CALLER_SDP = b"v=0\r\nc=IN IP4 192.168.1.50\r\nm=audio 4000 RTP/AVP 0\r\n"
CALLEE_SDP = b"v=0\r\nc=IN IP4 198.51.100.9\r\nm=audio 6000 RTP/AVP 0\r\na=rtcp:6100\r\n"


def _session(now=100.0):
    s = RelaySession("cid", "ftag", "192.168.1.1", "203.0.113.1", now)
    s.add_stream(20000, 20002)
    return s


def test_a_packet_goes_out_of_the_other_leg_to_its_phone_and_is_counted():
    s = _session()
    s.learn(CALLER, sdp.streams(CALLER_SDP))
    # before the answer: the callee's address is unknown, the caller's packet is dropped
    assert s.relay(0, CALLER, RTP, ("192.168.1.50", 4000), 172, 101.0) is None
    assert s.streams[0][CALLER].dropped == 1
    s.learn(CALLEE, sdp.streams(CALLEE_SDP))
    assert s.relay(0, CALLER, RTP, ("192.168.1.50", 4000), 172, 102.0) == ("198.51.100.9", 6000)
    assert s.relay(0, CALLER, RTCP, ("192.168.1.50", 4001), 80, 102.0) == ("198.51.100.9", 6100)
    assert s.relay(0, CALLEE, RTP, ("198.51.100.9", 6000), 160, 102.5) == ("192.168.1.50", 4000)
    assert s.totals() == [(2, 252), (1, 160)]
    assert s.ports(CALLER) == [20000] and s.ports(CALLEE) == [20002]


def test_latching_learns_the_nat_mapping_and_drops_strays():
    s = _session()
    s.learn(CALLER, sdp.streams(CALLER_SDP))
    s.learn(CALLEE, sdp.streams(CALLEE_SDP))
    # the caller is behind a NAT: its packets come from another address than its SDP's
    assert s.relay(0, CALLER, RTP, ("203.0.113.77", 31000), 100, 101.0) == ("198.51.100.9", 6000)
    assert s.relay(0, CALLEE, RTP, ("198.51.100.9", 6000), 100, 101.0) == ("203.0.113.77", 31000)
    # someone else sending to the caller's leg is not relayed
    assert s.relay(0, CALLER, RTP, ("192.0.2.66", 1234), 100, 101.0) is None
    assert s.streams[0][CALLER].stray == 1
    # a re-INVITE with the same SDP keeps the latched address; a new address latches afresh
    s.learn(CALLER, sdp.streams(CALLER_SDP))
    assert s.streams[0][CALLER].peer[RTP] == ("203.0.113.77", 31000)
    s.learn(CALLER, sdp.streams(CALLER_SDP.replace(b"4000", b"4100")))
    assert s.streams[0][CALLER].peer[RTP] == ("192.168.1.50", 4100)
    assert s.relay(0, CALLER, RTP, ("192.0.2.66", 1234), 100, 102.0) is not None


def test_asymmetric_sends_where_the_sdp_says():
    s = RelaySession("cid", "ftag", "a", "b", 0.0, symmetric=False)
    s.add_stream(20000, 20002)
    s.learn(CALLER, sdp.streams(CALLER_SDP))
    s.learn(CALLEE, sdp.streams(CALLEE_SDP))
    assert s.relay(0, CALLER, RTP, ("1.2.3.4", 5), 10, 1.0) == ("198.51.100.9", 6000)
    assert s.relay(0, CALLEE, RTP, ("6.7.8.9", 5), 10, 1.0) == ("192.168.1.50", 4000)


def test_the_sip_source_address_instead_of_a_private_sdp_one():
    s = _session()
    s.learn(CALLER, sdp.streams(CALLER_SDP), source_ip="203.0.113.77")
    assert s.streams[0][CALLER].peer == [("203.0.113.77", 4000), ("203.0.113.77", 4001)]


def test_hold_with_a_null_address_keeps_the_peer():
    s = _session()
    s.learn(CALLER, sdp.streams(CALLER_SDP))
    s.learn(CALLER, sdp.streams(CALLER_SDP.replace(b"192.168.1.50", b"0.0.0.0")))
    assert s.streams[0][CALLER].peer[RTP] == ("192.168.1.50", 4000)


def test_sides_of_requests_and_responses():
    s = _session()
    assert s.side_of("ftag", True) == CALLER
    assert s.side_of("other", True) == CALLEE       # the callee's BYE / re-INVITE
    assert s.side_of("ftag", False) == CALLEE       # the answer to the caller's INVITE
    assert s.side_of("other", False) == CALLER


def test_idle_after_silence():
    s = _session(now=100.0)
    assert not s.idle(159.0, 60) and s.idle(160.0, 60)
    s.learn(CALLEE, sdp.streams(CALLEE_SDP))
    s.relay(0, CALLER, RTP, ("1.2.3.4", 5), 10, 150.0)
    assert not s.idle(209.0, 60) and s.idle(210.0, 60)
    d = s.as_dict(210.0)
    assert d["from_caller"] == {"packets": 1, "bytes": 10} and d["silent"] == 60.0


def test_a_side_is_silent_while_nothing_came_from_it_after_the_answer():
    s = _session(now=100.0)
    s.learn(CALLER, sdp.streams(CALLER_SDP))
    s.learn(CALLEE, sdp.streams(CALLEE_SDP))
    s.relay(0, CALLER, RTP, ("192.168.1.50", 4000), 10, 101.0)
    assert not s.side_silent(CALLEE, 200.0, 5)          # not answered: ringing is quiet
    s.answered = 102.0
    assert not s.side_silent(CALLEE, 106.9, 5)          # too early to say
    assert s.side_silent(CALLEE, 107.0, 5)              # nothing ever came from the callee
    assert s.side_silent(CALLER, 107.0, 5)              # the caller's last was at 101
    s.relay(0, CALLER, RTP, ("192.168.1.50", 4000), 10, 107.0)
    assert not s.side_silent(CALLER, 111.9, 5) and s.side_silent(CALLER, 112.0, 5)
    d = s.as_dict(108.0, 5)
    assert d["from_caller"] == {"packets": 2, "bytes": 20, "silent": False}
    assert d["from_callee"] == {"packets": 0, "bytes": 0, "silent": True}
    assert d["answered"] is True and len(d["streams"]) == 1
    assert "streams" not in s.as_dict(108.0, 5, legs=False)


def test_with_the_sip_source_address_only_that_address_latches():
    s = _session()
    s.learn(CALLEE, sdp.streams(CALLEE_SDP))
    s.learn(CALLER, sdp.streams(CALLER_SDP), source_ip="203.0.113.77")
    # a stranger who guessed the port, before the phone's first packet: not latched
    assert s.relay(0, CALLER, RTP, ("192.0.2.66", 1234), 10, 1.0) is None
    assert s.streams[0][CALLER].stray == 1 and not s.streams[0][CALLER].latched[RTP]
    # the phone, from another port than its SDP's (its NAT's): latched
    assert s.relay(0, CALLER, RTP, ("203.0.113.77", 31000), 10, 1.0) == ("198.51.100.9", 6000)
    assert s.relay(0, CALLEE, RTP, ("198.51.100.9", 6000), 10, 1.0) == ("203.0.113.77", 31000)


def test_a_media_server_other_than_the_sip_source_latches_by_its_sdp_address():
    # a provider: SIP from its proxy 198.51.100.1, media from the SDP's 198.51.100.9
    s = _session()
    s.learn(CALLER, sdp.streams(CALLER_SDP))
    s.learn(CALLEE, sdp.streams(CALLEE_SDP), source_ip="198.51.100.1")
    assert s.streams[0][CALLEE].peer[RTP] == ("198.51.100.1", 6000)
    assert s.relay(0, CALLEE, RTP, ("192.0.2.66", 6000), 10, 1.0) is None
    assert s.relay(0, CALLEE, RTP, ("198.51.100.9", 6000), 10, 1.0) == ("192.168.1.50", 4000)
    assert s.relay(0, CALLER, RTP, ("192.168.1.50", 4000), 10, 1.0) == ("198.51.100.9", 6000)


def test_one_way_audio_is_told_once_after_the_answer():
    s = _session(now=100.0)
    s.learn(CALLER, sdp.streams(CALLER_SDP))
    s.learn(CALLEE, sdp.streams(CALLEE_SDP))
    s.relay(0, CALLEE, RTP, ("198.51.100.9", 6000), 10, 101.0)
    assert s.silent_sides(200.0, 5) == ()       # not answered
    s.answered = 102.0
    assert s.silent_sides(106.9, 5) == ()       # too early
    assert s.silent_sides(107.0, 5) == (CALLER,)
    assert s.silent_sides(108.0, 5) == ()       # once


def test_both_sides_heard_is_no_hint():
    s = _session(now=100.0)
    s.learn(CALLEE, sdp.streams(CALLEE_SDP))
    s.learn(CALLER, sdp.streams(CALLER_SDP))
    s.relay(0, CALLER, RTP, ("192.168.1.50", 4000), 10, 101.0)
    s.relay(0, CALLEE, RTP, ("198.51.100.9", 6000), 10, 101.0)
    s.answered = 100.5
    assert s.silent_sides(110.0, 5) == ()
