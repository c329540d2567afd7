"""DNS messages (RFC 1035 4): queries encoded, responses decoded, nothing else.

Decoded: the header, the questions, and in the three record sections A, AAAA, CNAME, SRV
(RFC 2782), NAPTR (RFC 3403) and SOA (for negative caching, RFC 2308 5); any other type is
kept as its raw RDATA bytes.  Names are followed through compression pointers (RFC 1035
4.1.4) only backwards and at most ``_MAX_POINTERS`` times, so a pointer loop or a pointer out
of the packet is a ``DnsError`` with the offset where it was met; so are a truncated packet,
counts larger than the packet can hold and a name over 255 bytes.  ``decode`` raises nothing
but ``DnsError``.

Encoded: a query for one question, with the id the caller chose (random per query: the
resolver draws it), RD set, names as given, lower-cased (no 0x20 mixing), and optionally an
EDNS0 OPT record (RFC 6891) advertising a UDP payload size.
"""

import ipaddress
import struct

# RFC 1035 3.2.2, RFC 3596, RFC 2782, RFC 3403, RFC 6891
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, NAPTR, OPT = 1, 2, 5, 6, 12, 15, 16, 28, 33, 35, 41
TYPE_NAMES = {A: "A", NS: "NS", CNAME: "CNAME", SOA: "SOA", PTR: "PTR", MX: "MX", TXT: "TXT",
              AAAA: "AAAA", SRV: "SRV", NAPTR: "NAPTR", OPT: "OPT"}
CLASS_IN = 1

# RFC 1035 4.1.1 RCODE
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
RCODE_NAMES = {NOERROR: "NOERROR", FORMERR: "FORMERR", SERVFAIL: "SERVFAIL",
               NXDOMAIN: "NXDOMAIN", NOTIMP: "NOTIMP", REFUSED: "REFUSED"}

# header flag bits (RFC 1035 4.1.1)
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080

MAX_NAME = 255          # RFC 1035 2.3.4: octets of a name on the wire
MAX_LABEL = 63
_MAX_POINTERS = 32      # more pointers than a 255-octet name can need: a loop
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_SRV = struct.Struct("!HHH")
_NAPTR = struct.Struct("!HH")
_SOA = struct.Struct("!IIIII")


class DnsError(Exception):
    """A malformed DNS message (or a name that cannot be encoded): ``reason`` and the
    ``offset`` in the packet where it was found (None when encoding)."""

    def __init__(self, reason, offset=None):
        super().__init__(reason if offset is None else f"{reason} at offset {offset}")
        self.reason = reason
        self.offset = offset


class Record:
    """One resource record.  ``data`` by type: A/AAAA the address text, CNAME the target name,
    SRV ``(priority, weight, port, target)``, NAPTR ``(order, preference, flags, service,
    regexp, replacement)`` (flags and service lower-cased), SOA ``(mname, rname, serial,
    refresh, retry, expire, minimum)``; any other type the RDATA bytes.  Names lower-case,
    without the final dot (the root is "")."""

    __slots__ = ("name", "rtype", "ttl", "data")

    def __init__(self, name, rtype, ttl, data):
        self.name = name
        self.rtype = rtype
        self.ttl = ttl
        self.data = data

    def __repr__(self):
        return (f"Record({self.name!r}, {TYPE_NAMES.get(self.rtype, self.rtype)}, "
                f"{self.ttl}, {self.data!r})")

    def __eq__(self, other):
        return (isinstance(other, Record) and self.name == other.name
                and self.rtype == other.rtype and self.data == other.data)

    def __hash__(self):
        return hash((self.name, self.rtype, self.data))


class Message:
    """A decoded message: ``id``, ``flags`` (the 16 header bits), ``rcode``, ``questions``
    [(name, qtype)], ``answers``, ``authority``, ``additional`` [Record]."""

    __slots__ = ("id", "flags", "questions", "answers", "authority", "additional")

    def __init__(self, id, flags, questions, answers, authority, additional):
        self.id = id
        self.flags = flags
        self.questions = questions
        self.answers = answers
        self.authority = authority
        self.additional = additional

    @property
    def rcode(self):
        return self.flags & 0xF

    @property
    def truncated(self):
        return bool(self.flags & TC)

    @property
    def is_response(self):
        return bool(self.flags & QR)


# -- encoding ---------------------------------------------------------------------------------
def encode_name(name):
    """``name`` (text, with or without the final dot) as wire labels."""
    name = name.rstrip(".").lower()
    out = bytearray()
    if name:
        for label in name.split("."):
            raw = label.encode("ascii", "strict") if label.isascii() else None
            if raw is None or not raw or len(raw) > MAX_LABEL:
                raise DnsError(f"cannot encode the name {name[:80]!r} (label {label[:70]!r})")
            out.append(len(raw))
            out += raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise DnsError(f"name longer than {MAX_NAME} octets: {name[:80]!r}")
    return bytes(out)


def encode_query(qid, name, qtype, edns_size=0):
    """A standard query (RD set) for ``name``/``qtype`` with id ``qid``; with ``edns_size`` an
    OPT record offering that UDP payload size (RFC 6891 6.1.2)."""
    header = _HEADER.pack(qid & 0xFFFF, RD, 1, 0, 0, 1 if edns_size else 0)
    body = encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)
    if edns_size:
        body += b"\x00" + struct.pack("!HHIH", OPT, edns_size, 0, 0)
    return header + body


# -- decoding ---------------------------------------------------------------------------------
def _name(data, offset, memo=None):
    """(name, offset after it in the record): labels followed through backward pointers.
    Names lower-case (they compare without case, RFC 4343); ``memo`` {offset:
    name} of the names decoded in this message, which compression points back to."""
    start = offset
    parts = []
    length = 0
    end = None              # where the name ends in place (after its first pointer)
    pointers = 0
    size = len(data)
    tail = None
    while True:
        if offset >= size:
            raise DnsError("name runs past the end of the message", offset)
        n = data[offset]
        if n & 0xC0 == 0xC0:
            if offset + 1 >= size:
                raise DnsError("compression pointer cut short", offset)
            target = ((n & 0x3F) << 8) | data[offset + 1]
            if end is None:
                end = offset + 2
            pointers += 1
            # a pointer must point backwards (before the name that uses it): a forward or
            # self pointer can only serve a loop
            if target >= offset or pointers > _MAX_POINTERS:
                raise DnsError("compression pointer loop or forward pointer", offset)
            if memo is not None:
                tail = memo.get(target)
                if tail is not None:
                    length += len(tail) + 1
                    if length + 1 > MAX_NAME:
                        raise DnsError(f"name longer than {MAX_NAME} octets", offset)
                    break
            offset = target
            continue
        if n & 0xC0:
            raise DnsError(f"reserved label type 0x{n & 0xC0:02x}", offset)
        if n == 0:
            offset += 1
            break
        if offset + 1 + n > size:
            raise DnsError("label runs past the end of the message", offset)
        length += n + 1
        if length + 1 > MAX_NAME:
            raise DnsError(f"name longer than {MAX_NAME} octets", offset)
        parts.append(data[offset + 1:offset + 1 + n])
        offset += 1 + n
    name = b".".join(parts).lower().decode("latin-1")
    if tail is not None:
        name = f"{name}.{tail}" if name else tail
    if memo is not None:
        memo[start] = name
    return name, (offset if end is None else end)


def _char_string(data, offset, end):
    if offset >= end:
        raise DnsError("character-string runs past its record", offset)
    n = data[offset]
    if offset + 1 + n > end:
        raise DnsError("character-string runs past its record", offset)
    return data[offset + 1:offset + 1 + n].decode("latin-1"), offset + 1 + n


def _rdata(data, memo, rtype, offset, rdlen):
    end = offset + rdlen
    if rtype == A:
        if rdlen != 4:
            raise DnsError(f"A record of {rdlen} octets", offset)
        return "%d.%d.%d.%d" % tuple(data[offset:end])
    if rtype == AAAA:
        if rdlen != 16:
            raise DnsError(f"AAAA record of {rdlen} octets", offset)
        return str(ipaddress.IPv6Address(bytes(data[offset:end])))
    if rtype == CNAME:
        name, after = _name(data, offset, memo)
        if after != end:
            raise DnsError("CNAME name does not fill its record", offset)
        return name
    if rtype == SRV:
        if rdlen < 7:
            raise DnsError(f"SRV record of {rdlen} octets", offset)
        priority, weight, port = _SRV.unpack_from(data, offset)
        target, after = _name(data, offset + 6, memo)
        if after != end:
            raise DnsError("SRV target does not fill its record", offset)
        return (priority, weight, port, target)
    if rtype == NAPTR:
        if rdlen < 7:
            raise DnsError(f"NAPTR record of {rdlen} octets", offset)
        order, preference = _NAPTR.unpack_from(data, offset)
        pos = offset + 4
        flags, pos = _char_string(data, pos, end)
        service, pos = _char_string(data, pos, end)
        regexp, pos = _char_string(data, pos, end)
        replacement, after = _name(data, pos, memo)
        if after != end:
            raise DnsError("NAPTR replacement does not fill its record", offset)
        return (order, preference, flags.lower(), service.lower(), regexp, replacement)
    if rtype == SOA:
        mname, pos = _name(data, offset, memo)
        rname, pos = _name(data, pos, memo)
        if pos + 20 != end:
            raise DnsError("SOA record of the wrong size", offset)
        return (mname, rname) + _SOA.unpack_from(data, pos)
    return bytes(data[offset:end])


def _records(data, memo, offset, count, out):
    size = len(data)
    for _ in range(count):
        name, offset = _name(data, offset, memo)
        if offset + 10 > size:
            raise DnsError("record header cut short", offset)
        rtype, rclass, ttl, rdlen = _RR.unpack_from(data, offset)
        offset += 10
        if offset + rdlen > size:
            raise DnsError(f"record data of {rdlen} octets past the end", offset)
        if ttl & 0x80000000:    # RFC 2181 8: a TTL with the top bit set is zero
            ttl = 0
        if rtype == OPT or rclass == CLASS_IN:
            out.append(Record(name, rtype, ttl, _rdata(data, memo, rtype, offset, rdlen)))
        offset += rdlen
    return offset


def decode(data):
    """The ``Message`` in ``data`` (bytes); ``DnsError`` when it is malformed."""
    try:
        size = len(data)
        if size < 12:
            raise DnsError(f"message of {size} octets, shorter than a header", 0)
        qid, flags, qd, an, ns, ar = _HEADER.unpack_from(data, 0)
        # every question takes at least 5 octets, every record 11: counts that cannot fit
        # are refused before any loop runs on them
        if qd * 5 + (an + ns + ar) * 11 > size - 12:
            raise DnsError(f"counts ({qd} questions, {an + ns + ar} records) larger than the "
                           f"message of {size} octets", 4)
        offset = 12
        memo = {}
        questions = []
        for _ in range(qd):
            name, offset = _name(data, offset, memo)
            if offset + 4 > size:
                raise DnsError("question cut short", offset)
            qtype, _qclass = struct.unpack_from("!HH", data, offset)
            offset += 4
            questions.append((name, qtype))
        answers, authority, additional = [], [], []
        offset = _records(data, memo, offset, an, answers)
        offset = _records(data, memo, offset, ns, authority)
        _records(data, memo, offset, ar, additional)
        return Message(qid, flags, questions, answers, authority, additional)
    except DnsError:
        raise
    except (struct.error, ValueError, IndexError, TypeError) as exc:  # belt and braces
        raise DnsError(f"malformed message ({exc})", None) from None


def _encode_rdata(rtype, data):
    if rtype == A:
        return bytes(int(x) for x in data.split("."))
    if rtype == AAAA:
        return ipaddress.IPv6Address(data).packed
    if rtype == CNAME:
        return encode_name(data)
    if rtype == SRV:
        return _SRV.pack(*data[:3]) + encode_name(data[3])
    if rtype == NAPTR:
        out = _NAPTR.pack(data[0], data[1])
        for text in data[2:5]:
            raw = text.encode("latin-1")
            out += bytes((len(raw),)) + raw
        return out + encode_name(data[5])
    if rtype == SOA:
        return encode_name(data[0]) + encode_name(data[1]) + _SOA.pack(*data[2:])
    return bytes(data)


def encode_response(qid, flags, questions, answers=(), authority=(), additional=()):
    """A response (names uncompressed): for test servers and benchmarks, and the shape a
    synthesised answer would take.  ``flags`` include the rcode; QR is set."""
    out = bytearray(_HEADER.pack(qid & 0xFFFF, flags | QR, len(questions), len(answers),
                                 len(authority), len(additional)))
    for name, qtype in questions:
        out += encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)
    for section in (answers, authority, additional):
        for rec in section:
            rdata = _encode_rdata(rec.rtype, rec.data)
            out += encode_name(rec.name) + _RR.pack(rec.rtype, CLASS_IN, rec.ttl, len(rdata))
            out += rdata
    return bytes(out)
