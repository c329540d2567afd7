"""SDP bodies (RFC 4566) as far as NAT traversal needs them: the addresses of the ``c=`` and
``o=`` lines, rewriting them, adding attribute lines.

Bytes in, bytes out: every line that is not rewritten stays byte for byte, line endings
included (CRLF as RFC 4566 5 asks, a lone LF as many phones send).  Nothing here raises on a
malformed body: a line that does not have the expected fields is left alone.

RFC 4566 9:
  origin-field      = %x6f "=" username SP sess-id SP sess-version SP
                      nettype SP addrtype SP unicast-address CRLF
  connection-field  = [%x63 "=" nettype SP addrtype SP connection-address CRLF]
  nettype           = token          ;typically "IN"
  addrtype          = token          ;typically "IP4" or "IP6"
  connection-address = multicast-address / unicast-address
  (a multicast IP4 address carries "/ttl", e.g. c=IN IP4 224.2.1.1/127)
"""

__all__ = ["is_sdp", "addresses", "rewrite_addresses", "add_lines", "is_null_address",
           "split_eol"]

# the position of (addrtype, address) among a line's fields, and how many fields it has
_FIELDS = {b"c": (3, 1, 2), b"o": (6, 4, 5)}


def is_sdp(content_type):
    """True when a Content-Type value names ``application/sdp`` (parameters ignored)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip(" \t").lower() == "application/sdp"


def is_null_address(address):
    """``0.0.0.0`` or an all-zero IPv6 address: a stream on hold (RFC 3264 8.4), never
    rewritten."""
    if address == b"0.0.0.0":
        return True
    return b":" in address and not address.strip(b"0:")


def split_eol(line):
    """(the line without its ending, the ending): CRLF, a lone LF or CR, or b""."""
    if line.endswith(b"\r\n"):
        return line[:-2], b"\r\n"
    if line.endswith(b"\n") or line.endswith(b"\r"):
        return line[:-1], line[-1:]
    return line, b""


def _fields(line, kind):
    """(fields, eol) of a ``kind=`` line with the expected number of fields, else None."""
    if line[:2] != kind + b"=":
        return None
    text, eol = split_eol(line)
    fields = text[2:].split()
    if len(fields) != _FIELDS[kind][0]:
        return None
    return fields, eol


def addresses(body, kind=b"c"):
    """The (addrtype, address) of every well-formed ``c=`` (or ``o=``) line of ``body``, in
    order, as bytes (``[(b"IP4", b"192.168.1.50")]``)."""
    _, at, aa = _FIELDS[kind]
    out = []
    for line in body.splitlines(True):
        parsed = _fields(line, kind)
        if parsed is not None:
            fields = parsed[0]
            out.append((fields[at], fields[aa]))
    return out


def rewrite_addresses(body, kind, ip):
    """``body`` with the address of every ``kind=`` line (``b"c"`` or ``b"o"``) of network type
    IN replaced by ``ip`` (text, IPv4 or IPv6 without brackets), the addrtype following it (IP4
    or IP6).  Null addresses (on hold) and multicast addresses (``/ttl``) are kept.

    Returns (new body, number of such lines found); the count includes lines left as they were,
    so 0 means the body has no such line at all."""
    _, at, aa = _FIELDS[kind]
    new_ip = ip.encode("latin-1")
    new_type = b"IP6" if b":" in new_ip else b"IP4"
    found = 0
    out = []
    for line in body.splitlines(True):
        parsed = _fields(line, kind)
        if parsed is None:
            out.append(line)
            continue
        fields, eol = parsed
        found += 1
        addr = fields[aa]
        if (fields[at - 1] != b"IN" or b"/" in addr or is_null_address(addr)
                or (addr == new_ip and fields[at] == new_type)):
            out.append(line)
            continue
        fields[at] = new_type
        fields[aa] = new_ip
        out.append(kind + b"=" + b" ".join(fields) + eol)
    return b"".join(out), found


def add_lines(body, lines):
    """``body`` with ``lines`` (bytes, without line ends) appended at its end, i.e. to the last
    media description (where SER's nathelper puts ``a=direction:active``).  They get the line
    ending the body uses (CRLF unless its first line ends with a lone LF); a last line without
    an ending gets one first."""
    if not lines:
        return body
    first = body.split(b"\n", 1)
    eol = b"\n" if len(first) == 2 and not first[0].endswith(b"\r") else b"\r\n"
    if body and not body.endswith(b"\n") and not body.endswith(b"\r"):
        body += eol
    return body + b"".join(line + eol for line in lines)
