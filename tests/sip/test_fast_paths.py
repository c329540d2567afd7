"""The shortcuts taken for the usual message give the answers of the general code."""

import pytest

from serlite.proxy.context import Source
from serlite.proxy.forward import fix_top_via, via_target
from serlite.sip.errors import ParseError
from serlite.sip.headers import Via, parse_name_addr
from serlite.sip.message import Response, make_response, parse


def _request(via, route=None):
    lines = [f"INVITE sip:bob@example.com SIP/2.0", f"Via: {via}"]
    if route is not None:
        lines.append(f"Route: {route}")
    lines += ["From: <sip:a@example.com>;tag=1", "To: <sip:bob@example.com>",
              "Call-ID: fast-1", "CSeq: 1 INVITE", "Max-Forwards: 70", "Content-Length: 0"]
    return parse(("\r\n".join(lines) + "\r\n\r\n").encode())


SRC = Source("udp", "192.0.2.9", 5062)


@pytest.mark.parametrize("via, params", [
    # RFC 3581 4: rport without a value asks for received and rport
    ("SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK1;rport",
     [("branch", "z9hG4bK1"), ("rport", "5062"), ("received", "192.0.2.9")]),
    ("SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK1;RPORT",
     [("branch", "z9hG4bK1"), ("RPORT", "5062"), ("received", "192.0.2.9")]),
    # an escaped name is that name (RFC 3261 19.1.4, as find_param compares)
    ("SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK1;%72port",
     [("branch", "z9hG4bK1"), ("%72port", "5062"), ("received", "192.0.2.9")]),
    # "rport" inside a value is no rport parameter; the host matches: nothing added
    ("SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKrport", [("branch", "z9hG4bKrport")]),
    # 18.2.1: another host gets received
    ("SIP/2.0/UDP phone.example.com:5062;branch=z9hG4bK1",
     [("branch", "z9hG4bK1"), ("received", "192.0.2.9")]),
])
def test_fix_top_via(via, params):
    msg = _request(via)
    fix_top_via(msg, SRC)
    assert msg.top_via.params == params


@pytest.mark.parametrize("via, target", [
    ("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1", ("udp", "192.0.2.1", 5070)),
    ("SIP/2.0/TCP [2001:db8::1];branch=z9hG4bK1", ("tcp", "2001:db8::1", 5060)),
    ("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;received=192.0.2.7;rport=5099",
     ("udp", "192.0.2.7", 5099)),
    ("SIP/2.0/UDP 192.0.2.1;BRANCH=z9hG4bK1;maddr=192.0.2.8", ("udp", "192.0.2.8", 5060)),
])
def test_via_target(via, target):
    assert via_target(Via.parse(via)) == target


def test_via_branch_and_tag_in_any_place_or_case():
    assert Via.parse("SIP/2.0/UDP h;branch=z9hG4bK1").branch == "z9hG4bK1"
    assert Via.parse("SIP/2.0/UDP h;rport;Branch=z9hG4bK2").branch == "z9hG4bK2"
    assert Via.parse("SIP/2.0/UDP h;rport").branch is None
    assert parse_name_addr("<sip:a@h>;tag=x").tag == "x"
    assert parse_name_addr("<sip:a@h>;foo;TAG=y").tag == "y"


def test_via_one_param_of_an_unusual_name_is_still_checked():
    with pytest.raises(ParseError):
        Via.parse("SIP/2.0/UDP h;bad(name)=1")
    assert Via.parse("SIP/2.0/UDP h;x-mine=1").params == [("x-mine", "1")]


def test_name_addr_head_cache_parses_as_the_long_way():
    first = parse_name_addr("Alice <sip:alice@example.com>;tag=1")
    again = parse_name_addr("Alice <sip:alice@example.com>;tag=2")
    assert (again._display, again.uri_text, again.params, str(again)) == (
        first._display, first.uri_text, [("tag", "2")], "Alice <sip:alice@example.com>;tag=2")
    spaced = parse_name_addr("Alice <sip:alice@example.com> ;tag=3;x")
    assert spaced.params == [("tag", "3"), ("x", None)]
    with pytest.raises(ParseError):
        parse_name_addr("Alice <sip:alice@example.com>junk")
    # a quoted display name holding ">": its text up to the first ">" is no head
    q = parse_name_addr('"a>b" <sip:q@example.com>;tag=1')
    q2 = parse_name_addr('"a>b" <sip:q@example.com>;tag=2')
    assert (q2._display, q2.uri_text, q2.params) == ('"a>b"', "sip:q@example.com",
                                                    [("tag", "2")])
    assert q._display == q2._display


def test_route_of_an_edited_message_removed():
    msg = _request("SIP/2.0/UDP h;branch=z9hG4bK1", "<sip:p1;lr>, <sip:p2;lr>")
    msg.add_trusted_line("record-route", "Record-Route: <sip:me;lr>", True)
    assert [r.uri_text for r in msg.routes] == ["sip:p1;lr", "sip:p2;lr"]
    assert msg.remove_first_value("Route") == "<sip:p1;lr>"
    assert msg.remove_first_value("Route") == "<sip:p2;lr>"
    assert msg.routes == []
    data = msg.to_bytes()
    assert b"Route: " not in data.replace(b"Record-Route: ", b"")
    assert b"\r\nRecord-Route: <sip:me;lr>\r\n" in data


def test_response_status_is_checked_when_built():
    with pytest.raises(ValueError):
        Response(99, "Low")
    req = _request("SIP/2.0/UDP h;branch=z9hG4bK1")
    with pytest.raises(ValueError):
        make_response(req, 700, "High")
    r = make_response(req, 486, "Busy Here")
    assert r.status == 486 and r.to_bytes().startswith(b"SIP/2.0 486 Busy Here\r\n")
    assert parse(r.to_bytes()).status == 486
