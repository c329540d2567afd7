"""Requests a client transaction makes itself: ACK for a non-2xx final response (RFC 3261
17.1.1.3) and CANCEL (RFC 3261 9.1), both built from the request as it was sent."""

from ..sip.message import raw_header_lines

_COPY = ("call-id", "from", "route", "max-forwards")


def _build(sent, method, to_line):
    """Request line's URI, the top Via only, Call-ID, From, To, Route, CSeq number with
    ``method``.  ``sent`` starts with our own Via (we put it first)."""
    first, lines = raw_header_lines(sent)
    ruri = first.split(" ")[1]
    out = [f"{method} {ruri} SIP/2.0"]
    via = next(line for name, line in lines if name == "via")
    out.append(via)
    cseq = None
    for name, line in lines:
        if name in _COPY:
            out.append(line)
        elif name == "to" and to_line is None:
            out.append(line)
        elif name == "cseq":
            cseq = line.split(":", 1)[1].split()[0]
    if to_line is not None:
        out.append(to_line)
    out.append(f"CSeq: {cseq} {method}")
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


def build_ack(sent, response):
    """17.1.1.3: the To of the response (with its tag), everything else from the request."""
    to = response.get("To")
    return _build(sent, "ACK", f"To: {to}")


def build_cancel(sent):
    """9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via as the request."""
    return _build(sent, "CANCEL", None)
