"""serlite.dns.resolver: the stub resolver's state machine, with a fake clock and network."""

from serlite.dns import message as m
from serlite.dns.cache import FAILED, NODATA, NXDOMAIN, Negative

from .fakenet import S1, S2, FakeNet, rr


def _ask(net, name, qtype, now=0.0):
    got = []
    net.resolver.lookup(name, qtype, now, got.append)
    return got


def test_hosts_first_without_a_query():
    net = FakeNet(hosts={"provider": (("10.0.0.5",), ())})
    assert _ask(net, "Provider.", m.A) == [("10.0.0.5",)]
    (neg,) = _ask(net, "provider", m.AAAA)
    assert neg.kind == NODATA and net.sent == []


def test_answer_matched_cached_and_shared_by_concurrent_lookups():
    net = FakeNet(zone={("sip.example", m.A): [rr("sip.example", m.A, "192.0.2.7", ttl=120)]})
    first, second = _ask(net, "sip.example", m.A), _ask(net, "SIP.example", m.A)
    assert len(net.sent) == 1                      # one query for both
    net.answer_all(0.1)
    assert first == second == [("192.0.2.7",)]
    assert _ask(net, "sip.example", m.A, now=119) == [("192.0.2.7",)] and net.sent == []
    _ask(net, "sip.example", m.A, now=120.1)       # expired: asked again
    assert len(net.sent) == 1


def test_query_ids_are_random_per_query():
    net = FakeNet()
    for i in range(50):
        _ask(net, f"h{i}.example", m.A)
    assert len({q.id for _p, _s, q, _k in net.sent}) > 45


def test_answers_with_wrong_id_question_or_server_are_dropped():
    net = FakeNet(zone={("a.example", m.A): [rr("a.example", m.A, "192.0.2.1")]})
    got = _ask(net, "a.example", m.A)
    _proto, server, query, _key = net.sent[0]
    r = net.resolver
    assert r.receive(net.response(query, qid=query.id ^ 1), server, "udp", 0.1) == "unmatched"
    assert r.receive(net.response(query, question=("b.example", m.A)), server, "udp",
                     0.1) == "unmatched"
    assert r.receive(net.response(query), ("203.0.113.9", 53), "udp", 0.1) == "unmatched"
    assert r.receive(net.response(query)[:20], server, "udp", 0.1) == "bad"
    assert r.receive(m.encode_query(query.id, "a.example", m.A), server, "udp",
                     0.1) == "unmatched"             # a query, not a response
    assert got == []
    assert r.receive(net.response(query), server, "udp", 0.2) == "answer"
    assert got == [("192.0.2.1",)]


def test_nxdomain_cached_for_the_soa_minimum_and_nodata_apart():
    soa = rr("example", m.SOA, ("ns.example", "h.example", 1, 2, 3, 4, 20), ttl=300)
    net = FakeNet()
    got = _ask(net, "nope.example", m.A)
    _p, server, query, _k = net.sent.pop()
    net.resolver.receive(net.response(query, flags=m.NXDOMAIN, answers=[], authority=[soa]),
                         server, "udp", 0)
    assert got[0].kind == NXDOMAIN
    assert _ask(net, "nope.example", m.A, now=19)[0].kind == NXDOMAIN and not net.sent
    _ask(net, "nope.example", m.A, now=20)
    assert net.sent                              # min(300, 20) s later: asked again
    got = _ask(net, "host.example", m.AAAA)
    _p, server, query, _k = net.sent.pop()
    net.resolver.receive(net.response(query, answers=[], authority=[soa]), server, "udp", 0)
    assert got[0].kind == NODATA


def test_silent_servers_tried_in_order_then_failed_within_the_deadline():
    net = FakeNet(servers=(S1, S2), timeout=1.0, attempts=2, deadline=5.0)
    got = _ask(net, "dead.example", m.A)
    now, order = 0.0, []
    for _ in range(20):                            # bounded: a few deadlines at most
        order += [s for _p, s, _q, _k in net.sent]
        net.sent.clear()
        deadline = net.resolver.next_deadline()
        if deadline is None:
            break
        now = deadline
        net.resolver.expire(now)
    assert order == [S1, S2, S1, S2]               # resolv.conf order, attempts rounds
    assert now == 4.0 and got[0].kind == FAILED and "no answer" in got[0].reason
    assert not net.resolver.pending and not net.resolver.lookups
    assert _ask(net, "dead.example", m.A, now=4.1)[0].kind == FAILED     # failure cached
    assert not net.sent


def test_the_deadline_bounds_a_long_resolv_conf():
    net = FakeNet(servers=(S1, S2), timeout=30.0, attempts=5, deadline=5.0)
    got = _ask(net, "dead.example", m.A)
    assert net.resolver.next_deadline() == 5.0
    net.resolver.expire(5.0)
    assert got[0].kind == FAILED


def test_late_answer_to_an_earlier_try_still_counts():
    net = FakeNet(servers=(S1, S2), zone={("a.example", m.A): [rr("a.example", m.A, "192.0.2.1")]})
    got = _ask(net, "a.example", m.A)
    first = net.sent.pop(0)
    net.resolver.expire(1.0)                       # S1 silent: S2 asked
    assert net.sent[0][1] == S2
    net.resolver.receive(net.response(first[2]), S1, "udp", 1.5)
    assert got == [("192.0.2.1",)] and not net.resolver.pending


def test_servfail_moves_to_the_next_server_at_once():
    net = FakeNet(servers=(S1, S2), zone={("a.example", m.A): m.SERVFAIL})
    got = _ask(net, "a.example", m.A)
    net.answer_all(0.01)
    assert got[0].kind == FAILED and "SERVFAIL" in got[0].reason
    assert net.resolver.lookups == {}


def test_truncated_answer_asked_again_over_tcp_of_the_same_server():
    srv = rr("big.example", m.SRV, (1, 1, 5060, "t.example"))
    net = FakeNet(zone={("big.example", m.SRV): [srv]})
    got = _ask(net, "big.example", m.SRV)
    proto, server, query, key = net.sent.pop()
    net.resolver.receive(net.response(query, flags=m.TC, answers=[]), server, "udp", 0.1)
    assert net.sent[0][:2] == ("tcp", S1) and net.sent[0][3] == key
    net.answer_all(0.2)
    assert got == [((1, 1, 5060, "t.example"),)]


def test_cname_chain_in_one_answer_and_by_a_new_query_and_bounded():
    zone = {("www.example", m.A): [rr("www.example", m.CNAME, "a.example", ttl=30),
                                   rr("a.example", m.A, "192.0.2.1", ttl=90)],
            ("alias.example", m.A): [rr("alias.example", m.CNAME, "elsewhere.example")],
            ("elsewhere.example", m.A): [rr("elsewhere.example", m.A, "192.0.2.2")]}
    for i in range(12):
        zone[(f"l{i}.example", m.A)] = [rr(f"l{i}.example", m.CNAME, f"l{i + 1}.example")]
    net = FakeNet(zone=zone)
    a, b, c = (_ask(net, n, m.A) for n in ("www.example", "alias.example", "l0.example"))
    for _ in range(20):
        net.answer_all(0.1)
    assert a == [("192.0.2.1",)] and b == [("192.0.2.2",)]
    assert c[0].kind == FAILED and "CNAME chain" in c[0].reason
    # the chain's smallest TTL is the cached answer's
    assert net.resolver.cache.get("www.example", m.A, 29) and \
        not net.resolver.cache.get("www.example", m.A, 31)


def test_srv_additional_addresses_cached_for_its_targets_only():
    net = FakeNet()
    got = _ask(net, "_sip._udp.example", m.SRV)
    _p, server, query, _k = net.sent.pop()
    srv = rr("_sip._udp.example", m.SRV, (1, 1, 5060, "t.example"))
    extra = [rr("t.example", m.A, "192.0.2.9"), rr("victim.example", m.A, "6.6.6.6")]
    net.resolver.receive(net.response(query, answers=[srv], additional=extra), server, "udp", 0)
    assert got and net.resolver.known("t.example", m.A, 1) == ("192.0.2.9",)
    assert net.resolver.known("victim.example", m.A, 1) is None


def test_bounded_lookups_in_flight_and_bad_names():
    net = FakeNet()
    net.resolver.max_lookups = 3
    for i in range(3):
        _ask(net, f"h{i}.example", m.A)
    assert _ask(net, "h3.example", m.A)[0].kind == FAILED
    assert _ask(net, "a..b", m.A)[0].kind == NXDOMAIN


def test_a_waiter_that_raises_does_not_starve_the_others():
    net = FakeNet(zone={("a.example", m.A): [rr("a.example", m.A, "192.0.2.1")]})
    got = []

    def bad(_result):
        raise RuntimeError("boom")
    net.resolver.lookup("a.example", m.A, 0, bad)
    net.resolver.lookup("a.example", m.A, 0, got.append)
    try:
        net.answer_all(0.1)
    except RuntimeError:
        pass
    assert got == [("192.0.2.1",)] and not net.resolver.lookups
    assert not isinstance(got[0], Negative)


def test_mangled_answers_from_the_right_server_never_raise_and_lookups_still_end():
    import random
    rnd = random.Random(5452)
    soa = rr("example", m.SOA, ("ns.example", "h.example", 1, 2, 3, 4, 20))
    for round_ in range(300):
        net = FakeNet(servers=(S1, S2))
        got = _ask(net, f"n{round_}.example", m.SRV)
        _p, server, query, _k = net.sent.pop()
        good = bytearray(net.response(query, answers=[
            rr(f"n{round_}.example", m.CNAME, "t.example"),
            rr("t.example", m.SRV, (1, 2, 5060, "x.example"))], authority=[soa],
            additional=[rr("x.example", m.A, "192.0.2.1")]))
        for _ in range(rnd.randint(1, 4)):
            at = rnd.randrange(12, len(good))     # keep the id: the answer is matched
            good[at] = rnd.randrange(256)
        net.resolver.receive(bytes(good), server, "udp", 0.1)
        for _ in range(10):                       # bounded: the lookup ends by its deadline
            deadline = net.resolver.next_deadline()
            if deadline is None:
                break
            net.resolver.expire(deadline)
        assert len(got) == 1 and not net.resolver.pending


def test_a_silent_server_is_asked_last_until_it_answers_again():
    zone = {(f"h{i}.example", m.A): [rr(f"h{i}.example", m.A, "192.0.2.1")] for i in range(4)}
    net = FakeNet(servers=(S1, S2), zone=zone)
    _ask(net, "h0.example", m.A)
    net.sent.clear()                                 # S1 silent
    net.resolver.expire(1.0)
    net.answer_all(1.1)                              # S2 answers
    got = _ask(net, "h1.example", m.A, now=2.0)
    assert [s for _p, s, _q, _k in net.sent] == [S2]  # S2 first now: no wait for S1
    net.answer_all(2.1)
    assert got == [("192.0.2.1",)]
    _ask(net, "h2.example", m.A, now=61.5)           # 60 s later: resolv.conf order again
    assert net.sent[-1][1] == S1
    net.answer_all(61.6)                             # and S1 answering clears it
    _ask(net, "h3.example", m.A, now=62)
    assert net.sent[-1][1] == S1 and not net.resolver.silent
