"""The DNS client's costs, in process, no network: microseconds to decode a typical SRV answer
(two SRV records, their two addresses in the additional section, names compressed as a server
writes them), to take it through the resolver (match, cache, callback), to select RFC 3263
targets for a URI from the cache (the fast path of a send), and the bytes a cache entry takes
(tracemalloc, an A entry of one address and an SRV entry of two records).  The best of
``rounds``.

    python3 bench/dnssim.py [iterations] [rounds]
"""

import os
import random
import struct
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from serlite.dns import message as m  # noqa: E402
from serlite.dns.cache import Cache  # noqa: E402
from serlite.dns.config import ResolvConf  # noqa: E402
from serlite.dns.locate import locate  # noqa: E402
from serlite.dns.resolver import Resolver  # noqa: E402

SERVER = ("192.168.1.1", 53)


def srv_answer(qid):
    """A compressed answer for _sip._udp.example.com SRV, as a recursive server sends it."""
    out = bytearray(struct.pack("!HHHHHH", qid, m.QR | m.RD | m.RA, 1, 2, 0, 2))
    out += b"\x04_sip\x04_udp\x07example\x03com\x00" + struct.pack("!HH", m.SRV, 1)
    targets = []
    for prio, port, host in ((10, 5060, b"sip1"), (20, 5060, b"sip2")):
        rdata_at = len(out) + 12 + 6
        rdata = struct.pack("!HHH", prio, 50, port) + bytes((len(host),)) + host + b"\xc0\x16"
        out += b"\xc0\x0c" + struct.pack("!HHIH", m.SRV, 1, 3600, len(rdata)) + rdata
        targets.append(rdata_at)
    for i, at in enumerate(targets):
        out += struct.pack("!H", 0xC000 | at) + struct.pack("!HHIH", m.A, 1, 3600, 4)
        out += bytes((192, 0, 2, 10 + i))
    return bytes(out)


def best(fn, n, rounds):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn(n)
        times.append(time.perf_counter() - t)
    return min(times) / n * 1e6


def main(n=20000, rounds=5):
    wire = srv_answer(0x4242)
    msg = m.decode(wire)
    assert [r.data for r in msg.answers][0] == (10, 50, 5060, "sip1.example.com"), msg.answers
    assert msg.additional[1].name == "sip2.example.com"

    def decode(k):
        for _ in range(k):
            m.decode(wire)
    print(f"decode of a {len(wire)}-byte SRV answer (2 SRV + 2 A): "
          f"{best(decode, n, rounds):.1f} us")

    sent = []
    resolver = Resolver(ResolvConf([SERVER]), random.Random(1),
                        lambda proto, server, data, key: sent.append(key),
                        Cache(max_entries=0))

    def through(k):
        got = []
        for _ in range(k):
            resolver.lookup("_sip._udp.example.com", m.SRV, 0.0, got.append)
            qid = sent.pop()[0]
            resolver.receive(srv_answer(qid), SERVER, "udp", 0.0)
        assert len(got) == k and len(got[0]) == 2
    print(f"query + answer through the resolver (encode, match, decode, callback; "
          f"answer bytes built too): {best(through, n // 4, rounds):.1f} us")

    resolver.cache = Cache()
    resolver.lookup("_sip._udp.example.com", m.SRV, 0.0, lambda r: None)
    resolver.receive(srv_answer(sent.pop()[0]), SERVER, "udp", 0.0)
    rng = random.Random(2)

    def cached(k):
        box = []
        for _ in range(k):
            locate(resolver, "example.com", None, "udp", False, 1.0, box.append, rng,
                   families=(m.A,), cache_only=True)
        assert box[-1].targets[0] == ("udp", "192.0.2.10", 5060), box[-1]
    print(f"RFC 3263 targets of sip:example.com;transport=udp from the cache: "
          f"{best(cached, n // 4, rounds):.1f} us")

    from serlite.dns_client import DnsClient
    from serlite.loop import Loop
    loop = Loop()
    empty = os.devnull      # no resolv.conf servers needed, no hosts: all from the cache
    client = DnsClient(loop, empty, empty, families=(m.A,))
    t = loop.time()         # the client's clock: the cache filled as an answer would
    cache = client.resolver.cache
    cache.put("_sip._udp.example.com", m.SRV, 3600, tuple(r.data for r in msg.answers), t)
    for rec in msg.additional:
        cache.put(rec.name, m.A, 3600, (rec.data,), t)

    def memo(k):
        for _ in range(k):
            client.cached_locate("example.com", None, "udp", False)
        assert client.cached_locate("example.com", None, "udp", False)
    print(f"the same from DnsClient.cached_locate (the selection remembered 1 s): "
          f"{best(memo, n, rounds):.2f} us")
    client.close()
    loop.close()

    count = 5000
    for rtype, data, what in ((m.A, ("192.0.2.1",), "A, one address"),
                              (m.SRV, ((10, 50, 5060, "sip1.example.com"),
                                       (20, 50, 5060, "sip2.example.com")), "SRV, two records")):
        cache = Cache(max_entries=count)
        names = [f"host{i:05d}.example.com" for i in range(count)]
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i, name in enumerate(names):
            # the data as decoded: new strings and tuples per entry
            fresh = tuple((x[0], x[1], x[2], f"{x[3]}{i}") if isinstance(x, tuple)
                          else f"{x[:-1]}{i % 10}" for x in data)
            cache.put(name, rtype, 60, fresh, 0.0)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        print(f"cache entry ({what}): {(after - before) / count:.0f} bytes "
              f"(the name's string included)")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
