"""Property tests (hypothesis, deterministic: the "ci" profile of tests/conftest.py) of the SIP
parser and serialiser: a message assembled from generated parts parses to those parts and
serialises back to its bytes (parse(serialise(m)) == m); a URI's text and its parse agree; a
mutated RFC 4475 message parses or raises ParseError, nothing else (test_fuzz's checks, with
hypothesis choosing and shrinking the mutations)."""

from hypothesis import given, strategies as st

from serlite.sip.errors import ParseError
from serlite.sip.message import Request, parse
from serlite.sip.uri import URI

from .test_fuzz import CORPUS, check_bytes, mutate

# RFC 3261 25.1
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN = _ALNUM + "ABCDEFGHIJKLMNOPQRSTUVWXYZ-.!%*_+`'~"
_UNRESERVED_USER = _ALNUM + "-_.!~*'()&=+$,;?/"

token = st.text(_TOKEN, min_size=1, max_size=12)
label = st.text(_ALNUM, min_size=1, max_size=10)
domain = st.lists(label, min_size=1, max_size=4).map(".".join).filter(
    lambda d: not d.split(".")[-1][0].isdigit())        # a toplabel starts with a letter
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
host = st.one_of(domain, ipv4)
port = st.none() | st.integers(1, 65535)
pname = st.text(_ALNUM + "-", min_size=1, max_size=8)
params = st.lists(st.tuples(pname, st.none() | st.text(_ALNUM + "-.", min_size=1, max_size=8)),
                  max_size=3, unique_by=lambda p: p[0])


@st.composite
def uris(draw):
    return URI(draw(st.sampled_from(["sip", "sips"])),
               draw(st.none() | st.text(_UNRESERVED_USER, min_size=1, max_size=10)),
               draw(host), draw(port), draw(params))


@given(uris())
def test_uri_text_parses_to_its_parts_and_back(u):
    text = str(u)
    p = URI.parse(text)
    assert (p.scheme, p.user, p.host, p.port, p.params, p.headers) == (
        u.scheme, u.user, u.host, u.port, u.params, u.headers)
    assert str(p) == text


@given(st.text(_ALNUM + ":@;=?&.[]%<>\"-", max_size=40).map(lambda t: "sip:" + t))
def test_uri_parse_raises_only_parse_error(text):
    try:
        u = URI.parse(text)
    except ParseError:
        return
    assert str(URI.parse(str(u))) == str(u)


@st.composite
def requests(draw):
    method = draw(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "MESSAGE"]) | token.filter(
        lambda t: t.isalpha()).map(str.upper))
    ruri = draw(uris())
    parts = {
        "method": method, "ruri": str(ruri),
        "via": f"SIP/2.0/UDP {draw(host)}:{draw(st.integers(1, 65535))}"
               f";branch=z9hG4bK{draw(st.text(_ALNUM, min_size=1, max_size=12))}",
        "from": str(draw(uris())), "from_tag": draw(token),
        "to": str(draw(uris())), "to_tag": draw(st.none() | token),
        "call_id": draw(token) + draw(st.sampled_from(["", "@"])) + draw(label),
        "cseq": draw(st.integers(0, 2**31 - 1)),
        "max_forwards": draw(st.integers(0, 255)),
        "display": draw(st.none() | st.text(_ALNUM + " ", min_size=1, max_size=10).map(
            str.strip).filter(bool)),
        "body": draw(st.binary(max_size=60)),
    }
    return parts


def request_bytes(p):
    display = f'"{p["display"]}" ' if p["display"] else ""
    to_tag = f";tag={p['to_tag']}" if p["to_tag"] else ""
    lines = [f"{p['method']} {p['ruri']} SIP/2.0",
             f"Via: {p['via']}",
             f"Max-Forwards: {p['max_forwards']}",
             f"From: {display}<{p['from']}>;tag={p['from_tag']}",
             f"To: <{p['to']}>{to_tag}",
             f"Call-ID: {p['call_id']}",
             f"CSeq: {p['cseq']} {p['method']}",
             f"Content-Length: {len(p['body'])}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + p["body"]


@given(requests())
def test_a_request_parses_to_its_parts_and_serialises_to_its_bytes(p):
    data = request_bytes(p)
    m = parse(data)
    assert isinstance(m, Request)
    assert (m.method, m.ruri, m.call_id, m.max_forwards, m.body) == (
        p["method"], p["ruri"], p["call_id"], p["max_forwards"], p["body"])
    assert (m.cseq.number, m.cseq.method) == (p["cseq"], p["method"])
    assert m.values("Via") == [p["via"]]
    assert (str(m.from_.uri), m.from_.tag, m.from_.display) == (
        p["from"], p["from_tag"], f'"{p["display"]}"' if p["display"] else None)
    assert (str(m.to.uri), m.to.tag) == (p["to"], p["to_tag"])
    assert m.to_bytes() == data
    # and an edited message (a Via on top, as a proxy adds) parses to the edit
    m.add_header("Via", "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKpr", top=True)
    again = parse(m.to_bytes())
    assert again.values("Via") == ["SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKpr", p["via"]]
    assert again.body == p["body"] and again.call_id == p["call_id"]


@given(st.sampled_from(CORPUS), st.randoms(use_true_random=False))
def test_a_mutated_rfc4475_message_parses_or_raises_parse_error(data, rng):
    check_bytes(mutate(rng, data))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_a_request_line_parse_or_raise_parse_error(tail):
    check_bytes(b"INVITE sip:a@b SIP/2.0\r\n" + tail)
