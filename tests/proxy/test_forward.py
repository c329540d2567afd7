"""proxy/forward.py's pure functions: where a request and a response go (RFC 3261 16.6, 18.2.2,
RFC 3263 4, RFC 3581 4) and how a forwarded request is built (16.6 steps 2, 3, 8; 16.11)."""

import pytest

from serlite.proxy import forward
from serlite.proxy.context import Source
from serlite.sip.headers import Via
from serlite.sip.message import parse
from tests.modules.test_tm_shed import Listener, request


@pytest.mark.parametrize("uri, target", [
    ("sip:bob@10.0.0.1", ("udp", "10.0.0.1", 5060)),
    ("sip:bob@10.0.0.1:5080;transport=TCP", ("tcp", "10.0.0.1", 5080)),
    ("sip:bob@10.0.0.1;transport=tls", ("tls", "10.0.0.1", 5061)),
    ("sips:bob@10.0.0.1", ("tls", "10.0.0.1", 5061)),
    ("sip:bob@example.org;maddr=10.0.0.9", ("udp", "10.0.0.9", 5060)),
    ("sip:bob@[::1]:5070", ("udp", "::1", 5070)),
    ("sip:bob@10.0.0.1;transport=sctp", ("udp", "10.0.0.1", 5060)),
])
def test_uri_target(uri, target):
    assert forward.uri_target(uri) == target


@pytest.mark.parametrize("uri, parts", [
    ("sip:bob@example.org", ("example.org", None, None, False)),
    ("sips:bob@example.org:5071", ("example.org", 5071, None, True)),
    ("sip:bob@example.org;transport=TCP;maddr=10.0.0.9", ("10.0.0.9", None, "tcp", False)),
    ("sip:[::1]", ("::1", None, None, False)),
])
def test_uri_parts(uri, parts):
    assert forward.uri_parts(uri) == parts


def via(text):
    return Via.parse(text) if hasattr(Via, "parse") else parse(
        (f"SIP/2.0 200 OK\r\nVia: {text}\r\nContent-Length: 0\r\n\r\n").encode()).top_via


@pytest.mark.parametrize("text, target", [
    ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1", ("udp", "10.0.0.1", 5060)),
    ("SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bK1", ("tcp", "10.0.0.1", 5070)),
    ("SIP/2.0/SCTP 10.0.0.1;branch=z9hG4bK1", ("udp", "10.0.0.1", 5060)),
    ("SIP/2.0/UDP 10.0.0.1:5070;received=10.0.0.2;branch=z9hG4bK1", ("udp", "10.0.0.2", 5070)),
    ("SIP/2.0/UDP 10.0.0.1;received=10.0.0.2;rport=6000;branch=z9hG4bK1",
     ("udp", "10.0.0.2", 6000)),
    ("SIP/2.0/UDP 10.0.0.1;maddr=224.0.0.9;received=10.0.0.2;branch=z9hG4bK1",
     ("udp", "224.0.0.9", 5060)),
    ("SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1", ("udp", "::1", 5070)),
])
def test_via_target(text, target):
    assert forward.via_target(via(text)) == target


def test_via_target_of_our_own_answer_follows_the_source():
    v = via("SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bK1")
    tcp = Source("tcp", "127.0.0.9", 40000, Listener())
    assert forward.via_target(v, tcp) == ("tcp", "127.0.0.9", 40000)
    # over UDP the transport it came on, the address its Via names (received: fix_top_via)
    udp = Source("udp", "127.0.0.9", 40000, Listener())
    assert forward.via_target(v, udp) == ("udp", "10.0.0.1", 5070)


def msg_with_via(params=""):
    data = request("INVITE", "f1", "f1").replace(b";branch=z9hG4bK-f1",
                                                  f"{params};branch=z9hG4bK-f1".encode())
    return parse(data)


def test_fix_top_via_leaves_a_true_via_alone():
    msg = msg_with_via()
    forward.fix_top_via(msg, Source("udp", "127.0.0.1", 6001, Listener()))
    assert msg.values("Via")[0] == "SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-f1"


def test_fix_top_via_notes_received_and_fills_rport():
    msg = msg_with_via(";rport")
    forward.fix_top_via(msg, Source("udp", "127.0.0.7", 7777, Listener()))
    top = parse(msg.to_bytes()).top_via
    assert (top.received, top.rport) == ("127.0.0.7", "7777")
    msg = msg_with_via()
    forward.fix_top_via(msg, Source("udp", "127.0.0.7", 7777, Listener()))
    top = parse(msg.to_bytes()).top_via
    assert (top.received, top.rport) == ("127.0.0.7", None)


def test_stateless_branch_is_stable_and_differs_per_branch_and_request():
    a = forward.stateless_branch(msg_with_via())
    assert a.startswith("z9hG4bK") and a == forward.stateless_branch(msg_with_via())
    assert a != forward.stateless_branch(msg_with_via(), 1)
    other = parse(request("INVITE", "f1", "f2"))
    assert a != forward.stateless_branch(other)
    # an RFC 2543 request (no magic cookie) is told apart by what identifies it
    old = parse(request("INVITE", "f1", "x").replace(b"z9hG4bK-x", b"old1"))
    old2 = parse(request("INVITE", "f1", "x", cseq=2).replace(b"z9hG4bK-x", b"old1"))
    assert forward.stateless_branch(old) != forward.stateless_branch(old2)


def test_check_forwardable():
    assert forward.check_forwardable(msg_with_via()) is None
    zero = parse(request("INVITE", "f3", "f3").replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    assert forward.check_forwardable(zero) == (483, "Too Many Hops", ())
    req = parse(request("INVITE", "f4", "f4", extra=("Proxy-Require: a, b",)))
    assert forward.check_forwardable(req) == (420, "Bad Extension", (("Unsupported", "a, b"),))


def test_prepare_request_and_branch_bytes_build_the_forwarded_request():
    msg = msg_with_via()
    rest = forward.prepare_request(msg, 70)
    line = forward.via_line(Listener(), "udp", "z9hG4bKx")
    assert line == "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n"
    out = parse(forward.branch_bytes("INVITE", "sip:bob@10.0.0.3", rest, line))
    assert out.ruri == "sip:bob@10.0.0.3" and out.max_forwards == 69
    assert out.values("Via") == ["SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx",
                                 "SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-f1"]
    missing = parse(request("INVITE", "f5", "f5").replace(b"Max-Forwards: 70\r\n", b""))
    assert parse(b"INVITE sip:x@y SIP/2.0\r\n" +
                 forward.prepare_request(missing, None)).max_forwards == 70


@pytest.mark.parametrize("ip, unicast", [
    ("10.0.0.1", True), ("255.255.255.255", False), ("224.0.0.1", False),
    ("239.255.255.250", False), ("240.0.0.1", True), ("::1", True), ("ff02::1", False)])
def test_is_unicast_target(ip, unicast):
    assert forward.is_unicast_target(ip) is unicast
