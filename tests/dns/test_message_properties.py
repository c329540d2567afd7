"""Property tests (hypothesis, the "ci" profile of tests/conftest.py) of the DNS codec: any
octets decode or raise DnsError, nothing else (a resolver's answer comes off the network); an
encoded answer decodes to what was encoded, and a mutation of one still only raises DnsError."""

import struct

from hypothesis import given, settings, strategies as st

from serlite.dns import message as m
from serlite.dns.message import DnsError, Record

_LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
names = st.lists(_LABEL, min_size=1, max_size=5).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.binary(min_size=16, max_size=16).map(
    lambda b: __import__("ipaddress").IPv6Address(b).compressed)
u16 = st.integers(0, 0xFFFF)
ttl = st.integers(0, 2**31 - 1)

records = st.one_of(
    st.builds(Record, names, st.just(m.A), ttl, ipv4),
    st.builds(Record, names, st.just(m.AAAA), ttl, ipv6),
    st.builds(Record, names, st.just(m.CNAME), ttl, names),
    st.builds(Record, names, st.just(m.SRV), ttl, st.tuples(u16, u16, u16, names)),
)


def decode_or_dns_error(data):
    try:
        return m.decode(data)
    except DnsError:
        return None


@given(st.binary(max_size=600))
def test_any_octets_decode_or_raise_dns_error(data):
    decode_or_dns_error(data)


# the pieces a message is made of: labels, compression pointers (backwards, forwards, into
# themselves), the root, 16-bit fields and stray octets
_pieces = st.one_of(
    st.binary(min_size=1, max_size=12).map(lambda b: bytes((len(b),)) + b),
    st.tuples(st.integers(0, 0x3F), st.integers(0, 255)).map(lambda t: bytes((0xC0 | t[0], t[1]))),
    st.just(b"\x00"),
    u16.map(lambda n: struct.pack("!H", n)),
    st.binary(max_size=3),
)


# counts that fit: a question takes 5 octets at least, a record 11 (decode checks it first)
_counts = st.tuples(st.sampled_from([1, 1, 2, 0]), *[st.sampled_from([0, 0, 1, 2])] * 3)


@settings(max_examples=1000)     # a message is decoded in microseconds: a wider search
@given(u16, _counts, st.lists(_pieces, min_size=1, max_size=30))
def test_a_message_of_dns_pieces_decodes_or_raises_dns_error(flags, counts, pieces):
    # random octets mostly fail the counts check: small counts and name-like pieces take the
    # decoder into its names, pointers and records
    decode_or_dns_error(struct.pack("!HHHHHH", 7, flags, *counts) + b"".join(pieces))


@given(u16, names, st.lists(records, max_size=4), st.lists(records, max_size=3))
def test_an_encoded_answer_decodes_to_its_records(qid, qname, answers, additional):
    wire = m.encode_response(qid, m.RD | m.RA, [(qname, m.SRV)], answers, (), additional)
    msg = m.decode(wire)
    assert msg.id == qid and msg.is_response and msg.questions == [(qname, m.SRV)]
    assert msg.answers == answers and msg.additional == additional


@given(names, st.lists(records, min_size=1, max_size=3), st.data())
def test_a_mutated_answer_decodes_or_raises_dns_error(qname, answers, data):
    wire = bytearray(m.encode_response(7, m.RD | m.RA, [(qname, m.A)], answers))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        op = data.draw(st.integers(0, 2))
        if op == 0:
            wire[pos] = data.draw(st.integers(0, 255))
        elif op == 1:
            del wire[pos:]
        else:
            wire[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        if not wire:
            break
    decode_or_dns_error(bytes(wire))
