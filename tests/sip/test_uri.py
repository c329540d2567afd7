"""URI parsing, serialising and comparison (RFC 3261 19.1, 19.1.4; RFC 3966 minimal)."""

import pytest

from serlite.sip.errors import ParseError
import serlite.sip.uri as uri_module
from serlite.sip.uri import URI, unescape


def test_components():
    u = URI.parse("sip:alice:secretword@Atlanta.COM:5061;transport=TCP;lr;maddr=239.255.255.1"
                  "?subject=project%20x&priority=urgent")
    assert u.scheme == "sip"
    assert (u.user, u.password) == ("alice", "secretword")
    assert u.host == "atlanta.com" and u.port == 5061
    assert u.params == [("transport", "TCP"), ("lr", None), ("maddr", "239.255.255.1")]
    assert u.headers == "subject=project%20x&priority=urgent"
    assert u.transport == "tcp" and u.lr and u.maddr == "239.255.255.1"
    assert u.host_port() == "atlanta.com:5061"


def test_minimal_and_ipv6():
    u = URI.parse("sips:[2001:DB8::1]:5071")
    assert u.scheme == "sips" and u.user is None and u.host == "[2001:db8::1]"
    assert u.port == 5071 and u.params == [] and u.headers is None
    assert u.host_port() == "[2001:db8::1]:5071"
    v = URI.parse("sip:example.com")
    assert v.host_port() == "example.com" and v.port is None and v.transport is None


def test_param_lookup_is_case_insensitive_and_sees_escaped_names():
    u = URI.parse("sip:h;Transport=UDP;%6C%72;flag")
    assert u.param("transport") == "UDP" and u.transport == "udp"
    assert u.has_param("LR") and u.param("lr") is None
    assert u.has_param("flag") and u.param("flag") is None
    assert not u.has_param("ttl") and u.param("ttl") is None


@pytest.mark.parametrize("text", [
    "sip:alice@AtLanTa.CoM;Transport=UDP",
    "SIP:ALICE@AtLanTa.CoM:05060",
    "sip:%61lice@atlanta.com;transport=TCP",
    "sips:user:pass@[::1]:5061;lr?Subject=hi%20there&x=",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone",
    "sip:user;par=u%40example.net@example.com",
    "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
    "tel:+1-201-555-0123;phone-context=example.com",
    "TEL:7042;phone-context=example.com",
])
def test_str_round_trips_unmodified(text):
    assert str(URI.parse(text)) == text


def test_str_after_edits():
    u = URI.parse("sip:Bob@Biloxi.COM;transport=udp")
    u.set_param("lr")
    u.set_param("Transport", "tcp")
    assert str(u) == "sip:Bob@Biloxi.COM;transport=tcp;lr"
    u.host = "proxy.example.org"
    u.port = 5070
    assert str(u) == "sip:Bob@proxy.example.org:5070;transport=tcp;lr"
    assert u.remove_param("TRANSPORT") == 1 and u.remove_param("nope") == 0
    u.user = None
    assert str(u) == "sip:proxy.example.org:5070;lr"
    built = URI("sip", "alice", "Example.com", 5060, [("transport", "tcp")])
    assert str(built) == "sip:alice@example.com:5060;transport=tcp"


def test_copy_is_independent():
    u = URI.parse("sip:a@b;x=1")
    c = u.copy()
    c.set_param("x", "2")
    c.host = "c"
    assert str(u) == "sip:a@b;x=1" and str(c) == "sip:a@c;x=2"


def test_tel():
    u = URI.parse("tel:+1-201-555-0123;phone-context=example.com")
    assert u.scheme == "tel" and u.user == "+1-201-555-0123" and u.host == ""
    assert u.param("phone-context") == "example.com"
    assert u.equals("tel:+12015550123;PHONE-CONTEXT=example.com")
    assert not u.equals("tel:+12015550124;phone-context=example.com")


@pytest.mark.parametrize("text", [
    "nobodyKnowsThisScheme:totallyopaquecontent", "soap.beep://192.0.2.103:3002",
    "http://www.example.com", "isbn:2983792873",
])
def test_unknown_scheme_is_416(text):
    with pytest.raises(ParseError) as err:
        URI.parse(text)
    assert err.value.status == 416


@pytest.mark.parametrize("text", [
    "", "sip", "sip:", ":x", "<sip:a@b>", "sip:a@b c", " sip:a@b", "sip:@host", "sip:a@",
    "sip:a@b:", "sip:a@b:65536", "sip:a@b:5x", "sip:a@[::1", "sip:a@b;;lr", "sip:a@b;=x",
    "sip:a@b;x=1 2", "sip:a b@c", "sip:a@b?x=<y>", "sip:%zz@b", "sip:a%4@b", "tel:",
    "tel:+1 555", "tel:123?x=y", "1sip:a@b", "si p:a@b",
])
def test_malformed_is_400(text):
    with pytest.raises(ParseError) as err:
        URI.parse(text)
    assert err.value.status == 400


def test_unescape():
    assert unescape("sips%3Auser%40example.com") == "sips:user@example.com"
    assert unescape("null-%00-null") == "null-\x00-null"
    assert unescape("100%") == "100%" and unescape("%zz%4") == "%zz%4"


# RFC 3261 19.1.4: "The URIs within each of the following sets are equivalent"
@pytest.mark.parametrize("a,b", [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
])
def test_rfc3261_equivalent_uris(a, b):
    assert URI.parse(a).equals(URI.parse(b))
    assert URI.parse(b).equals(a)


# RFC 3261 19.1.4: "The URIs within each of the following sets are not equivalent"
@pytest.mark.parametrize("a,b", [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
])
def test_rfc3261_different_uris(a, b):
    assert not URI.parse(a).equals(URI.parse(b))
    assert not URI.parse(b).equals(a)


def test_equals_other_rules():
    assert not URI.parse("sip:a@b").equals("sips:a@b")
    assert not URI.parse("sip:a@b;maddr=x").equals("sip:a@b")
    assert not URI.parse("sip:a@b").equals("sip:a@b;user=phone")
    assert not URI.parse("sip:a@b").equals("sip:a@b;ttl=1")
    assert URI.parse("sip:a:pw@b").equals("sip:a:%70w@b")
    assert not URI.parse("sip:a:pw@b").equals("sip:a:PW@b")
    assert not URI.parse("sip:a@b").equals("http://a@b")


def test_a_uri_parsed_again_is_a_new_object():
    text = "sip:carol@Chicago.com:5070;transport=tcp;lr?subject=x"
    a = URI.parse(text)
    a.set_param("maddr", "10.0.0.1")
    a.host = "example.org"
    a.port = 1
    b = URI.parse(text)         # the same text again: parsed parts remembered, not the object
    assert b is not a and str(b) == text and b.params == [("transport", "tcp"), ("lr", None)]
    assert (b.user, b.host, b.port, b.headers) == ("carol", "chicago.com", 5070, "subject=x")
    with pytest.raises(ParseError):
        URI.parse("sip:carol@chicago .com")
    with pytest.raises(ParseError):
        URI.parse("sip:carol@chicago .com")


def test_a_uri_differing_only_in_its_parameters_is_parsed_as_a_fresh_one():
    # the part before the parameters is remembered: the result must equal a fresh parse
    for first, second in [
            ("sip:p1.example.net:5060;lr;ftag=1", "sip:p1.example.net:5060;lr=on;ftag=22"),
            ("sip:Bob@Biloxi.COM;transport=tcp", "sip:Bob@Biloxi.COM;maddr=10.0.0.1"),
            ("sip:alice;day=tue@h.example;lr", "sip:alice;day=tue@h.example;x"),  # ";" in user
            ("sip:a@h;lr", "sip:a@h;lr?subject=x"),
            ("sip:[::1]:5070;lr", "sip:[::1]:5070;transport=udp")]:
        URI.parse(first)
        got = URI.parse(second)
        uri_module._PARSED.clear()
        fresh = URI.parse(second)
        assert str(got) == second
        for name in URI.__slots__:
            assert getattr(got, name) == getattr(fresh, name), (second, name)
    URI.parse("sip:h.example;lr")
    with pytest.raises(ParseError):
        URI.parse("sip:h.example;l r")
    with pytest.raises(ParseError):
        URI.parse("sip:h.example;lr;;")


def test_the_memo_keeps_the_fields_in_the_order_parse_unpacks_them():
    # _parts_of names what it keeps; _PARTS_FIELDS is the order the hit path unpacks
    from serlite.sip import uri as uri_module
    u = URI.parse("sips:al%41ce:pw@[2001:db8::1]:5061;transport=tcp;lr?subject=x")
    parts = uri_module._parts_of(u, tuple(u.params))
    assert parts == tuple(getattr(u, f) if f != "params" else tuple(u.params)
                          for f in uri_module._PARTS_FIELDS)
    again = URI.parse("sips:al%41ce:pw@[2001:db8::1]:5061;transport=tcp;lr?subject=x")
    assert all(getattr(again, f) == getattr(u, f) for f in uri_module._PARTS_FIELDS)
