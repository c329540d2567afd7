"""The built-in media relay's sockets: the I/O edge of serlite.media (beside transport.py, the
SIP sockets' edge).  Per relayed stream a UDP socket pair (RTP on an even port of the pool,
RTCP on the next) facing the callees, on the address the INVITE left by, shared by the forks
of the call; per stream and answering fork (To tag) a pair facing the caller, on the address
its INVITE came in on; all registered with the server's one poll loop.  A datagram read on a
fork's caller-facing socket goes out of the shared socket of the same component, one read on
the shared socket out of the caller-facing socket of the fork that sent it, to where the
session says (serlite.media.session: forks, latching, counters).

Owns the sessions' sockets and nothing else: a session's sockets are closed, and their ports
given back, exactly when it is closed (``close``: BYE, CANCEL, failure, the dialog's end,
or ``timeout`` seconds of silence on every leg, checked by one loop timer while sessions
exist; ``on_timeout(session)`` is then told), a fork's when it is (``drop_fork``: another fork answered, its own BYE or failure).
Bounded: ``max_sessions`` sessions, MAX_FORKS forks a call and the pool's ports; past any,
``open``, ``add_streams`` and ``add_fork`` raise ``RelayFull`` with why, and nothing
half-made is left behind.

Counters (``ser-ctl stats``, core.stats): rtp_sessions (opened), rtp_sessions_active,
rtp_timeouts, rtp_refused, rtp_packets and rtp_bytes (relayed, added once per read batch),
rtp_dropped (stray, or nowhere to send yet), rtp_send_errors, rtp_forks
(answering branches relayed), rtp_one_way (calls from one
side of which nothing came ONE_WAY_AFTER s after the answer: logged, the classic one-way audio
hint).
"""

import errno
import socket

from . import log
from .media.ports import PortPool, PortsExhausted
from .media.session import CALLEE, CALLER, MAX_FORKS, RelaySession

RECV_BATCH = 64         # datagrams read per wake-up and socket with a backlog (as transport.py)
BACKLOG_GAP = 0.005     # s: a socket readable again sooner has a backlog (a stream's packets
                        # come every 20 ms, 10 ms at the least: 100 packets/s)
ONE_WAY_AFTER = 5.0     # seconds after the answer without a packet from a side: logged once
NEARLY_FULL = 0.8       # share of the ports or sessions in use the page warns from
_SIDES = ("caller", "callee")
_BUF = 65535


class RelayFull(Exception):
    """No room for a session or a stream: the session bound or the port range."""


class _Entry:
    """A session and whether a 2xx answered it (a failed re-INVITE keeps it)."""

    __slots__ = ("session", "answered")

    def __init__(self, session):
        self.session = session
        self.answered = False


class _Pace:
    """How many datagrams a relay socket's reader takes at a wake-up.  At 50 packets/s a
    socket holds one datagram when epoll says it is readable, and trying for a second costs a
    system call and an exception (a quarter of the reader's CPU: bench/relaysim.py 50 200 3
    1).  So one is read, and the socket stays readable for the next turn if more wait
    (level-triggered); read again sooner than BACKLOG_GAP, it has a backlog (the loop fell
    behind, a burst), and then it is read until empty, RECV_BATCH at most, until a turn finds
    only one."""

    __slots__ = ("last", "batching")

    def __init__(self):
        self.last = -1.0            # when the socket was last read
        self.batching = False       # reading until it is empty (a backlog), or one datagram

    def batch(self, now):
        if not self.batching and now - self.last < BACKLOG_GAP:
            self.batching = True
        self.last = now
        return RECV_BATCH if self.batching else 1

    def read(self, got):
        if self.batching and got < 2:
            self.batching = False


class Relay:
    def __init__(self, loop, stats, port_min, port_max, max_sessions, timeout):
        self.loop = loop
        self.stats = stats
        self.pool = PortPool(port_min, port_max)
        self.max_sessions = max_sessions
        self.timeout = float(timeout)
        # how long a call not answered yet may ring in silence (the rtpproxy module sets it
        # from tm's fr_inv_timer); past both it is idle
        self.ringing = 0.0
        self.entries = {}           # Call-ID -> _Entry
        # called with the session the silence closed (rtpproxy: the call is over)
        self.on_timeout = None
        self._timer = None
        self._buf = bytearray(_BUF)
        self._view = memoryview(self._buf)
        for name in ("rtp_sessions", "rtp_sessions_active", "rtp_timeouts", "rtp_refused",
                     "rtp_packets", "rtp_bytes", "rtp_dropped", "rtp_send_errors",
                     "rtp_one_way", "rtp_forks"):
            stats.counters.setdefault(name, 0)

    def __len__(self):
        return len(self.entries)

    def totals(self):
        """What ``ser-ctl rtpproxy``, ``ser-ctl calls`` and the status page show of the relay:
        sessions now and their bound, the pool's ports in use (RTP and RTCP: 4 per relayed
        audio stream, a pair facing each side), its counters, and ``nearly_full`` when either
        bound is NEARLY_FULL used (the next calls may go without audio)."""
        c = self.stats.counters
        pool = self.pool
        used, ports = 2 * len(pool.used), 2 * pool.size
        return {"sessions": len(self.entries), "max_sessions": self.max_sessions,
                "ports_used": used, "ports": ports, "port_min": pool.low,
                "port_max": pool.low + ports - 1,
                "packets": c["rtp_packets"], "bytes": c["rtp_bytes"],
                "opened": c["rtp_sessions"], "refused": c["rtp_refused"],
                "timeouts": c["rtp_timeouts"], "one_way": c["rtp_one_way"],
                "dropped": c["rtp_dropped"],
                "nearly_full": (used >= NEARLY_FULL * ports
                                or len(self.entries) >= NEARLY_FULL * self.max_sessions)}

    def sockets(self):
        """How many sockets the relay holds (tests: none may outlive its session)."""
        n = 0
        for entry in self.entries.values():
            session = entry.session
            n += sum(len(s.io) for s in session.streams)
            n += sum(len(pair[CALLER].io) for fork in session.forks.values()
                     for pair in fork.pairs)
        return n

    # -- sessions ---------------------------------------------------------------------------
    def get(self, call_id):
        entry = self.entries.get(call_id)
        return entry.session if entry is not None else None

    def entry(self, call_id):
        return self.entries.get(call_id)

    def open(self, call_id, from_tag, caller_ip, callee_ip, symmetric=True):
        """A new session for a call (its sockets come with ``add_streams``, ``add_fork``)."""
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
        """Sockets for ``session``'s streams up to ``count``: per new stream the port pair
        facing the callees and one facing the caller for each fork.  RelayFull when the
        ports ran out (the streams added by this call are taken back)."""
        before = len(session.streams)
        try:
            while len(session.streams) < count:
                shared = self._bind_pair(session.local_ip[CALLEE])
                pairs = []
                try:
                    for _ in session.forks:
                        pairs.append(self._bind_pair(session.local_ip[CALLER]))
                except Exception:
                    for port, socks in pairs + [shared]:
                        self._close_pair(port, socks)
                    raise
                stream = session.add_stream(shared[0], [port for port, _ in pairs])
                self._watch_stream(session, stream, shared[1])
                for pair, (_, socks) in zip(stream.pairs, pairs):
                    self._watch_leg(session, stream, pair, socks)
        except (PortsExhausted, OSError) as exc:
            while len(session.streams) > before:
                self._drop_stream(session)
            self.stats.incr("rtp_refused")
            raise RelayFull(str(exc)) from None

    def add_fork(self, session, tag):
        """Sockets facing the caller for the branch whose To tag is ``tag`` (one pair per
        stream): its Fork.  RelayFull past MAX_FORKS or the ports (nothing is left bound)."""
        if len(session.forks) >= MAX_FORKS:
            self.stats.incr("rtp_refused")
            raise RelayFull(f"call {session.call_id[:80]!r} forked to more than {MAX_FORKS} "
                            f"phones answering with SDP: branch {tag[:40]!r} not relayed")
        pairs = []
        try:
            for _ in session.streams:
                pairs.append(self._bind_pair(session.local_ip[CALLER]))
        except (PortsExhausted, OSError) as exc:
            for port, socks in pairs:
                self._close_pair(port, socks)
            self.stats.incr("rtp_refused")
            raise RelayFull(str(exc)) from None
        fork = session.add_fork(tag, [port for port, _ in pairs])
        for stream, pair, (_, socks) in zip(session.streams, fork.pairs, pairs):
            self._watch_leg(session, stream, pair, socks)
        self.stats.incr("rtp_forks")
        return fork

    def drop_fork(self, session, tag, why="closed"):
        """Close fork ``tag``'s sockets and give its ports back; True if there was one."""
        fork = session.drop_fork(tag)
        if fork is None:
            return False
        for pair in fork.pairs:
            self._unwatch(pair[CALLER])
        log.debug(f"rtpproxy: call {session.call_id[:80]!r}: fork {tag[:40]!r} {why}")
        return True

    def _watch_stream(self, session, stream, socks):
        stream.io = socks
        for component, sock in enumerate(socks):
            self.loop.add_reader(sock.fileno(), self._callee_reader(session, stream,
                                                                    component, sock))

    def _watch_leg(self, session, stream, pair, socks):
        pair[CALLER].io = socks
        for component, sock in enumerate(socks):
            self.loop.add_reader(sock.fileno(), self._caller_reader(session, stream, pair,
                                                                    component, sock))

    def _unwatch(self, holder):
        """Unregister and close ``holder``'s (a Leg's, a Stream's) sockets, give its port."""
        socks, holder.io = holder.io, None
        for sock in socks:
            self.loop.remove_reader(sock.fileno())
        self._close_pair(holder.port, socks)

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

    def _drop_stream(self, session):
        stream = session.drop_stream()
        for pair in stream.pairs:
            self._unwatch(pair[CALLER])
        self._unwatch(stream)

    def close(self, call_id, why="ended"):
        """Close ``call_id``'s session: its sockets, its ports.  The session, or None."""
        entry = self.entries.pop(call_id, None)
        if entry is None:
            return None
        session = entry.session
        for tag in list(session.forks):
            self.drop_fork(session, tag, why)
        while session.streams:
            self._drop_stream(session)
        self.stats.counters["rtp_sessions_active"] = len(self.entries)
        if not self.entries and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        log.debug(f"rtpproxy: session {call_id[:80]!r} {why}")
        return session

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
            if entry.session.idle(now, self.timeout, self.ringing):
                self.stats.incr("rtp_timeouts")
                log.limited(("rtp-timeout",), log.NOTICE,
                            f"rtpproxy: no media for {self.timeout:g} s: session of call "
                            f"{call_id[:80]!r} closed")
                self.close(call_id, "timed out")
                if self.on_timeout is not None:
                    self.on_timeout(entry.session)
        if self.entries and self._timer is None:
            self._arm()

    # -- packets ----------------------------------------------------------------------------
    # Each socket has its reader closure: what it needs is bound once, so that a packet costs
    # a recvfrom_into, the session's decision and a sendto (bench/relaysim.py)

    def _caller_reader(self, session, stream, pair, component, sock):
        """From the caller, on a fork's own port: out of the stream's shared socket."""
        relay = session.from_caller
        recv = sock.recvfrom_into
        clock = self.loop.time
        buf, view = self._buf, self._view
        counters = self.stats.counters
        pace = _Pace()

        def read():
            now = clock()
            out = stream.io[component]
            packets = size_sum = dropped = got = 0
            for _ in range(pace.batch(now)):
                try:
                    n, source = recv(buf)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue        # an ICMP error queued on the socket: read on
                got += 1
                if len(source) > 2:
                    source = source[:2]
                dest = relay(pair, component, source, n, now)
                if dest is None:
                    dropped += 1
                    continue
                try:
                    out.sendto(view[:n], dest)
                except OSError:
                    counters["rtp_send_errors"] += 1
                    continue
                packets += 1
                size_sum += n
            pace.read(got)
            if packets:
                counters["rtp_packets"] += packets
                counters["rtp_bytes"] += size_sum
            if dropped:
                counters["rtp_dropped"] += dropped
        return read

    def _callee_reader(self, session, stream, component, sock):
        """From a callee, on the stream's shared port: out of its fork's caller-facing
        socket (the session says which fork sent it)."""
        relay = session.from_callee
        recv = sock.recvfrom_into
        clock = self.loop.time
        buf, view = self._buf, self._view
        counters = self.stats.counters
        pace = _Pace()

        def read():
            now = clock()
            packets = size_sum = dropped = got = 0
            for _ in range(pace.batch(now)):
                try:
                    n, source = recv(buf)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                got += 1
                if len(source) > 2:
                    source = source[:2]
                leg = relay(stream, component, source, n, now)
                if leg is None:
                    dropped += 1
                    continue
                try:
                    leg.io[component].sendto(view[:n], leg.peer[component])
                except OSError:
                    counters["rtp_send_errors"] += 1
                    continue
                packets += 1
                size_sum += n
            pace.read(got)
            if packets:
                counters["rtp_packets"] += packets
                counters["rtp_bytes"] += size_sum
            if dropped:
                counters["rtp_dropped"] += dropped
        return read
