"""serlite.relay: the relay's sockets in a real loop, on loopback (127.0.0.1 stands in for the
LAN side, 127.0.0.2 for the WAN side): datagrams relayed between the legs with latching, and
not one socket left once a session is closed."""

import os
import select
import socket
import time

import pytest

from serlite.control.stats import Stats
from serlite.loop import Loop
from serlite.media import sdp
from serlite.media.ports import PortPool
from serlite.media.session import CALLEE, CALLER
from serlite.relay import Relay, RelayFull

LAN, WAN = "127.0.0.1", "127.0.0.2"


def _fds():
    return len(os.listdir("/proc/self/fd"))


def _pump(loop, until, timeout=2.0):
    """Run the loop's readers until ``until()`` holds (bounded in time)."""
    deadline = time.monotonic() + timeout
    while not until():
        left = deadline - time.monotonic()
        assert left > 0, "timed out waiting for the relay"
        for fd, _ in loop.wait(left * 1000):
            cb = loop._readers.get(fd)
            if cb is not None:
                cb()


def _received(loop, phone):
    """What ``phone`` receives next, the relay's loop run until it does."""
    _pump(loop, lambda: select.select([phone], [], [], 0)[0])
    return phone.recvfrom(100)


def _phone(ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    s.settimeout(2)
    return s


def _sdp(ip, port):
    return b"v=0\r\nc=IN IP4 %s\r\nm=audio %d RTP/AVP 0\r\n" % (ip.encode(), port)


@pytest.fixture
def relay():
    loop = Loop()
    clock = [1000.0]
    loop.time = lambda: clock[0]        # the relay's time: the test moves it (relay.clock)
    relay = Relay(loop, Stats(0), 41000, 41099, 4, 30)
    relay.clock = clock
    yield relay
    relay.close_all()
    loop.close()


def test_packets_relayed_both_ways_from_the_relays_ports_and_sockets_closed(relay):
    loop = relay.loop
    fds, readers = _fds(), len(loop._readers)
    a, b = _phone(LAN), _phone(WAN)
    s = relay.open("call-1", "tag-a", LAN, WAN)
    relay.add_streams(s, 1)
    assert relay.sockets() == 2         # the offer's: the pair facing the callee(s)
    relay.add_fork(s, "tag-b")          # the answer's: a pair facing the caller
    assert relay.sockets() == 4 and _fds() == fds + 4 + 2
    s.learn(CALLER, None, sdp.streams(_sdp(LAN, a.getsockname()[1])))
    s.learn(CALLEE, "tag-b", sdp.streams(_sdp(WAN, b.getsockname()[1])))
    a_leg = (LAN, s.ports(CALLER, "tag-b")[0])       # where the caller sends (its SDP's answer)
    b_leg = (WAN, s.ports(CALLEE)[0])
    a.sendto(b"from-a", a_leg)
    _pump(loop, lambda: s.forks["tag-b"].pairs[0][CALLER].packets == 1)
    data, src = b.recvfrom(100)
    assert (data, src) == (b"from-a", b_leg)
    b.sendto(b"from-b-longer", b_leg)
    _pump(loop, lambda: s.forks["tag-b"].pairs[0][CALLEE].packets == 1)
    data, src = a.recvfrom(100)
    assert (data, src) == (b"from-b-longer", a_leg)
    # RTCP on the odd port goes to the phone's RTP port + 1 (none listens there: no error)
    c = relay.stats.counters
    assert (c["rtp_packets"], c["rtp_bytes"], c["rtp_sessions_active"]) == (2, 19, 1)
    relay.close("call-1")
    assert relay.sockets() == 0 and len(relay) == 0
    assert _fds() == fds + 2 and len(loop._readers) == readers
    assert c["rtp_sessions_active"] == 0 and relay.pool.used == set()
    a.close()
    b.close()


def test_latching_to_a_natted_source_and_strays_dropped(relay):
    loop = relay.loop
    a, b, nat, intruder = _phone(LAN), _phone(WAN), _phone(LAN), _phone("127.0.0.3")
    s = relay.open("call-2", "tag-a", LAN, WAN)
    relay.add_streams(s, 1)
    relay.add_fork(s, "tag-b")
    # the caller's SDP names a port that is not where its packets come from (a NAT)
    s.learn(CALLER, None, sdp.streams(_sdp(LAN, 9)))
    # the callee's address as its SIP came from: only packets from there latch
    s.learn(CALLEE, "tag-b", sdp.streams(_sdp(WAN, b.getsockname()[1])), source_ip=WAN)
    nat.sendto(b"x", (LAN, s.ports(CALLER, "tag-b")[0]))
    _pump(loop, lambda: s.forks["tag-b"].pairs[0][CALLER].packets == 1)
    assert b.recvfrom(10)[0] == b"x"
    intruder.sendto(b"evil", (WAN, s.ports(CALLEE)[0]))     # first, but from elsewhere
    _pump(loop, lambda: s.forks["tag-b"].pairs[0][CALLEE].stray == 1)
    b.sendto(b"y", (WAN, s.ports(CALLEE)[0]))
    _pump(loop, lambda: s.forks["tag-b"].pairs[0][CALLEE].packets == 1)
    assert nat.recvfrom(10)[0] == b"y"      # latched: back to where the caller's came from
    assert relay.stats.counters["rtp_dropped"] == 1
    for x in (a, b, nat, intruder):
        x.close()


def test_bounds_give_a_clear_answer_and_leave_nothing_behind(relay):
    fds = _fds()
    sessions = [relay.open(f"c{i}", "t", LAN, WAN) for i in range(4)]
    with pytest.raises(RelayFull, match="4 calls relayed already"):
        relay.open("c5", "t", LAN, WAN)
    relay.pool = PortPool(41000, 41019)     # 10 pairs; a stream takes 2 (one per side)
    for s in sessions[:2]:
        relay.add_fork(s, "b")
        relay.add_streams(s, 2)
    relay.add_fork(sessions[2], "b")
    # the first of these two streams fits, the second does not: both are taken back
    with pytest.raises(RelayFull, match="no free RTP port in 41000-41019"):
        relay.add_streams(sessions[2], 2)
    assert len(sessions[2].streams) == 0 and len(relay.pool.used) == 8
    assert relay.sockets() == 16 and _fds() == fds + 16
    assert relay.stats.counters["rtp_refused"] == 2
    relay.close_all()
    assert _fds() == fds and relay.pool.used == set()


def test_totals_count_ports_in_use_and_say_when_nearly_full(relay):
    relay.max_sessions = 10
    relay.pool = PortPool(41000, 41019)     # 10 pairs, 20 ports: 5 calls with audio
    t = relay.totals()
    assert (t["sessions"], t["ports_used"], t["ports"], t["port_min"], t["port_max"],
            t["nearly_full"]) == (0, 0, 20, 41000, 41019, False)
    sessions = [relay.open(f"c{i}", "t", LAN, WAN) for i in range(4)]
    for s in sessions[:3]:
        relay.add_fork(s, "b")              # an answered call: the caller-facing pair too
        relay.add_streams(s, 1)
    t = relay.totals()
    assert (t["sessions"], t["ports_used"], t["nearly_full"]) == (4, 12, False)
    relay.add_fork(sessions[3], "b")
    relay.add_streams(sessions[3], 1)       # 16 of 20 ports: 80 %
    t = relay.totals()
    assert (t["ports_used"], t["nearly_full"]) == (16, True)
    relay.close("c3")
    assert relay.totals()["nearly_full"] is False
    for i in range(5, 10):                  # 8 of 10 sessions, without streams: 80 % too
        relay.open(f"c{i}", "t", LAN, WAN)
    t = relay.totals()
    assert (t["sessions"], t["ports_used"], t["nearly_full"]) == (8, 12, True)
    assert t["refused"] == 0 and t["opened"] == 9


def test_a_silent_session_times_out(relay):
    loop = relay.loop
    s = relay.open("quiet", "t", LAN, WAN)
    relay.add_streams(s, 1)
    relay.add_fork(s, "b")
    fds = _fds()
    relay.clock[0] += 29
    loop.run_due(relay.clock[0])
    assert len(relay) == 1
    relay.clock[0] += 6
    loop.run_due(relay.clock[0])            # the next sweep (every 5 s) after 30 s of silence
    assert len(relay) == 0 and relay.stats.counters["rtp_timeouts"] == 1
    assert _fds() == fds - 4 and relay._timer is None


def test_one_way_audio_is_logged_once_and_counted(relay, capsys):
    from serlite import log
    old = log.level
    log.configure(debug=log.NOTICE, stderr=True)
    log._last.pop(("rtp-one-way",), None)   # another test's hint within 1 s would mute it
    try:
        loop = relay.loop
        a, b = _phone(LAN), _phone(WAN)
        s = relay.open("oneway", "t", LAN, WAN)
        relay.add_streams(s, 1)
        relay.add_fork(s, "tag-b")
        s.learn(CALLER, None, sdp.streams(_sdp(LAN, a.getsockname()[1])))
        s.learn(CALLEE, "tag-b", sdp.streams(_sdp(WAN, b.getsockname()[1])))
        b.sendto(b"only-b", (WAN, s.ports(CALLEE)[0]))
        _pump(loop, lambda: s.forks["tag-b"].pairs[0][CALLEE].packets == 1)
        s.answered = relay.clock[0]
        for _ in range(4):                  # sweeps every 5 s (ONE_WAY_AFTER): told once
            relay.clock[0] += 5
            loop.run_due(relay.clock[0])
        err = capsys.readouterr().err
        assert err.count("nothing received from the caller 5 s after the answer") == 1, err
        assert relay.stats.counters["rtp_one_way"] == 1 and len(relay) == 1
        a.close()
        b.close()
    finally:
        log.level = old


def test_forks_share_the_callee_port_each_with_its_own_caller_port(relay):
    """Two branches answer (183 with SDP each): the packets each phone sends to the shared
    port reach the caller from that fork's port, the caller's to a fork's port reach that
    phone only; the fork not answered is closed (its sockets, its port), the bound holds."""
    from serlite.media.session import MAX_FORKS
    loop = relay.loop
    caller, b1, b2 = _phone(LAN), _phone(WAN), _phone("127.0.0.3")
    s = relay.open("fork-1", "tag-a", LAN, WAN)
    relay.add_streams(s, 1)
    s.learn(CALLER, None, sdp.streams(_sdp(LAN, caller.getsockname()[1])))
    for tag, phone in (("b1", b1), ("b2", b2)):
        relay.add_fork(s, tag)
        ip, port = phone.getsockname()
        s.learn(CALLEE, tag, sdp.streams(_sdp(ip, port)), source_ip=ip)
    assert relay.sockets() == 6
    shared = (WAN, s.ports(CALLEE)[0])
    port1, port2 = s.ports(CALLER, "b1")[0], s.ports(CALLER, "b2")[0]
    b2.sendto(b"from-b2", shared)
    assert _received(loop, caller) == (b"from-b2", (LAN, port2))
    b1.sendto(b"from-b1", shared)
    assert _received(loop, caller) == (b"from-b1", (LAN, port1))
    caller.sendto(b"to-b2", (LAN, port2))
    assert _received(loop, b2) == (b"to-b2", shared)
    caller.sendto(b"to-b1", (LAN, port1))
    assert _received(loop, b1) == (b"to-b1", shared)
    # bounded: MAX_FORKS branches a call, past it a clear answer and nothing bound
    for i in range(2, MAX_FORKS):
        relay.add_fork(s, f"x{i}")
    with pytest.raises(RelayFull, match=f"more than {MAX_FORKS} phones"):
        relay.add_fork(s, "one-too-many")
    assert relay.sockets() == 2 + 2 * MAX_FORKS
    for i in range(2, MAX_FORKS):
        relay.drop_fork(s, f"x{i}")
    # b2 answered: b1 is closed, its port given back; b1's packets go nowhere now
    b1_socks = s.forks["b1"].pairs[0][CALLER].io
    assert relay.drop_fork(s, "b1") and relay.sockets() == 4
    assert port1 not in relay.pool.used and [x.fileno() for x in b1_socks] == [-1, -1]
    b1.sendto(b"late", shared)
    b2.sendto(b"still", shared)
    assert _received(loop, caller) == (b"still", (LAN, port2))
    _pump(loop, lambda: s.forks["b2"].pairs[0][CALLEE].stray == 1)   # not b2's: dropped
    socks = s.streams[0].io + s.forks["b2"].pairs[0][CALLER].io
    relay.close("fork-1")
    assert relay.sockets() == 0 and relay.pool.used == set()
    assert [x.fileno() for x in socks] == [-1] * 4
    for x in (caller, b1, b2):
        x.close()


def test_one_datagram_per_wake_up_until_a_backlog_then_until_empty(relay):
    """At 50 packets/s a socket holds one datagram when it is readable: it is read alone (no
    second, failing, read); read again within BACKLOG_GAP, the socket has a backlog and is
    read until empty; a turn that finds one goes back to one."""
    from serlite.relay import BACKLOG_GAP
    loop = relay.loop
    a, b = _phone(LAN), _phone(WAN)
    s = relay.open("burst", "t", LAN, WAN)
    relay.add_streams(s, 1)
    s.learn(CALLER, None, sdp.streams(_sdp(LAN, a.getsockname()[1])))
    relay.add_fork(s, "b")
    s.learn(CALLEE, "b", sdp.streams(_sdp(WAN, b.getsockname()[1])))
    a_leg = (LAN, s.ports(CALLER, "b")[0])
    leg = s.forks["b"].pairs[0][CALLER]
    fd = leg.io[0].fileno()
    for i in range(10):
        a.sendto(b"p%d" % i, a_leg)
    deadline = time.monotonic() + 2
    while fd not in dict(loop.wait(100)):
        assert time.monotonic() < deadline, "the relay's socket never became readable"
    read = loop._readers[fd]
    read()
    assert leg.packets == 1 and fd in dict(loop.wait(0))   # one read, the rest still waits
    read()                                  # again at once (the test's clock stands still)
    assert leg.packets >= 3                 # the backlog read in one go
    _pump(loop, lambda: leg.packets == 10)
    assert [b.recvfrom(10)[0] for _ in range(10)] == [b"p%d" % i for i in range(10)]
    read()                                  # empty: back to one datagram per wake-up
    relay.clock[0] += BACKLOG_GAP * 4
    a.sendto(b"q", a_leg)
    a.sendto(b"r", a_leg)
    while fd not in dict(loop.wait(100)):
        assert time.monotonic() < deadline, "the relay's socket never became readable"
    read()
    assert leg.packets == 11
    for x in (a, b):
        x.close()
