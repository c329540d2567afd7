"""serlite.sip.sdp: the c=/o= addresses of an SDP body, rewriting them, adding lines."""

import pytest

from serlite.sip import sdp

OFFER = (b"v=0\r\n"
         b"o=alice 2890844526 2890844526 IN IP4 192.168.1.50\r\n"
         b"s=-\r\n"
         b"c=IN IP4 192.168.1.50\r\n"
         b"t=0 0\r\n"
         b"m=audio 49170 RTP/AVP 0 8\r\n"
         b"a=rtpmap:0 PCMU/8000\r\n"
         b"m=video 51372 RTP/AVP 31\r\n"
         b"c=IN IP4 192.168.1.51\r\n")


@pytest.mark.parametrize("value, expected", [
    ("application/sdp", True), ("Application/SDP ; charset=utf-8", True),
    ("multipart/mixed;boundary=x", False), ("text/plain", False), (None, False), ("", False),
])
def test_is_sdp(value, expected):
    assert sdp.is_sdp(value) is expected


def test_addresses():
    assert sdp.addresses(OFFER) == [(b"IP4", b"192.168.1.50"), (b"IP4", b"192.168.1.51")]
    assert sdp.addresses(OFFER, b"o") == [(b"IP4", b"192.168.1.50")]
    assert sdp.addresses(b"v=0\r\n") == []


def test_rewrite_c_lines_keeps_everything_else():
    body, found = sdp.rewrite_addresses(OFFER, b"c", "203.0.113.7")
    assert found == 2
    assert body == OFFER.replace(b"c=IN IP4 192.168.1.50", b"c=IN IP4 203.0.113.7") \
        .replace(b"c=IN IP4 192.168.1.51", b"c=IN IP4 203.0.113.7")


def test_rewrite_o_line():
    body, found = sdp.rewrite_addresses(OFFER, b"o", "203.0.113.7")
    assert found == 1
    assert b"o=alice 2890844526 2890844526 IN IP4 203.0.113.7\r\n" in body
    assert b"c=IN IP4 192.168.1.50\r\n" in body


def test_rewrite_to_ipv6_changes_the_addrtype():
    body, _ = sdp.rewrite_addresses(b"c=IN IP4 10.0.0.1\r\n", b"c", "2001:db8::1")
    assert body == b"c=IN IP6 2001:db8::1\r\n"


@pytest.mark.parametrize("line", [
    b"c=IN IP4 0.0.0.0\r\n",              # on hold (RFC 3264 8.4)
    b"c=IN IP6 ::\r\n",
    b"c=IN IP4 224.2.1.1/127\r\n",        # multicast with TTL
    b"c=ATM NSAP 47.0091.8100\r\n",       # not an IN address
])
def test_rewrite_leaves_hold_multicast_and_other_networks(line):
    assert sdp.rewrite_addresses(line, b"c", "203.0.113.7") == (line, 1)


def test_rewrite_keeps_lf_line_ends_and_a_last_line_without_one():
    body = b"v=0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\nc=IN IP4 10.0.0.2"
    new, found = sdp.rewrite_addresses(body, b"c", "1.2.3.4")
    assert found == 2
    assert new == b"v=0\nc=IN IP4 1.2.3.4\nm=audio 4000 RTP/AVP 0\nc=IN IP4 1.2.3.4"


@pytest.mark.parametrize("body", [b"", b"c=\r\n", b"c=IN IP4\r\n", b"c=IN IP4 1.2.3.4 x\r\n",
                                  b"xc=IN IP4 1.2.3.4\r\n", b"\xff\x00c=IN", b"c"])
def test_malformed_lines_are_not_touched(body):
    assert sdp.rewrite_addresses(body, b"c", "1.2.3.4") == (body, 0)
    assert sdp.addresses(body) == []


def test_add_lines():
    assert sdp.add_lines(b"v=0\r\n", [b"a=direction:active"]) == \
        b"v=0\r\na=direction:active\r\n"
    assert sdp.add_lines(b"v=0\nm=audio 1 RTP/AVP 0\n", [b"a=x"]) == \
        b"v=0\nm=audio 1 RTP/AVP 0\na=x\n"
    assert sdp.add_lines(b"v=0", [b"a=x", b"a=y"]) == b"v=0\r\na=x\r\na=y\r\n"
    assert sdp.add_lines(OFFER, []) is OFFER
