"""The DNS client's sockets and timer: the I/O edge of serlite.dns (beside transport.py and
relay.py), so that a name is resolved inside the one poll loop and never blocks it (no
getaddrinfo).

One non-blocking UDP socket per address family (made when a name server of that family is first
asked; the kernel picks a random source port; replaced by a new one, a new port, every
QUERIES_PER_SOCKET queries once nothing is in flight on it: RFC 5452), registered with the loop;
a TCP connection per truncated answer (RFC 7766), closed when its lookup ends; one loop timer at
the resolver's next deadline. /etc/resolv.conf and /etc/hosts (paths are parameters) are read at
the start and again when their mtime changes (checked at most once a second).

The services (callbacks always run from the loop, never inside the call that asked):

* ``resolve(target, callback)``: ``target`` a SIP URI text or a URI object ("sip:", "sips:")
  or "host", "host:port", "[v6]:port"; ``callback(Located)`` with the RFC 3263 targets
  (proto, ip, port) in the order to try, or an empty list and the error.
* ``locate(host, port, transport, secure, callback)``: the same from a URI's parts.
* ``cached(target)``, ``cached_locate(host, port, transport, secure)``: the targets when
  everything needed is known now (numeric host, hosts, cache), else None; nothing is sent.
  The fast path of a send (a selection is remembered for a second: ~1 us).
* ``lookup(name, qtype, callback)``: one record type (tuple of data, or a Negative).

A name whose servers never answer is called back with a FAILED error within the deadline
(5 s, or timeout*attempts*servers from resolv.conf when smaller).
"""

import errno
import os
import random
import socket

from . import log
from .dns import message as m
from .dns.cache import FAILED, NXDOMAIN, Cache, Negative
from .dns.config import parse_hosts, parse_resolv_conf
from .dns.locate import Located, locate
from .dns.resolver import DEFAULT_DEADLINE, MISS, Resolver
from .sip.errors import ParseError
from .sip.uri import URI

RECV_BATCH = 64
# RFC 5452 4.5, 9.2: the source port is part of what a spoofer must guess.  The UDP socket of
# a family is replaced by a new one (a new random port) after this many queries, once nothing
# is in flight on it
QUERIES_PER_SOCKET = 32
# A selection is a chain of lookups (NAPTR, SRV, A/AAAA), each bounded by the resolver's
# deadline; slow answers at each step could add up: the whole selection ends by this
LOCATE_DEADLINE = 8.0
MEMO_SECONDS = 1.0              # cached_locate's memory of a selection
MEMO_MAX = 256
MAX_UDP_ANSWER = 4096           # the receive size, and the largest EDNS0 size offered
_CHECK_FILES_EVERY = 1.0        # seconds between mtime checks of resolv.conf and hosts
_MAX_TCP_ANSWER = 65535


class _TcpQuery:
    """One query over TCP (RFC 1035 4.2.2: two-octet length, then the message)."""

    __slots__ = ("sock", "server", "out", "buf")

    def __init__(self, sock, server, data):
        self.sock = sock
        self.server = server
        self.out = len(data).to_bytes(2, "big") + data
        self.buf = bytearray()


class _Job:
    """A caller's callback while its answer is on the way: called once, from the loop; with a
    guard timer, FAILED when the answer is later than that."""

    __slots__ = ("callback", "inside", "over", "result", "guard")

    def __init__(self, callback):
        self.callback = callback
        self.inside = True      # still inside the call that asked
        self.over = False
        self.result = None
        self.guard = None

    def done(self, result):
        if self.over:
            return
        self.over = True
        if self.inside:
            self.result = result
            return
        if self.guard is not None:
            self.guard.cancel()
        self.callback(result)

    def expire(self, name, seconds):
        if not self.over:
            self.over = True
            self.callback(Located([], Negative(FAILED, f"{name}: not resolved within "
                                                       f"{seconds:g} s")))


class DnsClient:
    def __init__(self, loop, resolv_conf="/etc/resolv.conf", hosts="/etc/hosts", port=53,
                 protos=("udp", "tcp"), families=(m.A, m.AAAA), deadline=DEFAULT_DEADLINE,
                 cache=None, edns_size=0, rng=None, check_files_every=_CHECK_FILES_EVERY,
                 naptr=True, srv_lb=True, retr_time=None, retr_no=None, servers_no=None,
                 locate_deadline=LOCATE_DEADLINE):
        self.loop = loop
        self.locate_deadline = locate_deadline
        self.naptr = naptr
        self.srv_lb = srv_lb
        # Kamailio's dns_retr_time, dns_retr_no, dns_servers_no: over resolv.conf's
        self._overrides = (retr_time, retr_no, servers_no)
        self.check_files_every = check_files_every
        self.resolv_conf_path = resolv_conf
        self.hosts_path = hosts
        self.port = port
        self.protos = tuple(protos)
        self.families = tuple(families)
        self.rng = rng or random.SystemRandom()
        self._mtimes = {}
        self._checked = None
        self.resolver = Resolver(parse_resolv_conf("", port), self.rng, self._transmit,
                                 cache if cache is not None else Cache(), {},
                                 min(edns_size, MAX_UDP_ANSWER), deadline)
        self._socks = {}        # family -> UDP socket
        self._uses = {}         # family -> queries sent from its socket
        self._memo = {}         # (host, port, transport, secure) -> (until, targets)
        self._tcp = {}          # resolver key -> _TcpQuery
        self._timer = None
        self._timer_at = None
        self._check_files(loop.time())

    # -- the files ---------------------------------------------------------------------------
    def _read_if_changed(self, path):
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            mtime = None
        if path in self._mtimes and self._mtimes[path] == mtime:
            return None
        self._mtimes[path] = mtime
        if mtime is None:
            return ""
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read(1 << 20)
        except OSError as exc:
            log.limited(("dns-file", path), log.WARN, f"dns: cannot read {path}: {exc}")
            return ""

    def _check_files(self, now):
        if self._checked is not None and now - self._checked < self.check_files_every:
            return
        self._checked = now
        text = self._read_if_changed(self.resolv_conf_path)
        if text is not None:
            conf = parse_resolv_conf(text, self.port)
            retr_time, retr_no, servers_no = self._overrides
            if retr_time:
                conf.timeout = float(retr_time)
            if retr_no:
                conf.attempts = retr_no
            if servers_no:
                conf.nameservers = conf.nameservers[:servers_no]
            self.resolver.conf = conf
        text = self._read_if_changed(self.hosts_path)
        if text is not None:
            self.resolver.hosts = parse_hosts(text)

    # -- services ----------------------------------------------------------------------------
    def resolve(self, target, callback):
        """``callback(Located)`` for a SIP URI (text or URI) or a host[:port]."""
        try:
            host, port, transport, secure = _target_parts(target)
        except ValueError as exc:
            self.loop.call_later(0, callback, Located([], Negative(NXDOMAIN, str(exc))))
            return
        self.locate(host, port, transport, secure, callback)

    def locate(self, host, port, transport, secure, callback):
        now = self.loop.time()
        self._check_files(now)
        job = _Job(callback)
        locate(self.resolver, host, port, transport, secure, now, job.done, self.rng,
               self.protos, self.families, False, self.naptr, self.srv_lb)
        self._started(job, host, self.locate_deadline)

    def _started(self, job, name, deadline):
        if job.over:        # known at once: called back from the loop, not from here
            self.loop.call_later(0, job.callback, job.result)
        else:
            job.inside = False
            if deadline is not None:
                job.guard = self.loop.call_later(deadline, job.expire, name, deadline)
        self._after()

    def cached(self, target):
        """The targets [(proto, ip, port)] of a SIP URI or host[:port] if known without
        asking, else None."""
        try:
            host, port, transport, secure = _target_parts(target)
        except ValueError:
            return None
        return self.cached_locate(host, port, transport, secure)

    def cached_locate(self, host, port, transport, secure):
        """``cached`` from a URI's parts.  The selection is remembered for up to
        MEMO_SECONDS (a request and its retransmissions, the calls of a busy second pay one
        selection; records that expire meanwhile are used at most that much longer)."""
        now = self.loop.time()
        key = (host, port, transport, secure)
        memo = self._memo.get(key)
        if memo is not None and memo[0] > now:
            return list(memo[1])
        self._check_files(now)
        box = []
        locate(self.resolver, host, port, transport, secure, now, box.append, self.rng,
               self.protos, self.families, True, self.naptr, self.srv_lb)
        if box and box[0].targets:
            if len(self._memo) >= MEMO_MAX:
                self._memo.clear()
            self._memo[key] = (now + MEMO_SECONDS, tuple(box[0].targets))
            return box[0].targets
        return None

    def lookup(self, name, qtype, callback):
        now = self.loop.time()
        self._check_files(now)
        job = _Job(callback)
        self.resolver.lookup(name, qtype, now, job.done)
        self._started(job, name, None)     # the resolver's deadline bounds one lookup

    def close(self):
        """Every lookup in flight fails; the sockets are closed."""
        self.resolver.cancel_all("resolver closed", self.loop.time())
        self._after()
        for sock in self._socks.values():
            self.loop.remove_reader(sock.fileno())
            sock.close()
        self._socks.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- sending -----------------------------------------------------------------------------
    def _udp_socket(self, family, key):
        """The family's socket for the query ``key`` (a new one when it is due)."""
        sock = self._socks.get(family)
        if sock is not None and self._uses[family] >= QUERIES_PER_SOCKET and \
                not any((":" in k[1][0]) == (family == socket.AF_INET6)
                        for k in self.resolver.pending if k != key):
            self.loop.remove_reader(sock.fileno())
            sock.close()
            sock = None
        if sock is None:
            self._uses[family] = 0
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            self._socks[family] = sock
            self.loop.add_reader(sock.fileno(), lambda: self._read_udp(sock))
        return sock

    def _transmit(self, proto, server, data, key):
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        try:
            if proto == "udp":
                self._udp_socket(family, key).sendto(data, server)
                self._uses[family] += 1
                return
            old = self._tcp.pop(key, None)
            if old is not None:
                self._close_tcp(old)
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            query = _TcpQuery(sock, server, data)
            self._tcp[key] = query
            err = sock.connect_ex(server)
            if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
                raise OSError(err, os.strerror(err))
            self.loop.add_writer(sock.fileno(), lambda: self._tcp_writable(key, query))
        except OSError as exc:
            # the try times out like a silent server (the resolver moves on)
            log.limited(("dns-send", server), log.WARN,
                        f"dns: cannot send to {server[0]}:{server[1]} over {proto}: {exc}")

    # -- receiving ---------------------------------------------------------------------------
    def _read_udp(self, sock):
        now = self.loop.time()
        try:
            for _ in range(RECV_BATCH):
                try:
                    data, addr = sock.recvfrom(MAX_UDP_ANSWER)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue        # an ICMP error queued on the socket
                what = self.resolver.receive(data, (addr[0], addr[1]), "udp", now)
                if what == "bad":
                    log.limited(("dns-bad", addr[0]), log.NOTICE,
                                f"dns: malformed message from {addr[0]}:{addr[1]} dropped")
                elif what == "unmatched":   # late, duplicate, or a guess at our ids
                    log.limited(("dns-unmatched", addr[0]), log.DBG,
                                f"dns: unexpected answer from {addr[0]}:{addr[1]} dropped")
        finally:            # a waiter that raised must not leave the timer unset
            self._after()

    def _tcp_writable(self, key, query):
        sock = query.sock
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            log.limited(("dns-tcp", query.server), log.WARN,
                        f"dns: TCP to {query.server[0]}:{query.server[1]}: "
                        f"{os.strerror(err)}")
            self._drop_tcp(key)
            return
        try:
            sent = sock.send(query.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop_tcp(key)
            return
        query.out = query.out[sent:]
        if not query.out:
            self.loop.remove_writer(sock.fileno())
            self.loop.add_reader(sock.fileno(), lambda: self._tcp_readable(key, query))

    def _tcp_readable(self, key, query):
        try:
            chunk = query.sock.recv(_MAX_TCP_ANSWER + 2 - len(query.buf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        query.buf += chunk
        buf = query.buf
        if len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
            data = bytes(buf[2:2 + int.from_bytes(buf[:2], "big")])
            self._drop_tcp(key)
            try:
                self.resolver.receive(data, query.server, "tcp", self.loop.time())
            finally:
                self._after()
        elif not chunk:
            self._drop_tcp(key)     # closed before a whole answer: the try times out

    def _drop_tcp(self, key):
        query = self._tcp.pop(key, None)
        if query is not None:
            self._close_tcp(query)

    def _close_tcp(self, query):
        fd = query.sock.fileno()
        if fd >= 0:
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
        query.sock.close()

    # -- time --------------------------------------------------------------------------------
    def _expire(self):
        self._timer = self._timer_at = None
        try:
            self.resolver.expire(self.loop.time())
        finally:
            self._after()

    def _after(self):
        """After the resolver ran: TCP connections of ended lookups closed, the timer set."""
        if self._tcp:
            for key in [k for k in self._tcp if k not in self.resolver.pending]:
                self._drop_tcp(key)
        when = self.resolver.next_deadline()
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = None if when is None else self.loop.call_at(when, self._expire)

    def counters(self):
        """The resolver's counters for ``ser-ctl stats`` (``dns_*``)."""
        out = {f"dns_{k}": v for k, v in self.resolver.counters.items()}
        cache = self.resolver.cache
        out.update(dns_cache_hits=cache.hits, dns_cache_misses=cache.misses,
                   dns_cache_entries=len(cache), dns_in_flight=len(self.resolver.lookups))
        return out

    def sockets(self):
        """How many sockets the client holds (tests: TCP ones must not outlive a lookup)."""
        return len(self._socks) + len(self._tcp)


# Kamailio's core parameters for DNS (core/cfg.y, core/dns_cache.c) and what they set here
# (serlite's defaults differ where the issue asks for RFC 3263 as written: NAPTR and SRV
# weights on); dns_use_search_list is accepted and not acted on (see dns/config.py)
KAMAILIO_PARAMS = ("dns_retr_time", "dns_retr_no", "dns_servers_no", "dns_try_ipv6",
                   "dns_try_naptr", "dns_srv_lb", "use_dns_cache", "dns_cache_min_ttl",
                   "dns_cache_max_ttl", "dns_cache_negative_ttl", "dns_cache_max_entries")


def options_from_globals(globals_):
    """``DnsClient`` keyword arguments from a config's core parameters (Kamailio's names):
    dns_retr_time (s per try), dns_retr_no (rounds over the servers), dns_servers_no (the
    first N of resolv.conf), dns_try_ipv6 (AAAA too), dns_try_naptr, dns_srv_lb (SRV weights),
    use_dns_cache and dns_cache_min_ttl/max_ttl/negative_ttl (s), dns_cache_max_entries."""
    g = globals_
    kw = {}
    for name, key in (("dns_retr_time", "retr_time"), ("dns_retr_no", "retr_no"),
                      ("dns_servers_no", "servers_no")):
        if g.get(name):
            kw[key] = int(g[name])
    if "dns_try_ipv6" in g:
        kw["families"] = (m.A, m.AAAA) if g["dns_try_ipv6"] else (m.A,)
    if "dns_try_naptr" in g:
        kw["naptr"] = bool(g["dns_try_naptr"])
    if "dns_srv_lb" in g:
        kw["srv_lb"] = bool(g["dns_srv_lb"])
    defaults = Cache()
    kw["cache"] = Cache(
        max_entries=(int(g.get("dns_cache_max_entries", defaults.max_entries))
                     if g.get("use_dns_cache", 1) else 0),
        min_ttl=int(g.get("dns_cache_min_ttl", defaults.min_ttl)),
        max_ttl=int(g.get("dns_cache_max_ttl", defaults.max_ttl)),
        default_negative_ttl=int(g.get("dns_cache_negative_ttl",
                                       defaults.default_negative_ttl)))
    return kw


def _target_parts(target):
    """(host, port, transport, secure) of a SIP URI (text or URI) or host[:port]."""
    if isinstance(target, URI):
        uri = target
    elif target[:4].lower() in ("sip:", "sips"):
        try:
            uri = URI.parse(target)
        except ParseError as exc:
            raise ValueError(f"bad URI {target[:80]!r}: {exc}") from None
    else:
        host, port = target, None
        if target.startswith("["):
            end = target.find("]")
            if end < 0:
                raise ValueError(f"bad host {target[:80]!r}")
            host, rest = target[:end + 1], target[end + 1:]
            if rest.startswith(":"):
                port = rest[1:]
        elif target.count(":") == 1:
            host, port = target.split(":")
        if port is not None:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"bad port in {target[:80]!r}")
            port = int(port)
        return host, port, None, False
    if uri.scheme not in ("sip", "sips"):
        raise ValueError(f"cannot locate a {uri.scheme}: URI")
    # RFC 3263 4: maddr, when present, is the host to look up
    host = uri.maddr or uri.host
    return host, uri.port, uri.transport, uri.scheme == "sips"


__all__ = ["DnsClient", "Located", "FAILED", "MISS", "NXDOMAIN"]
