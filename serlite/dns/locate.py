"""RFC 3263 4: where to send a request for a SIP URI, as an ordered list of targets
``(proto, ip, port)`` that a transaction walks when one times out or answers 503 (4.3).

* a numeric host: itself, on the URI's port or 5060/5061 (4.2);
* a port given: the transport given (or UDP, TLS for sips), A/AAAA of the host (4.2);
* a transport given: its SRV (``_sip._udp``, ``_sip._tcp``, ``_sips._tcp``), else A/AAAA on
  the default port (4.1, 4.2);
* else NAPTR (4.1): SIP+D2U, SIP+D2T, SIPS+D2T (SIP+D2S only when SCTP is supported), of the
  transports supported, "s" flag, by order then preference; the first whose SRV has records
  wins.  No NAPTR usable: the SRV of each supported transport, asked at once, the first in
  the order udp, tcp, tls with records wins.  No SRV either: A/AAAA on 5060 (5061 for sips)
  over UDP (TLS for sips).
* SRV records by priority, and within one priority in RFC 2782's weighted random order (the
  random source is handed in); a lone target "." means the service is not offered.  Each
  target's addresses (from the SRV answer's additional section when it had them, else A and
  AAAA asked at once) in its place.

A name in /etc/hosts is taken as it is there: no NAPTR or SRV is asked for it.  A failure
(every server silent) ends the selection with its error, rather than trying the next kind
of record against servers known to be silent; only "no such record" answers fall through.

``locate(...)`` calls ``done(Located)`` once: at once when everything was known (numeric
host, hosts, cache), otherwise from the resolver's ``receive``/``expire``.
"""

import ipaddress

from . import message as m
from .cache import FAILED, NODATA, NXDOMAIN, Negative
from .resolver import MISS

SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp.",
              "sctp": "_sip._sctp."}
NAPTR_SERVICE = {"sip+d2u": "udp", "sip+d2t": "tcp", "sips+d2t": "tls", "sip+d2s": "sctp"}
DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "sctp": 5060, "tls": 5061}
MAX_TARGETS = 16


class Located:
    """The answer: ``targets`` [(proto, ip, port)] in the order to try, and ``error`` (a
    cache.Negative: kind NXDOMAIN/NODATA "unresolvable", FAILED "no answer") when empty."""

    __slots__ = ("targets", "error")

    def __init__(self, targets, error=None):
        self.targets = targets
        self.error = error

    def __repr__(self):
        return f"Located({self.targets!r}, {self.error!r})"


def failure_status(error):
    """The SIP final response for a request whose next hop did not resolve (SER's tm answers
    "478 Unresolvable destination"): a name or record that does not exist is the request's
    fault (478); name servers that fail or stay silent are ours (503, RFC 3261 16.7 6:
    the hop is unreachable for now)."""
    if error is not None and error.kind == FAILED:
        return 503, "Service Unavailable (DNS failed)"
    return 478, "Unresolvable destination"


def numeric(host):
    """The address text of a numeric host (IPv6 with or without brackets), else None."""
    host = host.strip("[]")
    if not host or not (host[0].isdigit() or ":" in host):
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def order_srv(records, rng, weighted=True):
    """RFC 2782 "Usage rules": by priority, and within a priority by weighted random
    selection (the weight-0 records first in the running sum, so that they are rarely
    chosen first).  ``records`` (priority, weight, port, target).  ``weighted`` False
    (Kamailio's dns_srv_lb=0): by priority, then the heavier first, no randomness."""
    if not weighted:
        return sorted(records, key=lambda r: (r[0], -r[1]))
    out = []
    for priority in sorted({r[0] for r in records}):
        group = [r for r in records if r[0] == priority]
        group.sort(key=lambda r: r[1] != 0)     # weight 0 first (stable)
        while group:
            total = sum(r[1] for r in group)
            pick = rng.randint(0, total) if total else 0
            running = 0
            for i, r in enumerate(group):
                running += r[1]
                if running >= pick:
                    out.append(group.pop(i))
                    break
    return out


def naptr_order(records, protos, secure):
    """The usable NAPTR records (RFC 3263 4.1) as (proto, SRV name), by order, preference."""
    usable = []
    for order, pref, flags, service, _regexp, replacement in records:
        proto = NAPTR_SERVICE.get(service)
        if proto is None or proto not in protos or flags != "s" or not replacement:
            continue
        if secure and proto != "tls":
            continue
        usable.append((order, pref, proto, replacement))
    usable.sort(key=lambda r: (r[0], r[1]))
    return [(proto, name) for _o, _p, proto, name in usable]


class _Locate:
    """One selection in progress."""

    def __init__(self, resolver, host, port, proto, secure, now, done, rng, protos,
                 families, cache_only, naptr=True, weighted=True):
        self.resolver = resolver
        self.host = host
        self.port = port
        self.proto = proto
        self.secure = secure
        self.done = done
        self.rng = rng
        resolver.now = now
        self.protos = protos
        self.families = families
        self.cache_only = cache_only
        self.naptr = naptr
        self.weighted = weighted
        self.finished = False

    def _lookup(self, name, qtype, then):
        # the next step starts when the answer to the last came: the resolver's time now
        # (the selection's start time would make its tries' waits already over)
        self.resolver.lookup(name, qtype, self.resolver.now, then, self.cache_only)

    def _gather(self, asks, then):
        """Ask every (name, qtype) of ``asks`` at once; ``then(results)`` in their order."""
        if not asks:
            then([])
            return
        results = [None] * len(asks)
        left = [len(asks)]

        def one(i):
            def got(result):
                results[i] = result
                left[0] -= 1
                if left[0] == 0:
                    then(results)
            return got
        for i, (name, qtype) in enumerate(asks):
            self._lookup(name, qtype, one(i))

    def _end(self, targets, error=None):
        if self.finished:
            return
        self.finished = True
        self.done(Located(targets[:MAX_TARGETS], None if targets else error))

    @staticmethod
    def _worst(results):
        """The error for a set of failed results: a miss, a failure, else unresolvable."""
        negs = [r for r in results if isinstance(r, Negative)]
        for kind in (MISS, FAILED, NXDOMAIN):
            for r in negs:
                if r.kind == kind:
                    return r
        return negs[0] if negs else Negative(NODATA, "no records")

    def start(self):
        if self.port is not None or self.resolver.in_hosts(self.host):
            proto = self.proto or ("tls" if self.secure else "udp")
            port = self.port or DEFAULT_PORT[proto]
            self._addresses([(proto, self.host, port)])
        elif self.proto is not None:
            self._srv([(self.proto, SRV_PREFIX[self.proto] + self.host)], fallback=True)
        elif self.naptr:
            self._lookup(self.host, m.NAPTR, self._naptr)
        else:
            self._naptr(Negative(NODATA, "NAPTR not asked (dns_try_naptr=0)"))

    def _fallback(self):
        """No NAPTR or SRV: A/AAAA on the default port (RFC 3263 4.1, 4.2)."""
        proto = self.proto or ("tls" if self.secure else "udp")
        if proto not in self.protos:
            self._end([], Negative(NODATA, f"{self.host}: {proto} not supported"))
            return
        self._addresses([(proto, self.host, DEFAULT_PORT[proto])])

    def _naptr(self, result):
        if isinstance(result, Negative) and result.kind in (MISS, FAILED):
            self._end([], result)
            return
        usable = [] if isinstance(result, Negative) else \
            naptr_order(result, self.protos, self.secure)
        if usable:
            self._srv_in_turn(usable)
            return
        order = ("tls",) if self.secure else ("udp", "tcp", "tls")
        self._srv([(p, SRV_PREFIX[p] + self.host) for p in order if p in self.protos],
                  fallback=True)

    def _srv_in_turn(self, usable):
        """NAPTR's SRV names one after the other: the first with records wins."""
        proto, name = usable[0]

        def got(result):
            if isinstance(result, Negative):
                if result.kind in (MISS, FAILED):
                    self._end([], result)
                elif len(usable) > 1:
                    self._srv_in_turn(usable[1:])
                else:
                    self._fallback()
                return
            self._srv_records(proto, result)
        self._lookup(name, m.SRV, got)

    def _srv(self, asks, fallback):
        """The SRV names of ``asks`` [(proto, name)] at once; the first with records wins."""
        if not asks:
            self._fallback()
            return

        def got(results):
            for (proto, _name), result in zip(asks, results):
                if not isinstance(result, Negative):
                    self._srv_records(proto, result)
                    return
            worst = self._worst(results)
            if worst.kind in (MISS, FAILED) or not fallback:
                self._end([], worst)
            else:
                self._fallback()
        self._gather([(name, m.SRV) for _proto, name in asks], got)

    def _srv_records(self, proto, records):
        if len(records) == 1 and records[0][3] == "":
            self._end([], Negative(NODATA, f"{self.host}: SIP over {proto} not offered "
                                           f"(SRV target \".\")"))
            return
        ordered = order_srv([r for r in records if r[3]], self.rng, self.weighted)
        self._addresses([(proto, r[3], r[2]) for r in ordered])

    def _addresses(self, wanted):
        """``wanted`` [(proto, name, port)] -> targets, each name's addresses in its place."""
        names = list(dict.fromkeys(name for _p, name, _port in wanted))
        asks = [(name, qtype) for name in names for qtype in self.families]

        def got(results):
            found = {}
            for (name, _qtype), result in zip(asks, results):
                if not isinstance(result, Negative):
                    found.setdefault(name, []).extend(result)
            targets = []
            for proto, name, port in wanted:
                for ip in found.get(name, ()):
                    if (proto, ip, port) not in targets:
                        targets.append((proto, ip, port))
            if not targets or any(isinstance(r, Negative) and r.kind == MISS
                                  for r in results):
                self._end([], self._worst(results))
            else:
                self._end(targets)
        self._gather(asks, got)


def locate(resolver, host, port, transport, secure, now, done, rng,
           protos=("udp", "tcp"), families=(m.A, m.AAAA), cache_only=False, naptr=True,
           weighted=True):
    """Select the targets for a URI's ``host``, ``port`` (int or None), ``transport`` param
    (text or None) and ``secure`` (sips:); ``done(Located)``.  ``protos``: the transports
    this server can send over; ``families``: (A, AAAA), or one of them; ``naptr`` False: no
    NAPTR asked (straight to SRV); ``weighted`` False: SRV by priority, heavier first."""
    proto = transport.lower() if transport else None
    if secure and proto in (None, "tcp", "tls"):
        proto = "tls" if proto is not None or port is not None else None
    if proto is not None and proto not in DEFAULT_PORT:
        done(Located([], Negative(NODATA, f"unknown transport {transport!r}")))
        return
    if proto is not None and proto not in protos:
        done(Located([], Negative(NODATA, f"transport {proto} not supported")))
        return
    ip = numeric(host)
    if ip is not None:
        if proto is None:
            proto = "tls" if secure else "udp"
            if proto not in protos:
                done(Located([], Negative(NODATA, f"transport {proto} not supported")))
                return
        done(Located([(proto, ip, port or DEFAULT_PORT[proto])]))
        return
    name = host.lower().rstrip(".")
    _Locate(resolver, name, port, proto, secure, now, done, rng, protos, families,
            cache_only, naptr, weighted).start()
