"""serlite.dns.locate: RFC 3263 target selection over the fake network."""

import collections
import random

import pytest

from serlite.dns import message as m
from serlite.dns.cache import FAILED, NODATA, NXDOMAIN
from serlite.dns.locate import locate, naptr_order, order_srv
from serlite.dns.resolver import MISS

from .fakenet import FakeNet, rr

D = "example.test"


def _zone(naptr=True, srv_udp=True, srv_tcp=False):
    zone = {(f"a.{D}", m.A): [rr(f"a.{D}", m.A, "192.0.2.1")],
            (f"a.{D}", m.AAAA): [rr(f"a.{D}", m.AAAA, "2001:db8::1")],
            (f"b.{D}", m.A): [rr(f"b.{D}", m.A, "192.0.2.2")],
            (f"b.{D}", m.AAAA): [],
            (D, m.A): [rr(D, m.A, "192.0.2.100")],
            (D, m.AAAA): []}
    zone[(D, m.NAPTR)] = [
        rr(D, m.NAPTR, (20, 10, "s", "sip+d2u", "", f"_sip._udp.{D}")),
        rr(D, m.NAPTR, (10, 10, "s", "sip+d2t", "", f"_sip._tcp.{D}")),
        rr(D, m.NAPTR, (5, 10, "s", "sips+d2t", "", f"_sips._tcp.{D}")),
        rr(D, m.NAPTR, (1, 10, "u", "e2u+sip", "!^.*$!sip:x@y!", "")),
    ] if naptr else []
    zone[(f"_sip._udp.{D}", m.SRV)] = [
        rr(f"_sip._udp.{D}", m.SRV, (20, 0, 5080, f"b.{D}")),
        rr(f"_sip._udp.{D}", m.SRV, (10, 5, 5070, f"a.{D}"))] if srv_udp else []
    zone[(f"_sip._tcp.{D}", m.SRV)] = [
        rr(f"_sip._tcp.{D}", m.SRV, (1, 0, 5090, f"b.{D}"))] if srv_tcp else []
    zone[(f"_sips._tcp.{D}", m.SRV)] = []
    return zone


def _locate(net, host, port=None, transport=None, secure=False, protos=("udp", "tcp"),
            families=(m.A, m.AAAA), rounds=10, cache_only=False):
    got = []
    locate(net.resolver, host, port, transport, secure, 0.0, got.append, random.Random(7),
           protos, families, cache_only)
    for _ in range(rounds):
        net.answer_all(0.1)
    assert len(got) == 1
    return got[0]


@pytest.mark.parametrize("host, port, transport, secure, want", [
    ("192.0.2.9", None, None, False, [("udp", "192.0.2.9", 5060)]),
    ("[2001:db8::9]", 5070, "TCP", False, [("tcp", "2001:db8::9", 5070)]),
    ("192.0.2.9", None, None, True, [("tls", "192.0.2.9", 5061)]),
])
def test_numeric_host_is_itself_without_a_query(host, port, transport, secure, want):
    net = FakeNet()
    assert _locate(net, host, port, transport, secure, protos=("udp", "tcp", "tls")).targets \
        == want
    assert net.sent == []


def test_naptr_order_then_srv_priority_then_addresses_in_place():
    net = FakeNet(zone=_zone(srv_tcp=True))
    got = _locate(net, D)
    # sips+d2t (order 5) unsupported (no tls), sip+d2t (order 10) is first: its SRV
    assert got.targets == [("tcp", "192.0.2.2", 5090)]
    net = FakeNet(zone=_zone(srv_tcp=False))    # the tcp SRV empty: the next NAPTR's
    assert _locate(net, D).targets == [("udp", "192.0.2.1", 5070), ("udp", "2001:db8::1", 5070),
                                       ("udp", "192.0.2.2", 5080)]


def test_no_naptr_srv_of_each_transport_then_the_first_in_udp_tcp_order():
    net = FakeNet(zone=_zone(naptr=False, srv_udp=False, srv_tcp=True))
    assert _locate(net, D, families=(m.A,)).targets == [("tcp", "192.0.2.2", 5090)]
    assert net.asked[:3] == [(D, m.NAPTR), (f"_sip._udp.{D}", m.SRV), (f"_sip._tcp.{D}", m.SRV)]


def test_no_naptr_no_srv_a_and_aaaa_on_the_default_port():
    net = FakeNet(zone=_zone(naptr=False, srv_udp=False))
    assert _locate(net, D).targets == [("udp", "192.0.2.100", 5060)]
    net = FakeNet(zone=_zone(naptr=False, srv_udp=False))
    assert _locate(net, D, secure=True, protos=("udp", "tcp", "tls")).targets == \
        [("tls", "192.0.2.100", 5061)]


def test_port_given_means_a_aaaa_only():
    net = FakeNet(zone=_zone())
    got = _locate(net, f"a.{D}", port=5099)
    assert got.targets == [("udp", "192.0.2.1", 5099), ("udp", "2001:db8::1", 5099)]
    assert {q.questions[0][1] for _p, _s, q, _k in net.sent} <= {m.A, m.AAAA}


def test_transport_given_means_its_srv_then_a():
    net = FakeNet(zone=_zone(srv_tcp=True))
    assert _locate(net, D, transport="tcp", families=(m.A,)).targets == \
        [("tcp", "192.0.2.2", 5090)]
    net = FakeNet(zone=_zone(srv_tcp=False))
    assert _locate(net, D, transport="tcp").targets == [("tcp", "192.0.2.100", 5060)]
    net = FakeNet(zone=_zone())
    assert _locate(net, D, transport="sctp").error.kind == NODATA


def test_hosts_name_skips_naptr_and_srv():
    net = FakeNet(zone=_zone(), hosts={D: (("10.1.1.1",), ())})
    assert _locate(net, D).targets == [("udp", "10.1.1.1", 5060)] and net.sent == []


def test_unknown_name_and_silent_servers_are_errors():
    net = FakeNet(zone={(f"nope.{D}", m.NAPTR): m.NXDOMAIN})
    for qt in (m.SRV,):
        for p in ("_sip._udp.", "_sip._tcp."):
            net.zone[(p + f"nope.{D}", qt)] = m.NXDOMAIN
    net.zone[(f"nope.{D}", m.A)] = m.NXDOMAIN
    net.zone[(f"nope.{D}", m.AAAA)] = m.NXDOMAIN
    got = _locate(net, f"nope.{D}")
    assert got.targets == [] and got.error.kind == NXDOMAIN
    net = FakeNet(deadline=3.0, timeout=1.0, attempts=1)
    got = []
    locate(net.resolver, f"dead.{D}", None, None, False, 0.0, got.append, random.Random(1))
    for _ in range(10):
        deadline = net.resolver.next_deadline()
        if deadline is None:
            break
        net.sent.clear()
        net.resolver.expire(deadline)
    # the NAPTR timed out: no SRV or A asked of the silent server after it
    assert got[0].targets == [] and got[0].error.kind == FAILED
    assert net.asked == [(f"dead.{D}", m.NAPTR)]


def test_srv_target_dot_means_not_offered():
    net = FakeNet(zone={(f"_sip._udp.{D}", m.SRV): [rr(f"_sip._udp.{D}", m.SRV, (0, 0, 0, ""))]})
    got = _locate(net, D, transport="udp")
    assert got.targets == [] and "not offered" in got.error.reason


def test_cache_only_answers_known_names_and_asks_nothing():
    net = FakeNet(zone=_zone())
    assert _locate(net, D, cache_only=True).error.kind == MISS and net.sent == []
    first = _locate(net, D)
    again = _locate(net, D, cache_only=True)
    assert again.targets and set(again.targets) == set(first.targets) and net.sent == []


def test_naptr_filter():
    recs = [(10, 20, "s", "sip+d2u", "", "u"), (10, 10, "s", "sip+d2t", "", "t"),
            (5, 1, "s", "sips+d2t", "", "s"), (1, 1, "", "sip+d2u", "", "x"),
            (1, 1, "s", "sip+d2s", "", "sctp")]
    assert naptr_order(recs, ("udp", "tcp"), False) == [("tcp", "t"), ("udp", "u")]
    assert naptr_order(recs, ("udp", "tcp", "tls"), True) == [("tls", "s")]


def test_srv_priority_order_and_rfc2782_weight_distribution():
    recs = [(10, 60, 1, "a"), (10, 30, 2, "b"), (10, 10, 3, "c"), (10, 0, 4, "z"),
            (5, 0, 9, "first")]
    rng = random.Random(2782)
    firsts = collections.Counter()
    for _ in range(20000):
        ordered = order_srv(recs, rng)
        assert ordered[0][3] == "first"            # the lowest priority always first
        assert sorted(r[3] for r in ordered) == sorted(r[3] for r in recs)
        firsts[ordered[1][3]] += 1
    # RFC 2782: chosen first in proportion to weight; weight 0 only when the draw is 0
    assert abs(firsts["a"] / 20000 - 0.6) < 0.02
    assert abs(firsts["b"] / 20000 - 0.3) < 0.02
    assert abs(firsts["c"] / 20000 - 0.1) < 0.015
    assert firsts["z"] / 20000 < 0.02


def test_failure_status_478_for_no_such_name_503_for_silent_servers():
    from serlite.dns.cache import Negative
    from serlite.dns.locate import failure_status
    assert failure_status(Negative(NXDOMAIN, "x"))[0] == 478
    assert failure_status(Negative(NODATA, "x"))[0] == 478
    assert failure_status(Negative(FAILED, "x")) == (503, "Service Unavailable (DNS failed)")


def test_without_naptr_and_without_weights():
    net = FakeNet(zone=_zone(srv_tcp=True))
    got = _locate_opts(net, D, naptr=False, weighted=False)
    assert (D, m.NAPTR) not in net.asked
    assert got.targets[0] == ("udp", "192.0.2.1", 5070)      # SRV of udp first, no NAPTR
    recs = [(1, 10, 1, "light"), (1, 90, 2, "heavy"), (0, 0, 3, "first")]
    assert [r[3] for r in order_srv(recs, None, weighted=False)] == ["first", "heavy", "light"]


def _locate_opts(net, host, **kw):
    got = []
    locate(net.resolver, host, None, None, False, 0.0, got.append, random.Random(7), **kw)
    for _ in range(10):
        net.answer_all(0.1)
    return got[0]


def test_each_step_waits_its_own_timeout_from_when_it_starts():
    # the NAPTR answered at t=3: the SRV lookup it starts waits from 3, not from the
    # selection's start (whose wait would be over at once, skipping the first server)
    net = FakeNet(zone=_zone(), timeout=1.0, attempts=2)
    got = []
    locate(net.resolver, D, None, None, False, 0.0, got.append, random.Random(1))
    _p, server, query, _k = net.sent.pop()
    net.resolver.receive(net.response(query), server, "udp", 3.0)
    assert net.asked[-1] == (f"_sip._tcp.{D}", m.SRV)       # NAPTR order 10: SIP+D2T
    assert net.resolver.next_deadline() == 4.0
