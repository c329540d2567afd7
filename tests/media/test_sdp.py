"""serlite.media.sdp: what a relayed leg's SDP says."""

from serlite.media import sdp

OFFER = (b"v=0\r\n"
         b"o=alice 2890844526 2890844526 IN IP4 192.168.1.50\r\n"
         b"s=-\r\n"
         b"c=IN IP4 192.168.1.50\r\n"
         b"t=0 0\r\n"
         b"a=ice-ufrag:F7gI\r\n"
         b"a=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n"
         b"m=audio 49170 RTP/AVP 0 8 101\r\n"
         b"a=rtpmap:101 telephone-event/8000\r\n"
         b"a=rtcp:53020 IN IP4 192.168.1.50\r\n"
         b"a=candidate:1 1 UDP 2130706431 192.168.1.50 49170 typ host\r\n"
         b"a=candidate:2 1 UDP 1694498815 203.0.113.7 40000 typ srflx raddr 192.168.1.50 "
         b"rport 49170\r\n"
         b"a=end-of-candidates\r\n"
         b"a=sendonly\r\n"
         b"m=video 0 RTP/AVP 31\r\n"
         b"m=video 51372 RTP/AVP 99\r\n"
         b"c=IN IP4 192.168.1.51\r\n")


def test_streams_read_port_address_and_rtcp():
    s = sdp.streams(OFFER)
    assert [(x.media, x.port, x.address, x.rtcp_port, x.rtcp_address) for x in s] == [
        ("audio", 49170, "192.168.1.50", 53020, "192.168.1.50"),
        ("video", 0, "192.168.1.50", 0, "192.168.1.50"),
        ("video", 51372, "192.168.1.51", 51373, "192.168.1.51")]


def test_relay_body_points_every_stream_at_the_relay_and_drops_ice():
    out = sdp.relay_body(OFFER, "203.0.113.1", [20000, None, 20002])
    lines = out.split(b"\r\n")
    assert b"c=IN IP4 203.0.113.1" in lines
    assert b"c=IN IP4 192.168.1.50" not in lines and b"c=IN IP4 192.168.1.51" not in lines
    assert b"m=audio 20000 RTP/AVP 0 8 101" in lines
    assert b"a=rtcp:20001 IN IP4 203.0.113.1" in lines
    assert b"m=video 0 RTP/AVP 31" in lines             # disabled: stays 0
    assert b"m=video 20002 RTP/AVP 99" in lines
    assert not [line for line in lines if b"a=ice" in line or b"candidate" in line]
    assert b"a=sendonly" in lines                       # hold is the phones' business
    assert b"o=alice 2890844526 2890844526 IN IP4 192.168.1.50" in lines    # o= untouched
    assert out.endswith(b"\r\n") and b"\n\n" not in out


def test_relay_body_origin_and_ipv6_and_lone_lf():
    body = b"v=0\no=- 1 1 IN IP4 10.0.0.2\nc=IN IP4 10.0.0.2\nm=audio 4000 RTP/AVP 0\n" \
           b"a=rtcp:4001\n"
    out = sdp.relay_body(body, "2001:db8::1", [30000], origin=True)
    assert out == (b"v=0\no=- 1 1 IN IP6 2001:db8::1\nc=IN IP6 2001:db8::1\n"
                   b"m=audio 30000 RTP/AVP 0\na=rtcp:30001\n")


def test_hold_with_a_null_address_is_kept():
    body = b"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\na=inactive\r\n"
    out = sdp.relay_body(body, "10.0.0.1", [30000])
    assert out == b"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 30000 RTP/AVP 0\r\na=inactive\r\n"


def test_malformed_m_lines_are_left_alone():
    body = b"v=0\r\nm=audio\r\nm=audio 99999 RTP/AVP 0\r\nm=audio x RTP/AVP 0\r\n"
    assert [s.port for s in sdp.streams(body)] == [0, 0, 0]
    out = sdp.relay_body(body, "10.0.0.1", [None, None, None])
    assert out == body


def test_relay_body_bridging_families_rewrites_the_origin_too():
    """A leg on the other address family: o= follows (its IPv4 address means nothing to a
    phone on IPv6 only, and some take the session's family from it: baresip 1.0 refuses such
    an offer, 488, "SDP offer AF not available"); the same family leaves o= alone."""
    out = sdp.relay_body(OFFER, "2001:db8:2::1", [20000, None, 20002])
    assert b"o=alice 2890844526 2890844526 IN IP6 2001:db8:2::1\r\n" in out
    assert b"IP4" not in out
    back = b"v=0\r\no=- 7 7 IN IP6 2001:db8:2::10\r\nc=IN IP6 2001:db8:2::10\r\n" \
           b"m=audio 4000 RTP/AVP 0\r\n"
    assert sdp.relay_body(back, "192.168.77.1", [30000]).startswith(
        b"v=0\r\no=- 7 7 IN IP4 192.168.77.1\r\nc=IN IP4 192.168.77.1\r\n")
    same = sdp.relay_body(back, "2001:db8:77::1", [30000])
    assert b"o=- 7 7 IN IP6 2001:db8:2::10\r\n" in same
