"""A fake network for the pure resolver: what it transmits is kept, answers are made from a
zone dict and handed back with a fake clock (no socket, no sleep)."""

import random

from serlite.dns import message as m
from serlite.dns.cache import Cache
from serlite.dns.config import ResolvConf
from serlite.dns.message import Record
from serlite.dns.resolver import Resolver

S1, S2 = ("192.0.2.53", 53), ("198.51.100.53", 53)


class FakeNet:
    def __init__(self, servers=(S1,), timeout=1.0, attempts=2, deadline=5.0, zone=None,
                 hosts=None, cache=None, seed=1):
        self.sent = []          # (proto, server, query Message, key)
        self.asked = []         # every question sent, in order
        self.zone = zone or {}  # (name, qtype) -> [Record] | rcode int
        self.resolver = Resolver(ResolvConf(list(servers), timeout, attempts),
                                 random.Random(seed), self._transmit,
                                 cache if cache is not None else Cache(), hosts or {},
                                 deadline=deadline)

    def _transmit(self, proto, server, data, key):
        query = m.decode(data)
        self.sent.append((proto, server, query, key))
        self.asked.append(query.questions[0])

    def response(self, query, flags=0, answers=None, authority=(), additional=(), qid=None,
                 question=None):
        q = question or query.questions[0]
        if answers is None:
            found = self.zone.get(q, [])
            if isinstance(found, int):
                flags, found = flags | found, []
            answers = found
        return m.encode_response(query.id if qid is None else qid, flags, [q], answers,
                                 authority, additional)

    def answer_all(self, now):
        """Answer every query sent and not answered yet from the zone."""
        while self.sent:
            proto, server, query, _key = self.sent.pop(0)
            self.resolver.receive(self.response(query), server, proto, now)


def rr(name, rtype, data, ttl=60):
    return Record(name, rtype, ttl, data)
