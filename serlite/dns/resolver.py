"""The stub resolver as a state machine: lookups of (name, type) answered from /etc/hosts, the
cache, or the name servers of resolv.conf; no socket, no clock (sans-I/O).

The edge (serlite/dns_client.py) owns the sockets and the timer.  It hands in ``transmit(proto,
server, data, key)`` (send ``data`` to ``server`` (ip, port) over "udp" or "tcp"), calls
``receive(data, server, proto, now)`` with every datagram or TCP message read, and
``expire(now)`` at ``next_deadline()``.  ``lookup(name, qtype, now, done)`` calls ``done`` with
a tuple of record data (see message.Record) or a ``cache.Negative`` — at once when known
(hosts, cache), otherwise from ``receive``/``expire``.

Tries: the servers in resolv.conf order, round ``attempts`` times, each try waiting
``timeout`` s for its answer; an answer to an earlier try still counts while the lookup lasts.
A server that let a try time out is asked after the others for SILENT_FOR s (until it
answers again), so that a dead first name server costs one timeout, not one per lookup.
The whole lookup ends within ``deadline`` s (5 s): then every waiter gets a FAILED answer.
A SERVFAIL, REFUSED, NOTIMP or FORMERR moves on to the next server at once.  A truncated
answer (TC, RFC 1035 4.2.1) is asked again over TCP of the same server (RFC 7766 5).

Answers are matched on (id, server, question): the id drawn at random per try, the server the
one asked, the question echoed (RFC 5452 9.1); anything else is dropped and counted.  CNAME
chains (RFC 1034 3.6.2) are followed within the answer, and by a new query when the answer
stops at an alias, at most ``max_cname`` links.  Lookups of the same (name, type) in flight
share one query; at most ``max_lookups`` are in flight (then FAILED at once).
"""

from . import message as m
from .cache import FAILED, NODATA, NXDOMAIN, Cache, Negative

MISS = "miss"                   # cache_only lookups: not known without asking
DEFAULT_DEADLINE = 5.0
SILENT_FOR = 60.0               # a server that let a try time out is asked last this long
_RETRY_RCODES = (m.SERVFAIL, m.REFUSED, m.NOTIMP, m.FORMERR)


class _Lookup:
    """One (name, type) in flight and who waits for it."""

    __slots__ = ("name", "qtype", "qname", "waiters", "tries", "keys", "wires", "deadline",
                 "try_deadline", "failed", "why", "cnames", "ttl", "order")

    def __init__(self, name, qtype, deadline, order):
        self.name = name                # as asked (the cache key)
        self.qname = name               # what is asked now (after CNAMEs)
        self.qtype = qtype
        self.waiters = []
        self.tries = 0
        self.keys = []                  # (id, server, qname, qtype) of every try
        self.wires = {}                 # key -> the query's bytes (for TCP after TC)
        self.deadline = deadline
        self.try_deadline = deadline
        self.failed = set()             # servers that answered with an error
        self.why = "no answer"
        self.cnames = 0
        self.ttl = None                 # the smallest TTL along a CNAME chain
        self.order = order              # the servers in the order this lookup asks them


class Resolver:
    def __init__(self, conf, rng, transmit, cache=None, hosts=None, edns_size=0,
                 deadline=DEFAULT_DEADLINE, max_lookups=256, max_cname=8):
        self.conf = conf
        self.rng = rng                  # random.Random-like: getrandbits (query ids)
        self.transmit = transmit
        self.cache = cache if cache is not None else Cache()
        self.hosts = hosts or {}
        self.edns_size = edns_size
        self.deadline = deadline
        self.max_lookups = max_lookups
        self.max_cname = max_cname
        self.now = 0.0                  # the time of the event being handled (for waiters
                                        # that start the next lookup from their callback)
        self.pending = {}               # (id, server, qname, qtype) -> _Lookup
        self.silent = {}                # server -> until when it is asked last
        self.lookups = {}               # (name, qtype) -> _Lookup
        self.counters = {"queries": 0, "tcp": 0, "answers": 0, "bad": 0, "unmatched": 0,
                         "timeouts": 0, "failures": 0}

    # -- asking ------------------------------------------------------------------------------
    def in_hosts(self, name):
        return name.lower().rstrip(".") in self.hosts

    def known(self, name, qtype, now):
        """What hosts or the cache say of (name, qtype) without asking: data, a Negative, or
        None."""
        name = name.lower().rstrip(".")
        if qtype in (m.A, m.AAAA):
            entry = self.hosts.get(name)
            if entry is not None:
                data = entry[qtype == m.AAAA]
                return data if data else Negative(NODATA, f"{name}: no such address in hosts")
        return self.cache.get(name, qtype, now)

    def lookup(self, name, qtype, now, done, cache_only=False):
        """``done(result)`` with the data tuple or a Negative for (name, qtype)."""
        self.now = now
        name = name.lower().rstrip(".")
        known = self.known(name, qtype, now)
        if known is not None:
            done(known)
            return
        if cache_only:
            done(Negative(MISS, f"{name}: not cached"))
            return
        lk = self.lookups.get((name, qtype))
        if lk is not None:
            lk.waiters.append(done)
            return
        try:
            m.encode_name(name)
        except m.DnsError as exc:
            done(Negative(NXDOMAIN, exc.reason))
            return
        if len(self.lookups) >= self.max_lookups:
            done(Negative(FAILED, f"{self.max_lookups} lookups in flight already"))
            return
        servers = self.conf.nameservers
        timeout = self.conf.timeout * self.conf.attempts * len(servers)
        if self.silent:
            # resolv.conf order, but a server silent lately after the others, so that the
            # next steps of an RFC 3263 selection do not wait for it again (stable sort)
            servers = sorted(servers, key=lambda s: self.silent.get(s, 0) > now)
        lk = _Lookup(name, qtype, now + min(self.deadline, timeout), servers)
        lk.waiters.append(done)
        self.lookups[(name, qtype)] = lk
        self._try(lk, now)

    def _try(self, lk, now):
        """Send the next try of ``lk``, or fail it when every try was made."""
        servers = lk.order
        while lk.tries < len(servers) * self.conf.attempts:
            server = servers[lk.tries % len(servers)]
            lk.tries += 1
            if server in lk.failed:
                continue
            key = (self.rng.getrandbits(16), server, lk.qname, lk.qtype)
            while key in self.pending:
                key = (self.rng.getrandbits(16), server, lk.qname, lk.qtype)
            wire = m.encode_query(key[0], lk.qname, lk.qtype, self.edns_size)
            self.pending[key] = lk
            lk.keys.append(key)
            lk.wires[key] = wire
            lk.try_deadline = min(now + self.conf.timeout, lk.deadline)
            self.counters["queries"] += 1
            self.transmit("udp", server, wire, key)
            return
        self._finish(lk, Negative(FAILED, f"{lk.qname}: {lk.why}"), now)

    # -- answers -----------------------------------------------------------------------------
    def receive(self, data, server, proto, now):
        """A message read from ``server`` over ``proto``: an answer to a try, or dropped.
        Returns what it was: "answer", "bad" (malformed) or "unmatched"."""
        self.now = now
        try:
            msg = m.decode(data)
        except m.DnsError:
            self.counters["bad"] += 1
            return "bad"
        if not msg.is_response or len(msg.questions) != 1:
            self.counters["unmatched"] += 1
            return "unmatched"
        qname, qtype = msg.questions[0]
        key = (msg.id, server, qname, qtype)
        lk = self.pending.get(key)
        if lk is None:
            self.counters["unmatched"] += 1
            return "unmatched"
        self.counters["answers"] += 1
        if self.silent:
            self.silent.pop(server, None)
        if msg.truncated:
            if proto == "udp":      # RFC 7766 5: ask the same server again over TCP
                self.counters["tcp"] += 1
                lk.try_deadline = min(now + self.conf.timeout, lk.deadline)
                self.transmit("tcp", server, lk.wires[key], key)
                return "answer"
            # a truncated answer over TCP: take what it holds
        rcode = msg.rcode
        if rcode in _RETRY_RCODES or rcode not in (m.NOERROR, m.NXDOMAIN):
            lk.failed.add(server)
            lk.why = f"{m.RCODE_NAMES.get(rcode, rcode)} from {server[0]}"
            del self.pending[key]
            if len(lk.failed) >= len(lk.order):
                self._finish(lk, Negative(FAILED, f"{lk.qname}: {lk.why}"), now)
            elif lk.keys[-1] == key:        # the try in progress: the next one now
                self._try(lk, now)
            return "answer"
        self._answer(lk, msg, now)
        return "answer"

    def _answer(self, lk, msg, now):
        name, qtype = lk.qname, lk.qtype
        ttl = lk.ttl
        data = []
        for _ in range(self.max_cname + 1):
            alias = None
            for rec in msg.answers:
                if rec.name != name:
                    continue
                if rec.rtype == qtype:
                    data.append(rec.data)
                    ttl = rec.ttl if ttl is None else min(ttl, rec.ttl)
                elif rec.rtype == m.CNAME and alias is None:
                    alias = rec
            if data or alias is None:
                break
            lk.cnames += 1
            if lk.cnames > self.max_cname:
                self._finish(lk, Negative(FAILED, f"{lk.name}: CNAME chain longer than "
                                                   f"{self.max_cname}"), now)
                return
            ttl = alias.ttl if ttl is None else min(ttl, alias.ttl)
            name = alias.data
        soa = next((r for r in msg.authority if r.rtype == m.SOA), None)
        if data:
            if qtype == m.SRV:
                self._glue(msg, data, now)
            result = tuple(dict.fromkeys(data))
            self.cache.put(lk.name, qtype, ttl, result, now)
            self._finish(lk, result, now)
            return
        if name != lk.qname and soa is None and msg.rcode == m.NOERROR:
            # the answer stopped at an alias: ask for its target (RFC 1034 5.3.3)
            lk.ttl = ttl
            for key in lk.keys:     # answers to the alias's tries no longer count
                self.pending.pop(key, None)
            lk.keys.clear()
            lk.wires.clear()
            lk.qname = name
            lk.tries = 0
            lk.failed.clear()
            self._try(lk, now)
            return
        # RFC 2308 5: negative TTL = min(SOA TTL, SOA MINIMUM)
        neg_ttl = min(soa.ttl, soa.data[6]) if soa is not None else None
        if msg.rcode == m.NXDOMAIN:
            result = Negative(NXDOMAIN, f"{name}: no such name")
        else:
            result = Negative(NODATA, f"{name}: no {m.TYPE_NAMES.get(qtype, qtype)} record")
        self.cache.put_negative(lk.name, qtype, result.kind, result.reason, neg_ttl, now)
        self._finish(lk, result, now)

    def _glue(self, msg, srv_data, now):
        """Cache the additional section's addresses of this SRV answer's targets (RFC 2782:
        they save a query); nothing else from it (RFC 2181 5.4.1)."""
        targets = {d[3] for d in srv_data}
        glue = {}
        for rec in msg.additional:
            if rec.rtype in (m.A, m.AAAA) and rec.name in targets:
                entry = glue.setdefault((rec.name, rec.rtype), [rec.ttl, []])
                entry[0] = min(entry[0], rec.ttl)
                entry[1].append(rec.data)
        for (name, rtype), (ttl, data) in glue.items():
            self.cache.put(name, rtype, ttl, tuple(dict.fromkeys(data)), now)

    def _finish(self, lk, result, now):
        for key in lk.keys:
            self.pending.pop(key, None)
        self.lookups.pop((lk.name, lk.qtype), None)
        if isinstance(result, Negative) and result.kind == FAILED:
            self.counters["failures"] += 1
            self.cache.put_negative(lk.name, lk.qtype, FAILED, result.reason, None, now)
        error = None
        for done in lk.waiters:
            try:
                done(result)
            except Exception as exc:    # one waiter's fault must not starve the others
                error = error or exc
        if error is not None:
            raise error

    # -- time --------------------------------------------------------------------------------
    def next_deadline(self):
        """When ``expire`` must run next (None: nothing in flight)."""
        if not self.lookups:
            return None
        return min(lk.try_deadline for lk in self.lookups.values())

    def expire(self, now):
        """Tries whose wait ended: the next try, or FAILED past the lookup's deadline."""
        self.now = now
        for lk in [lk for lk in self.lookups.values() if lk.try_deadline <= now]:
            if (lk.name, lk.qtype) not in self.lookups:
                continue
            self.counters["timeouts"] += 1
            if lk.keys:
                if len(self.silent) > 16:       # servers of older resolv.confs
                    self.silent.clear()
                self.silent[lk.keys[-1][1]] = now + SILENT_FOR
            last = lk.keys[-1][1][0] if lk.keys else "?"
            lk.why = f"no answer from {last} within {self.conf.timeout:g} s"
            if now >= lk.deadline:
                self._finish(lk, Negative(FAILED, f"{lk.qname}: {lk.why} (gave up after "
                                                  f"{lk.tries} tries)"), now)
            else:
                self._try(lk, now)

    def cancel_all(self, why, now):
        """Every lookup in flight fails (the resolver is closed)."""
        self.now = now
        for lk in list(self.lookups.values()):
            if (lk.name, lk.qtype) in self.lookups:
                self._finish(lk, Negative(FAILED, f"{lk.qname}: {why}"), now)
