"""Invariant (STYLE.md 6): whatever bytes come in, parse()/frame() and the lazy accessors return
a value or raise ParseError -- never another exception.

Seeded random generation (reproducible, writes no files): mutations of the RFC 4475 corpus,
arbitrary bytes, and messages assembled from header lines with hostile values.  A failure
prints the input; a few seconds in all."""

import random

from serlite.sip.errors import ParseError
from serlite.sip.message import Request, frame, make_response, parse

from .test_message import INVITE
from .test_rfc4475 import DATA

CORPUS = [p.read_bytes() for p in sorted(DATA.glob("*.dat"))] + [INVITE]
NOISE = b'\r\n \t:;,<>"\\@%=?/[]\x00\x7f\x80\xa0\xff0123456789aZ-.!*~'

ACCESSORS = ("vias", "top_via", "from_", "to", "call_id", "cseq", "max_forwards", "contacts",
             "expires", "content_length", "routes", "record_routes")


def _try(fn):
    try:
        return fn()
    except ParseError:
        return None


def exercise(m):
    """Read everything a proxy or registrar might read, edit, serialise and parse back."""
    for name in ACCESSORS:
        _try(lambda: getattr(m, name))
    if isinstance(m, Request):
        _try(lambda: m.uri)
    contacts = _try(lambda: m.contacts)
    nas = [_try(lambda: m.from_), _try(lambda: m.to)]   # a response's: checked when read
    nas += contacts if isinstance(contacts, list) else []
    nas += _try(lambda: m.routes) or []
    for na in nas:
        if na is not None:
            _try(lambda: na.uri)
            _try(lambda: na.expires)
            _try(lambda: na.q)
            str(na)
    for v in _try(lambda: m.vias) or ():
        (v.branch, v.rport, v.received, v.rfc3261, str(v))
    # an unedited message gives back its bytes, which parse again to the same
    data = m.to_bytes()
    assert parse(data).to_bytes() == data
    if isinstance(m, Request):
        r = make_response(m, 400, "Bad Request", to_tag="fz")
        assert parse(r.to_bytes()).status == 400   # a response to a parsed request is valid
    m.top_via.set_param("received", "192.0.2.1")
    m.add_header("Via", "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKfz", top=True)
    _try(lambda: m.remove_first_value("Route"))
    m.set_body(b"x")
    out = m.to_bytes()
    m2 = _try(lambda: parse(out))
    if m2 is not None:
        assert m2.body == b"x" and m2.top_via.host == "192.0.2.9"


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:                                  # flip an octet
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:                                         # insert structural noise
            data[pos:pos] = bytes(rng.choice(NOISE) for _ in range(rng.randint(1, 3)))
        elif op == 2:                                         # delete a span
            del data[pos:pos + rng.randint(1, 12)]
        elif op == 3:                                         # truncate
            del data[pos:]
        elif op == 4:                                         # duplicate a line
            lines = bytes(data).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
            data = bytearray(b"\r\n".join(lines))
        elif op == 5:                                         # swap two lines
            lines = bytes(data).split(b"\r\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\r\n".join(lines))
        elif op == 6:                                         # a huge or odd number
            data[pos:pos] = rng.choice([b"99999999999999999999999", b"-1", b"0" * 5000,
                                        b"4294967296", b"1" * 4400])
        else:                                                 # fold somewhere
            data[pos:pos] = b"\r\n "
    return bytes(data)


def check_bytes(data):
    try:
        try:
            m = parse(data)
        except ParseError:
            pass
        else:
            exercise(m)
        for size in (0, 100, 1000, 65535):
            try:
                frame(data, size)
            except ParseError:
                pass
    except Exception:
        print("failing input:", repr(data))
        raise


def test_corpus_parses_and_survives_exercise():
    for data in CORPUS:
        check_bytes(data)


def test_random_mutations():
    rng = random.Random(4475)
    for i in range(4000):
        check_bytes(mutate(rng, CORPUS[i % len(CORPUS)]))


def test_arbitrary_bytes():
    rng = random.Random(3261)
    alphabet = NOISE + b"SIPVvia/2.0UDPsip:@;tag=branch="
    for _ in range(1500):
        if rng.random() < 0.5:
            data = rng.randbytes(rng.randrange(200))
        else:
            data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(200)))
        check_bytes(data)
        check_bytes(b"INVITE sip:a@b SIP/2.0\r\n" + data)


_NAMES = ["Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Max-Forwards",
          "Contact", "m", "Route", "Record-Route", "Content-Length", "l", "Expires", "Date",
          "X-Other"]
_VALUE_CHARS = 'sip:SIP/2.0/UDPa@b.c;=,<>"\\ \t%0129*\x00\xe9'
_VALUE_WORDS = ["tag=", "branch=z9hG4bK", "<sip:x@y>", '"q"', "sip:u@h", ";lr", "*",
                "SIP/2.0/UDP h", "4294967296", "Mon, 01 Jan 2024 00:00:00 GMT"]
_STARTS = [b"INVITE sip:bob@example.com SIP/2.0", b"SIP/2.0 200 OK",
           b"REGISTER sip:example.com SIP/2.0", b"X tel:+123 SIP/2.0"]


def _value(rng):
    parts = []
    for _ in range(rng.randrange(6)):
        if rng.random() < 0.4:
            parts.append(rng.choice(_VALUE_WORDS))
        else:
            parts.append("".join(rng.choice(_VALUE_CHARS) for _ in range(rng.randrange(8))))
    return "".join(parts)


def test_structured_headers():
    rng = random.Random(4474)
    base = [("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("From", "<sip:a@b>;tag=1"),
            ("To", "sip:c@d"), ("Call-ID", "x"), ("CSeq", "1 INVITE")]
    for _ in range(4000):
        headers = [(rng.choice(_NAMES), _value(rng)) for _ in range(rng.randrange(6))]
        if rng.random() < 0.5:   # also replace the base headers
            headers = [(n, _value(rng) if rng.random() < 0.3 else v) for n, v in base] + headers
        else:
            headers = base + headers
        rng.shuffle(headers)
        text = b"\r\n".join([rng.choice(_STARTS)]
                             + [f"{n}: {v}".encode("latin-1") for n, v in headers])
        check_bytes(text + b"\r\n\r\n" + rng.randbytes(rng.randrange(20)))
