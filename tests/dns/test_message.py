"""serlite.dns.message: the RFC 1035 codec, and malformed packets -> DnsError only."""

import random
import struct

import pytest

from serlite.dns import message as m
from serlite.dns.message import DnsError, Record


def _srv_answer(qid=0x1234):
    q = [("_sip._udp.example.com", m.SRV)]
    answers = [Record("_sip._udp.example.com", m.SRV, 300, (10, 60, 5060, "a.example.com")),
               Record("_sip._udp.example.com", m.SRV, 300, (20, 0, 5070, "b.example.com"))]
    extra = [Record("a.example.com", m.A, 60, "192.0.2.1"),
             Record("b.example.com", m.AAAA, 60, "2001:db8::2")]
    return m.encode_response(qid, m.RD | m.RA, q, answers, (), extra)


def test_query_has_the_id_rd_one_question_and_lower_case_name():
    wire = m.encode_query(0xBEEF, "Sip.Example.COM.", m.NAPTR)
    assert wire[:12] == struct.pack("!HHHHHH", 0xBEEF, m.RD, 1, 0, 0, 0)
    assert wire[12:] == b"\x03sip\x07example\x03com\x00" + struct.pack("!HH", m.NAPTR, 1)
    msg = m.decode(wire)
    assert msg.id == 0xBEEF and not msg.is_response and msg.questions == [("sip.example.com",
                                                                             m.NAPTR)]


def test_query_with_edns0_carries_an_opt_record_with_the_payload_size():
    wire = m.encode_query(1, "example.com", m.A, edns_size=1232)
    msg = m.decode(wire)
    (opt,) = msg.additional
    assert opt.rtype == m.OPT and struct.unpack("!H", wire[-8:-6])[0] == 1232


def test_every_record_type_round_trips():
    q = [("x.example", m.NAPTR)]
    records = [Record("x.example", m.A, 1, "10.0.0.1"),
               Record("x.example", m.AAAA, 2, "2001:db8::1"),
               Record("x.example", m.CNAME, 3, "y.example"),
               Record("x.example", m.SRV, 4, (1, 2, 3, "z.example")),
               Record("x.example", m.NAPTR, 5, (10, 20, "s", "sip+d2u", "", "_sip._udp.x.example")),
               Record("x.example", m.TXT, 6, b"\x02hi")]
    soa = Record("example", m.SOA, 7, ("ns.example", "root.example", 1, 2, 3, 4, 60))
    msg = m.decode(m.encode_response(7, m.NXDOMAIN, q, records, [soa]))
    assert msg.rcode == m.NXDOMAIN and msg.is_response
    assert [(r.rtype, r.ttl, r.data) for r in msg.answers] == \
        [(r.rtype, r.ttl, r.data) for r in records]
    assert msg.authority[0].data == soa.data


def test_compressed_names_are_followed():
    # a response as servers write it: the answer's name a pointer to the question's
    header = struct.pack("!HHHHHH", 9, m.QR, 1, 1, 0, 0)
    question = b"\x03sip\x07example\x03com\x00" + struct.pack("!HH", m.CNAME, 1)
    target = b"\x05proxy\xc0\x10"           # "proxy" + pointer to "example.com" (offset 16)
    rr = b"\xc0\x0c" + struct.pack("!HHIH", m.CNAME, 1, 60, len(target)) + target
    msg = m.decode(header + question + rr)
    assert msg.answers[0].name == "sip.example.com"
    assert msg.answers[0].data == "proxy.example.com"


def test_a_top_bit_ttl_is_zero():
    wire = bytearray(m.encode_response(1, 0, [("a", m.A)], [Record("a", m.A, 5, "1.2.3.4")]))
    wire[-10:-6] = b"\x80\x00\x00\x01"
    assert m.decode(bytes(wire)).answers[0].ttl == 0


@pytest.mark.parametrize("wire, reason", [
    (b"\x00\x01", "shorter than a header"),
    (struct.pack("!HHHHHH", 1, m.QR, 0, 60000, 0, 0), "counts"),
    (struct.pack("!HHHHHH", 1, m.QR, 1, 0, 0, 0) + b"\x10abcd", "past the end"),
    (struct.pack("!HHHHHH", 1, m.QR, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01", "loop"),
    (struct.pack("!HHHHHH", 1, m.QR, 1, 0, 0, 0) + b"\xc0\x20\x00\x01\x00\x01", "forward"),
    (struct.pack("!HHHHHH", 1, m.QR, 1, 0, 0, 0) + b"\x40abc\x00\x00\x01\x00\x01", "reserved"),
    (struct.pack("!HHHHHH", 1, m.QR, 1, 0, 0, 0) + b"\x01a\x00\x00\x01", "question cut short"),
    (struct.pack("!HHHHHH", 1, m.QR, 1, 0, 0, 0) + (b"\x3f" + b"a" * 63) * 5 + b"\x00"
     + b"\x00\x01\x00\x01", "longer than 255"),
])
def test_malformed_messages_are_dns_errors_with_the_offset(wire, reason):
    with pytest.raises(DnsError, match=reason) as info:
        m.decode(wire)
    assert info.value.offset is not None


def test_two_pointers_pointing_at_each_other_are_a_loop():
    # name at 12 points to 14, name at 14 points to 12: the backward rule refuses the first
    header = struct.pack("!HHHHHH", 1, m.QR, 2, 0, 0, 0)
    wire = header + b"\xc0\x0e" + b"\x00\x01\x00\x01" + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    with pytest.raises(DnsError, match="pointer"):
        m.decode(wire)


@pytest.mark.parametrize("rtype, rdata", [(m.A, b"\x01\x02\x03"), (m.AAAA, b"\x00" * 15),
                                          (m.SRV, b"\x00\x01"), (m.NAPTR, b"\x00\x01\x00\x02\x05s"),
                                          (m.CNAME, b"\x01a\x00extra"), (m.SOA, b"\x00\x00")])
def test_records_of_the_wrong_size_are_dns_errors(rtype, rdata):
    wire = (struct.pack("!HHHHHH", 1, m.QR, 0, 1, 0, 0) + b"\x00"
            + struct.pack("!HHIH", rtype, 1, 1, len(rdata)) + rdata)
    with pytest.raises(DnsError):
        m.decode(wire)


def test_random_corruption_never_raises_anything_but_dns_error():
    rnd = random.Random(3263)
    good = _srv_answer()
    for _ in range(5000):
        wire = bytearray(good)
        for _ in range(rnd.randint(1, 6)):
            wire[rnd.randrange(len(wire))] = rnd.randrange(256)
        wire = bytes(wire[:rnd.randint(0, len(wire))]) if rnd.random() < 0.3 else bytes(wire)
        try:
            m.decode(wire)
        except DnsError:
            pass


def test_names_that_cannot_be_encoded():
    for bad in ("a..b", "x" * 64 + ".com", "é.example", ("a" * 60 + ".") * 5):
        with pytest.raises(DnsError):
            m.encode_query(1, bad, m.A)


def test_pointer_bytes_in_the_letter_range_and_mixed_case_names():
    # pointer offsets like 0x52 ("R") must not be mistaken for letters, and names come out
    # lower-case however the server wrote them
    pad = [Record(f"N{i}.Example", m.TXT, 1, b"\x01x" * 2) for i in range(2)]
    wire = bytearray(m.encode_response(1, 0, [("Q.Example", m.A)], pad))
    at = len(wire)
    wire += b"\x03Ptr\xc0\x0e" + struct.pack("!HHIH", m.A, 1, 5, 4) + bytes((1, 2, 3, 4))
    wire += struct.pack("!H", 0xC000 | at) + struct.pack("!HHIH", m.A, 1, 5, 4) + bytes(4)
    wire[7] = 4                                        # four answers
    msg = m.decode(bytes(wire))
    assert 0x41 <= at <= 0x5A
    assert [r.name for r in msg.answers[-2:]] == ["ptr.example", "ptr.example"]
    assert msg.questions == [("q.example", m.A)]
