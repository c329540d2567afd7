"""The SDP of a relayed leg (built on serlite.sip.sdp): what a phone must be told so that its
media goes to the relay, not to the other phone.

``streams(body)`` reads each media description (RFC 4566 5.14 ``m=``): its port and the
address its media comes from (its own ``c=``, else the session's, RFC 4566 5.7), and its RTCP
port (``a=rtcp``, RFC 3605; else the RTP port + 1, RFC 3550 11).  ``relay_body(body, ip,
ports)`` rewrites it for a relay: every ``c=`` to ``ip`` (a null address, a stream on hold the
RFC 2543 way, is kept, RFC 3264 8.4), each ``m=`` port to the relay's, ``a=rtcp`` to the
relay's RTCP port (and address), and ICE removed (RFC 8445: the candidates name the phone's
own addresses, which would route media around the relay).  Direction attributes
(``sendonly``, ``recvonly``, ``inactive``: hold, RFC 3264 8.4) and everything else stay byte
for byte.  A stream with port 0 (refused or disabled, RFC 3264 6) stays 0 and is not relayed.
"""

from ..sip import sdp as _sdp

# attributes dropped when relaying: ICE (RFC 8445 / 8839 5)
_ICE = (b"a=candidate:", b"a=ice-ufrag:", b"a=ice-pwd:", b"a=ice-options:", b"a=ice-lite",
        b"a=ice-mismatch", b"a=remote-candidates:", b"a=end-of-candidates", b"a=ice-pacing:")


class Stream:
    """One media description as the relay needs it.  ``port`` 0: disabled (or malformed);
    ``address`` text, None when no ``c=`` covers it."""

    __slots__ = ("media", "port", "proto", "address", "rtcp_port", "rtcp_address")

    def __init__(self, media, port, proto):
        self.media = media
        self.port = port
        self.proto = proto
        self.address = None
        self.rtcp_port = port + 1 if port else 0
        self.rtcp_address = None

    def __repr__(self):
        return f"Stream({self.media} {self.address}:{self.port} rtcp {self.rtcp_port})"


def _m_fields(text):
    """(media, port, proto) of an ``m=`` line's text (without its ending); port 0 if the line
    is malformed."""
    fields = text[2:].split()
    if len(fields) < 3:
        return None
    port = fields[1].split(b"/", 1)[0]
    value = int(port) if port.isdigit() and len(port) <= 5 else 0
    if value > 65535:
        value = 0
    return fields[0].decode("latin-1"), value, fields[2].decode("latin-1")


def streams(body):
    """Every ``m=`` of ``body`` in order, as ``Stream``s (see the module's docstring)."""
    out = []
    session_addr = None
    current = None
    for line in body.splitlines(True):
        text, _ = _sdp.split_eol(line)
        if text[:2] == b"m=":
            parsed = _m_fields(text)
            current = Stream(*(parsed or ("?", 0, "?")))
            current.address = session_addr
            out.append(current)
        elif text[:2] == b"c=":
            fields = text[2:].split()
            if len(fields) == 3 and fields[0] == b"IN":
                addr = fields[2].split(b"/", 1)[0].decode("latin-1")
                if current is None:
                    session_addr = addr
                else:
                    current.address = addr
        elif text[:7] == b"a=rtcp:" and current is not None:
            fields = text[7:].split()
            if fields and fields[0].isdigit() and int(fields[0]) < 65536:
                current.rtcp_port = int(fields[0])
                if len(fields) == 4:
                    current.rtcp_address = fields[3].decode("latin-1")
    for s in out:
        if s.rtcp_address is None:
            s.rtcp_address = s.address
    return out


def relay_body(body, ip, ports, origin=False):
    """``body`` rewritten so that its media goes to the relay at ``ip`` (text), stream i to
    ``ports[i]`` (RTP; RTCP on the next port); ``ports[i]`` None (or past the list) leaves that
    ``m=`` line as it is.  ``origin``: the ``o=`` address too (Kamailio's flag ``o``); so
    always when the relay's address is of another family than the ``o=`` line's (a leg
    bridging IPv4 and IPv6: some phones take the session's family from ``o=``, baresip 1.0
    refuses an offer whose ``o=`` names a family it has no address of)."""
    addr = ip.encode("latin-1")
    addrtype = b"IP6" if b":" in addr else b"IP4"
    body, _ = _sdp.rewrite_addresses(body, b"c", ip)
    if origin or any(t != addrtype for t, _ in _sdp.addresses(body, b"o")):
        body, _ = _sdp.rewrite_addresses(body, b"o", ip)
    out = []
    index = -1
    port = None
    for line in body.splitlines(True):
        if line.startswith(_ICE):
            continue
        text, eol = _sdp.split_eol(line)
        if text[:2] == b"m=":
            index += 1
            port = ports[index] if index < len(ports) else None
            fields = text.split(b" ")
            if port is not None and len(fields) >= 3 and fields[1] != b"0":
                fields[1] = b"%d" % port
                line = b" ".join(fields) + eol
            else:
                port = None
        elif text[:7] == b"a=rtcp:" and port is not None:
            fields = text[7:].split()
            new = b"a=rtcp:%d" % (port + 1)
            if len(fields) == 4:
                new += b" IN " + addrtype + b" " + addr
            line = new + eol
        out.append(line)
    return b"".join(out)
