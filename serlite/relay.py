"""The built-in media relay's sockets: the I/O edge of serlite.media (beside transport.py, the
SIP sockets' edge).  Per relayed stream and side, a UDP socket pair (RTP on an even port of
the pool, RTCP on the next) on the address facing that side, registered with the server's one
poll loop; a datagram read on one leg is sent from the other leg's socket of the same
component to where the session says (serlite.media.session: latching, counters).

Owns the sessions' sockets and nothing else: a session's sockets are closed, and their ports
given back, exactly when it is closed (``close``: BYE, CANCEL, failure, the dialog's end,
or ``timeout`` seconds of silence on every leg, checked by one loop timer while sessions
exist).  Bounded: ``max_sessions`` sessions and the pool's ports; past either, ``open`` and
``add_streams`` raise ``RelayFull`` with why, and nothing half-made is left behind.

Counters (``ser-ctl stats``, core.stats): rtp_sessions (opened), rtp_sessions_active,
rtp_timeouts, rtp_refused, rtp_packets and rtp_bytes (relayed, added once per read batch),
rtp_dropped (stray, or nowhere to send yet), rtp_send_errors, rtp_one_way (calls from one
side of which nothing came ONE_WAY_AFTER s after the answer: logged, the classic one-way audio
hint).
"""

import errno
import socket

from . import log
from .media.ports import PortPool, PortsExhausted
from .media.session import CALLEE, CALLER, RelaySession

RECV_BATCH = 64         # datagrams read per wake-up and socket with a backlog (as transport.py)
BACKLOG_GAP = 0.005     # s: a socket readable again sooner has a backlog (a stream's packets
                        # come every 20 ms, 10 ms at the least: 100 packets/s)
ONE_WAY_AFTER = 5.0     # seconds after the answer without a packet from a side: logged once
_SIDES = ("caller", "callee")
_BUF = 65535


class RelayFull(Exception):
    """No room for a session or a stream: the session bound or the port range."""


class _Entry:
    """A session and its sockets: ``socks[stream][side][component]``."""

    __slots__ = ("session", "socks", "answered")

    def __init__(self, session):
        self.session = session
        self.socks = []
        self.answered = False   # a 2xx answered the call (a failed re-INVITE keeps it)


class Relay:
    def __init__(self, loop, stats, port_min, port_max, max_sessions, timeout):
        self.loop = loop
        self.stats = stats
        self.pool = PortPool(port_min, port_max)
        self.max_sessions = max_sessions
        self.timeout = float(timeout)
        self.entries = {}           # Call-ID -> _Entry
        self._timer = None
        self._buf = bytearray(_BUF)
        self._view = memoryview(self._buf)
        for name in ("rtp_sessions", "rtp_sessions_active", "rtp_timeouts", "rtp_refused",
                     "rtp_packets", "rtp_bytes", "rtp_dropped", "rtp_send_errors",
                     "rtp_one_way"):
            stats.counters.setdefault(name, 0)

    def __len__(self):
        return len(self.entries)

    def sockets(self):
        """How many sockets the relay holds (tests: none may outlive its session)."""
        return sum(1 for e in self.entries.values() for s in e.socks for side in s
                   for _ in side)

    # -- sessions ---------------------------------------------------------------------------
    def get(self, call_id):
        entry = self.entries.get(call_id)
        return entry.session if entry is not None else None

    def entry(self, call_id):
        return self.entries.get(call_id)

    def open(self, call_id, from_tag, caller_ip, callee_ip, symmetric=True):
        """A new session for a call (its sockets come with ``add_streams``)."""
        if len(self.entries) >= self.max_sessions:
            self.stats.incr("rtp_refused")
            raise RelayFull(f"{len(self.entries)} calls relayed already (max_sessions)")
        session = RelaySession(call_id, from_tag, caller_ip, callee_ip, self.loop.time(),
                               symmetric)
        self.entries[call_id] = _Entry(session)
        self.stats.incr("rtp_sessions")
        self.stats.counters["rtp_sessions_active"] = len(self.entries)
        if self._timer is None:
            self._arm()
        return session

    def add_streams(self, session, count):
        """Sockets for ``session``'s streams up to ``count``: two port pairs each, one facing
        each side.  RelayFull when the ports ran out (the streams added by this call are
        taken back)."""
        entry = self.entries[session.call_id]
        before = len(session.streams)
        try:
            while len(session.streams) < count:
                index = len(session.streams)
                pairs = []
                try:
                    for side in (CALLER, CALLEE):
                        pairs.append(self._bind_pair(session.local_ip[side]))
                except Exception:
                    for port, socks in pairs:
                        self._close_pair(port, socks)
                    raise
                session.add_stream(pairs[0][0], pairs[1][0])
                entry.socks.append([pairs[0][1], pairs[1][1]])
                for side in (CALLER, CALLEE):
                    for component, sock in enumerate(pairs[side][1]):
                        self.loop.add_reader(sock.fileno(), self._reader(
                            entry, index, side, component, sock))
        except (PortsExhausted, OSError) as exc:
            while len(session.streams) > before:
                self._drop_stream(entry)
            self.stats.incr("rtp_refused")
            raise RelayFull(str(exc)) from None

    def _bind_pair(self, ip):
        """(port, [rtp socket, rtcp socket]) bound on ``ip``; a port pair in use by someone
        else goes back to the pool's end and the next is tried (at most the pool's size)."""
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        for _ in range(self.pool.size):
            port = self.pool.take()
            socks = []
            try:
                for p in (port, port + 1):
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                    socks.append(sock)
                    sock.setblocking(False)
                    sock.bind((ip, p))
                return port, socks
            except OSError as exc:
                self._close_pair(port, socks)
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise PortsExhausted(f"every RTP port pair in {self.pool.low}-{self.pool.high} is "
                             f"in use on {ip}")

    def _close_pair(self, port, socks):
        for sock in socks:
            sock.close()
        self.pool.give(port)

    def _drop_stream(self, entry):
        session = entry.session
        legs = session.streams.pop()
        for side, socks in enumerate(entry.socks.pop()):
            for sock in socks:
                self.loop.remove_reader(sock.fileno())
            self._close_pair(legs[side].port, socks)

    def close(self, call_id, why="ended"):
        """Close ``call_id``'s session: its sockets, its ports.  The session, or None."""
        entry = self.entries.pop(call_id, None)
        if entry is None:
            return None
        while entry.session.streams:
            self._drop_stream(entry)
        self.stats.counters["rtp_sessions_active"] = len(self.entries)
        if not self.entries and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        log.debug(f"rtpproxy: session {call_id} {why}")
        return entry.session

    def close_all(self):
        for call_id in list(self.entries):
            self.close(call_id, "closed at exit")

    # -- silence ----------------------------------------------------------------------------
    def _arm(self):
        period = max(1.0, min(ONE_WAY_AFTER, self.timeout / 4))
        self._timer = self.loop.call_at(self.loop.time() + period, self._sweep)

    def _sweep(self):
        self._timer = None
        now = self.loop.time()
        for call_id, entry in list(self.entries.items()):
            silent = entry.session.silent_sides(now, ONE_WAY_AFTER)
            if silent:
                self.stats.incr("rtp_one_way")
                who = " and the ".join(_SIDES[side] for side in silent)
                log.limited(("rtp-one-way",), log.NOTICE,
                            f"rtpproxy: call {call_id[:80]!r}: nothing received from the "
                            f"{who} {ONE_WAY_AFTER:g} s after the answer (one-way audio: "
                            f"a NAT or firewall in the way?)", interval=1.0)
            if entry.session.idle(now, self.timeout):
                self.stats.incr("rtp_timeouts")
                log.limited(("rtp-timeout",), log.NOTICE,
                            f"rtpproxy: no media for {self.timeout:g} s: session of call "
                            f"{call_id[:80]!r} closed")
                self.close(call_id, "timed out")
        if self.entries and self._timer is None:
            self._arm()

    # -- packets ----------------------------------------------------------------------------
    def _reader(self, entry, index, side, component, sock):
        session = entry.session
        relay = session.relay
        recv = sock.recvfrom_into
        # the other leg's socket of this component: bound before any reader is registered
        # (add_streams), closed with this reader (_drop_stream)
        send = entry.socks[index][1 - side][component].sendto
        clock = self.loop.time
        buf, view = self._buf, self._view
        counters = self.stats.counters

        last = -1.0             # when this socket was last read
        batching = False        # reading until it is empty (a backlog), or one datagram

        def read():
            # At 50 packets/s a socket holds one datagram when epoll says it is readable, and
            # trying for a second costs a system call and an exception (a quarter of the
            # reader's CPU: bench/relaysim.py 50 200 3 1).  So one is read, and the socket stays readable for the
            # next turn if more wait (level-triggered); read again sooner than BACKLOG_GAP, it
            # has a backlog (the loop fell behind, a burst), and then it is read until empty,
            # RECV_BATCH at most, until a turn finds only one.
            nonlocal last, batching
            now = clock()
            if not batching and now - last < BACKLOG_GAP:
                batching = True
            last = now
            packets = size_sum = dropped = got = 0
            for _ in range(RECV_BATCH if batching else 1):
                try:
                    n, source = recv(buf)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue        # an ICMP error queued on the socket: read on
                got += 1
                if len(source) > 2:
                    source = source[:2]
                dest = relay(index, side, component, source, n, now)
                if dest is None:
                    dropped += 1
                    continue
                try:
                    send(view[:n], dest)
                except OSError:
                    counters["rtp_send_errors"] += 1
                    continue
                packets += 1
                size_sum += n
            if batching and got < 2:
                batching = False
            if packets:
                counters["rtp_packets"] += packets
                counters["rtp_bytes"] += size_sum
            if dropped:
                counters["rtp_dropped"] += dropped
        return read
