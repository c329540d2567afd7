"""serlite.media.session: legs, latching, counters, silence; forks (several branches answering
one call, each with its own legs facing the caller, sharing the port facing the callees)."""

from serlite.media import sdp
from serlite.media.session import CALLEE, CALLER, RTCP, RTP, RelaySession

CALLER_SDP = b"v=0\r\nc=IN IP4 192.168.1.50\r\nm=audio 4000 RTP/AVP 0\r\n"
CALLEE_SDP = b"v=0\r\nc=IN IP4 198.51.100.9\r\nm=audio 6000 RTP/AVP 0\r\na=rtcp:6100\r\n"


def _session(now=100.0, symmetric=True, tag="b1"):
    """A call with one stream (its callee-facing port 20002) and one fork ``tag`` (its
    caller-facing port 20000)."""
    s = RelaySession("cid", "ftag", "192.168.1.1", "203.0.113.1", now, symmetric)
    s.add_stream(20002)
    s.add_fork(tag, [20000])
    return s


def relay(s, side, component, source, size, now, stream=0, tag="b1"):
    """Where a packet from ``side`` goes: (ip, port), or None; and from which local port."""
    if side == CALLER:
        pair = s.forks[tag].pairs[stream]
        return s.from_caller(pair, component, source, size, now)
    leg = s.from_callee(s.streams[stream], component, source, size, now)
    return None if leg is None else leg.peer[component]


def leg(s, side, tag="b1", stream=0):
    return s.forks[tag].pairs[stream][side]


def test_a_packet_goes_out_of_the_other_leg_to_its_phone_and_is_counted():
    s = _session()
    s.learn(CALLER, None, sdp.streams(CALLER_SDP))
    # before the answer: the callee's address is unknown, the caller's packet is dropped
    assert relay(s, CALLER, RTP, ("192.168.1.50", 4000), 172, 101.0) is None
    assert leg(s, CALLER).dropped == 1
    s.learn(CALLEE, "b1", sdp.streams(CALLEE_SDP))
    assert relay(s, CALLER, RTP, ("192.168.1.50", 4000), 172, 102.0) == ("198.51.100.9", 6000)
    assert relay(s, CALLER, RTCP, ("192.168.1.50", 4001), 80, 102.0) == ("198.51.100.9", 6100)
    assert relay(s, CALLEE, RTP, ("198.51.100.9", 6000), 160, 102.5) == ("192.168.1.50", 4000)
    assert s.totals() == [(2, 252), (1, 160)]
    assert s.ports(CALLER, "b1") == [20000] and s.ports(CALLEE) == [20002]


def test_latching_learns_the_nat_mapping_and_drops_strays():
    s = _session()
    s.learn(CALLER, None, sdp.streams(CALLER_SDP))
    s.learn(CALLEE, "b1", sdp.streams(CALLEE_SDP))
    # the caller is behind a NAT: its packets come from another address than its SDP's
    assert relay(s, CALLER, RTP, ("203.0.113.77", 31000), 100, 101.0) == ("198.51.100.9", 6000)
    assert relay(s, CALLEE, RTP, ("198.51.100.9", 6000), 100, 101.0) == ("203.0.113.77", 31000)
    # someone else sending to the caller's leg is not relayed
    assert relay(s, CALLER, RTP, ("192.0.2.66", 1234), 100, 101.0) is None
    assert leg(s, CALLER).stray == 1
    # a re-INVITE with the same SDP keeps the latched address; a new address latches afresh
    s.learn(CALLER, None, sdp.streams(CALLER_SDP))
    assert leg(s, CALLER).peer[RTP] == ("203.0.113.77", 31000)
    s.learn(CALLER, None, sdp.streams(CALLER_SDP.replace(b"4000", b"4100")))
    assert leg(s, CALLER).peer[RTP] == ("192.168.1.50", 4100)
    assert relay(s, CALLER, RTP, ("192.0.2.66", 1234), 100, 102.0) is not None


def test_asymmetric_sends_where_the_sdp_says():
    s = _session(0.0, symmetric=False)
    s.learn(CALLER, None, sdp.streams(CALLER_SDP))
    s.learn(CALLEE, "b1", sdp.streams(CALLEE_SDP))
    assert relay(s, CALLER, RTP, ("1.2.3.4", 5), 10, 1.0) == ("198.51.100.9", 6000)
    assert relay(s, CALLEE, RTP, ("6.7.8.9", 5), 10, 1.0) == ("192.168.1.50", 4000)


def test_the_sip_source_address_instead_of_a_private_sdp_one():
    s = _session()
    s.learn(CALLER, None, sdp.streams(CALLER_SDP), source_ip="203.0.113.77")
    assert leg(s, CALLER).peer == [("203.0.113.77", 4000), ("203.0.113.77", 4001)]


def test_hold_with_a_null_address_keeps_the_peer():
    s = _session()
    s.learn(CALLER, None, sdp.streams(CALLER_SDP))
    s.learn(CALLER, None, sdp.streams(CALLER_SDP.replace(b"192.168.1.50", b"0.0.0.0")))
    assert leg(s, CALLER).peer[RTP] == ("192.168.1.50", 4000)


def test_sides_of_requests_and_responses():
    s = _session()
    assert s.side_of("ftag", True) == CALLER
    assert s.side_of("other", True) == CALLEE       # the callee's BYE / re-INVITE
    assert s.side_of("ftag", False) == CALLEE       # the answer to the caller's INVITE
    assert s.side_of("other", False) == CALLER


def test_idle_after_silence():
    s = _session(now=100.0)
    assert not s.idle(159.0, 60) and s.idle(160.0, 60)
    s.learn(CALLEE, "b1", sdp.streams(CALLEE_SDP))
    relay(s, CALLER, RTP, ("1.2.3.4", 5), 10, 150.0)
    assert not s.idle(209.0, 60) and s.idle(210.0, 60)
    d = s.as_dict(210.0)
    assert d["from_caller"] == {"packets": 1, "bytes": 10} and d["silent"] == 60.0


def test_a_call_ringing_in_silence_is_idle_only_after_it_may_ring_no_longer():
    """A phone rings for longer than rtp_timeout without early media: its relay must still be
    there when it answers (before: closed at rtp_timeout, the 200's SDP went unrelayed)."""
    s = _session(now=100.0)
    assert not s.idle(160.0, 60, ringing=152) and not s.idle(251.0, 60, ringing=152)
    assert s.idle(252.0, 60, ringing=152)
    s.answered = 200.0                  # answered: silence counts by rtp_timeout again
    assert s.idle(160.0, 60, ringing=152)


def test_a_side_is_silent_while_nothing_came_from_it_after_the_answer():
    s = _session(now=100.0)
    s.learn(CALLER, "b1", sdp.streams(CALLER_SDP))
    s.learn(CALLEE, "b1", sdp.streams(CALLEE_SDP))
    relay(s, CALLER, RTP, ("192.168.1.50", 4000), 10, 101.0)
    assert not s.side_silent(CALLEE, 200.0, 5)          # not answered: ringing is quiet
    s.answered = 102.0
    assert not s.side_silent(CALLEE, 106.9, 5)          # too early to say
    assert s.side_silent(CALLEE, 107.0, 5)              # nothing ever came from the callee
    assert s.side_silent(CALLER, 107.0, 5)              # the caller's last was at 101
    relay(s, CALLER, RTP, ("192.168.1.50", 4000), 10, 107.0)
    assert not s.side_silent(CALLER, 111.9, 5) and s.side_silent(CALLER, 112.0, 5)
    d = s.as_dict(108.0, 5)
    assert d["from_caller"] == {"packets": 2, "bytes": 20, "silent": False}
    assert d["from_callee"] == {"packets": 0, "bytes": 0, "silent": True}
    assert d["answered"] is True and len(d["streams"]) == 1
    assert "streams" not in s.as_dict(108.0, 5, legs=False)


def test_with_the_sip_source_address_only_that_address_latches():
    s = _session()
    s.learn(CALLEE, "b1", sdp.streams(CALLEE_SDP))
    s.learn(CALLER, None, sdp.streams(CALLER_SDP), source_ip="203.0.113.77")
    # a stranger who guessed the port, before the phone's first packet: not latched
    assert relay(s, CALLER, RTP, ("192.0.2.66", 1234), 10, 1.0) is None
    assert leg(s, CALLER).stray == 1 and not leg(s, CALLER).latched[RTP]
    # the phone, from another port than its SDP's (its NAT's): latched
    assert relay(s, CALLER, RTP, ("203.0.113.77", 31000), 10, 1.0) == ("198.51.100.9", 6000)
    assert relay(s, CALLEE, RTP, ("198.51.100.9", 6000), 10, 1.0) == ("203.0.113.77", 31000)


def test_a_media_server_other_than_the_sip_source_latches_by_its_sdp_address():
    # a provider: SIP from its proxy 198.51.100.1, media from the SDP's 198.51.100.9
    s = _session()
    s.learn(CALLER, None, sdp.streams(CALLER_SDP))
    s.learn(CALLEE, "b1", sdp.streams(CALLEE_SDP), source_ip="198.51.100.1")
    assert leg(s, CALLEE).peer[RTP] == ("198.51.100.1", 6000)
    assert relay(s, CALLEE, RTP, ("192.0.2.66", 6000), 10, 1.0) is None
    assert relay(s, CALLEE, RTP, ("198.51.100.9", 6000), 10, 1.0) == ("192.168.1.50", 4000)
    assert relay(s, CALLER, RTP, ("192.168.1.50", 4000), 10, 1.0) == ("198.51.100.9", 6000)


def test_one_way_audio_is_told_once_after_the_answer():
    s = _session(now=100.0)
    s.learn(CALLER, None, sdp.streams(CALLER_SDP))
    s.learn(CALLEE, "b1", sdp.streams(CALLEE_SDP))
    relay(s, CALLEE, RTP, ("198.51.100.9", 6000), 10, 101.0)
    assert s.silent_sides(200.0, 5) == ()       # not answered
    s.answered = 102.0
    assert s.silent_sides(106.9, 5) == ()       # too early
    assert s.silent_sides(107.0, 5) == (CALLER,)
    assert s.silent_sides(108.0, 5) == ()       # once


def test_both_sides_heard_is_no_hint():
    s = _session(now=100.0)
    s.learn(CALLEE, "b1", sdp.streams(CALLEE_SDP))
    s.learn(CALLER, None, sdp.streams(CALLER_SDP))
    relay(s, CALLER, RTP, ("192.168.1.50", 4000), 10, 101.0)
    relay(s, CALLEE, RTP, ("198.51.100.9", 6000), 10, 101.0)
    s.answered = 100.5
    assert s.silent_sides(110.0, 5) == ()


# --- forks ----------------------------------------------------------------------------------

FORK1_SDP = b"v=0\r\nc=IN IP4 198.51.100.9\r\nm=audio 6000 RTP/AVP 0\r\n"
FORK2_SDP = b"v=0\r\nc=IN IP4 198.51.100.20\r\nm=audio 7000 RTP/AVP 0\r\n"


def _forked():
    """The caller's offer, then two branches' 183s with SDP (tags b1, b2), each from its
    phone's SIP address: the caller-facing ports 20000 (b1) and 20004 (b2)."""
    s = RelaySession("cid", "ftag", "192.168.1.1", "203.0.113.1", 100.0)
    s.add_stream(20002)
    s.learn(CALLER, None, sdp.streams(CALLER_SDP), source_ip="192.168.1.50")
    s.add_fork("b1", [20000])
    s.learn(CALLEE, "b1", sdp.streams(FORK1_SDP), source_ip="198.51.100.9")
    s.add_fork("b2", [20004])
    s.learn(CALLEE, "b2", sdp.streams(FORK2_SDP), source_ip="198.51.100.20")
    return s


def test_each_forks_early_media_reaches_the_caller_from_its_own_port():
    s = _forked()
    # the answer each fork's 183 carries to the caller names its own port; the INVITE's
    # offer named the shared one to both
    assert s.ports(CALLER, "b1") == [20000] and s.ports(CALLER, "b2") == [20004]
    assert s.ports(CALLEE) == [20002]
    # a fork learnt after the offer knows where the caller is
    assert leg(s, CALLER, "b2").peer[RTP] == ("192.168.1.50", 4000)
    out = s.from_callee(s.streams[0], RTP, ("198.51.100.20", 7000), 160, 101.0)
    assert (out.port, out.peer[RTP]) == (20004, ("192.168.1.50", 4000))
    out = s.from_callee(s.streams[0], RTP, ("198.51.100.9", 6000), 160, 101.0)
    assert (out.port, out.peer[RTP]) == (20000, ("192.168.1.50", 4000))
    # the caller's packets to a fork's port go to that fork's phone only
    assert relay(s, CALLER, RTP, ("192.168.1.50", 4000), 10, 101.0, tag="b2") \
        == ("198.51.100.20", 7000)
    assert relay(s, CALLER, RTP, ("192.168.1.50", 4000), 10, 101.0, tag="b1") \
        == ("198.51.100.9", 6000)
    assert leg(s, CALLEE, "b1").packets == leg(s, CALLEE, "b2").packets == 1
    assert s.totals() == [(2, 20), (2, 320)]


def test_the_shared_port_tells_forks_apart_by_source_and_drops_strangers():
    s = _forked()
    # a stranger who guessed the shared port: neither fork's, dropped and counted
    assert s.from_callee(s.streams[0], RTP, ("192.0.2.66", 6000), 10, 101.0) is None
    assert s.streams[0].stray == 1
    assert not leg(s, CALLEE, "b1").latched[RTP] and not leg(s, CALLEE, "b2").latched[RTP]
    # b1 from its NAT's port: latched there; b2 latches its own; each keeps its own
    assert s.from_callee(s.streams[0], RTP, ("198.51.100.9", 40000), 10, 101.0).port == 20000
    assert s.from_callee(s.streams[0], RTP, ("198.51.100.20", 7000), 10, 101.0).port == 20004
    assert s.from_callee(s.streams[0], RTP, ("198.51.100.9", 40000), 10, 101.0).port == 20000
    assert leg(s, CALLEE, "b1").peer[RTP] == ("198.51.100.9", 40000)
    # a second source at b1's latched address: no fork claims it
    assert s.from_callee(s.streams[0], RTP, ("198.51.100.9", 40002), 10, 101.0) is None
    assert s.streams[0].stray == 2


def test_two_forks_behind_one_nat_each_latch_their_own_port():
    s = RelaySession("cid", "ftag", "192.168.1.1", "203.0.113.1", 100.0)
    s.add_stream(20002)
    s.learn(CALLER, None, sdp.streams(CALLER_SDP))
    for tag, port in (("b1", 20000), ("b2", 20004)):
        s.add_fork(tag, [port])
        s.learn(CALLEE, tag, sdp.streams(CALLEE_SDP), source_ip="203.0.113.50")
    first = s.from_callee(s.streams[0], RTP, ("203.0.113.50", 5000), 10, 101.0)
    second = s.from_callee(s.streams[0], RTP, ("203.0.113.50", 5002), 10, 101.0)
    assert (first.port, second.port) == (20000, 20004)
    assert s.from_callee(s.streams[0], RTP, ("203.0.113.50", 5002), 10, 101.0).port == 20004


def test_the_answer_closes_the_forks_that_sent_no_2xx():
    s = _forked()
    s.add_fork("b3", [20008])
    s.forks["b2"].answered = True
    assert s.unanswered("b2") == ["b1", "b3"]
    s.forks["b3"].answered = True       # a second 2xx (RFC 3261 13.2.2.4): kept until its BYE
    assert s.unanswered("b2") == ["b1"]
    s.drop_fork("b1")
    assert [len(st.pairs) for st in s.streams] == [2] and list(s.forks) == ["b2", "b3"]
    out = s.from_callee(s.streams[0], RTP, ("198.51.100.20", 7000), 10, 101.0)
    assert out.port == 20004
    assert s.from_callee(s.streams[0], RTP, ("198.51.100.9", 6000), 10, 101.0) is None
    d = s.as_dict(102.0)
    assert [f["tag"] for f in d["forks"]] == ["b2", "b3"] and d["streams"][0][0]["peer"]


def test_a_stream_added_after_the_forks_gets_a_pair_in_each():
    s = _forked()
    s.add_stream(20010, [20012, 20014])
    assert s.ports(CALLER, "b1") == [20000, 20012] and s.ports(CALLER, "b2") == [20004, 20014]
    assert s.ports(CALLEE) == [20002, 20010]
    s.drop_stream()
    assert s.ports(CALLER, "b2") == [20004] and len(s.forks["b1"].pairs) == 1


def test_the_callees_tag_names_the_fork_of_any_message():
    s = _session()
    assert s.fork_tag("ftag", None) is None         # the INVITE: every fork
    assert s.fork_tag("ftag", "b1") == "b1"         # the caller's requests and their replies
    assert s.fork_tag("b1", "ftag") == "b1"         # the callee's
