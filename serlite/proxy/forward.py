"""Where messages go and how a forwarded request is built (RFC 3261 16.6, 18.2.2, RFC 3581).

Pure functions over parsed messages: no sockets, no clock.  Name resolution is the caller's.
"""

import hashlib

from ..sip.errors import ParseError
from ..sip.grammar import param_value
from ..sip.headers import MAGIC_COOKIE
from ..sip.uri import URI

DEFAULT_MAX_FORWARDS = 70       # RFC 3261 16.6 step 3


def uri_parts(uri):
    """What RFC 3263 4 selects the next hop from: (host, port or None, transport or None,
    secure) of a SIP URI (a URI or its text); maddr, when present, is the host (4)."""
    if isinstance(uri, str):
        uri = URI.parse(uri)
    params = uri.params
    if params:
        transport = param_value(params, "transport")
        transport = transport.lower() if transport else None
        host = param_value(params, "maddr") or uri.host
    else:
        transport, host = None, uri.host
    return host.strip("[]"), uri.port, transport, uri.scheme == "sips"


def uri_target(uri):
    """(proto, host, port) to send to for a SIP URI when its host is an address (RFC 3263 4.2:
    maddr, then the transport parameter, then the default port); a name's targets come from
    the resolver (``Core.locate``, with ``uri_parts``)."""
    if isinstance(uri, str):
        uri = URI.parse(uri)
    params = uri.params
    if params:
        transport = param_value(params, "transport")
        transport = transport.lower() if transport else ""
        host = param_value(params, "maddr") or uri.host
    else:
        transport = ""
        host = uri.host
    if uri.scheme == "sips" or transport == "tls":
        return "tls", host.strip("[]"), uri.port or 5061      # RFC 3261 19.1.2, 26.2.2
    proto = "tcp" if transport == "tcp" else "udp"
    return proto, host.strip("[]"), uri.port or 5060


def via_target(via, source=None):
    """Where responses to a request with this top Via go (RFC 3261 18.2.2, RFC 3581 4).

    ``source`` is the request's Source when we answer it ourselves: the reply then goes back over
    its TCP or TLS connection, or by the transport it came on (whatever its Via claims) to the
    address received/rport name."""
    if source is not None:
        if source.proto != "udp":
            return source.proto, source.ip, source.port
        proto = source.proto
    else:
        proto = via.transport.lower()
        if proto not in ("udp", "tcp", "tls"):
            proto = "udp"
    params = via.params
    if len(params) == 1 and params[0][0] == "branch":
        # the usual Via (a phone's, our own): its branch alone, no maddr, received or rport
        # to look for
        return proto, via.host.strip("[]"), via.port or 5060
    maddr = param_value(params, "maddr")
    if maddr:
        return proto, maddr.strip("[]"), via.port or 5060
    host = param_value(params, "received") or via.host
    rport = param_value(params, "rport")
    if rport:
        port = int(rport)
    else:
        port = via.port or 5060
    return proto, host.strip("[]"), port


def fix_top_via(msg, source):
    """RFC 3261 18.2.1 and RFC 3581 4: note where the request really came from on its top Via.
    Only edits the message when the Via says something else, so most requests stay untouched
    (``set_param`` on the message's own Via rewrites that one line when serialised)."""
    via = msg.top_via
    rport = via.rport
    if rport == "":
        via.set_param("rport", str(source.port))
        via.set_param("received", source.ip)
    else:
        host = via.host
        if host != source.ip and host.strip("[]") != source.ip:
            via.set_param("received", source.ip)


def stateless_branch(msg, index=0):
    """RFC 3261 16.11: a stateless proxy's branch must be the same for a retransmission, so it
    is a hash of what identifies the incoming request."""
    via = msg.top_via
    incoming = via.branch or ""
    if incoming.startswith(MAGIC_COOKIE):
        seed = f"{incoming}|{via.host}|{via.port}|{index}"
    else:
        seed = (f"{msg.call_id}|{msg.cseq.number}|{msg.from_.tag}|{msg.to.tag}|{msg.ruri}|"
                f"{via.host}|{via.port}|{incoming}|{index}")
    return MAGIC_COOKIE + "sl" + hashlib.md5(seed.encode("latin-1")).hexdigest()[:20]


def via_line(listener, proto, branch):
    """Our Via header line for a request sent from ``listener``."""
    return f"Via: SIP/2.0/{proto.upper()} {listener.host}:{listener.port};branch={branch}\r\n"


def check_forwardable(msg):
    """RFC 3261 16.3 steps 3 and 16.6 step 3: whatever the script says, a request with
    Max-Forwards 0 is not forwarded, and one whose Proxy-Require names an extension we do not
    support is refused.  Returns (status, reason, extra (name, value) headers) or None."""
    mf = msg.max_forwards
    if mf is not None and mf <= 0:
        return 483, "Too Many Hops", ()
    required = msg.values("Proxy-Require")
    if required:
        # 16.3 step 5 / 20.29: we support no extension that needs a proxy's co-operation
        return 420, "Bad Extension", (("Unsupported", ", ".join(required)),)
    return None


def prepare_request(msg, received_max_forwards):
    """The parts of 16.6 that are the same for every branch: Max-Forwards (step 3), from the
    value the request came with (a failure_route relays the same request again).  Returns the
    request as bytes without its request line, for ``branch_bytes``."""
    mf = received_max_forwards
    msg.set_max_forwards(DEFAULT_MAX_FORWARDS if mf is None else mf - 1)
    return msg.headers_bytes()


def branch_bytes(method, ruri, rest, via):
    """One branch's request: request line with its R-URI (16.6 step 2), our Via first (step 8)."""
    return f"{method} {ruri} SIP/2.0\r\n{via}".encode("latin-1") + rest


def is_unicast_target(ip):
    """Never send to a broadcast or multicast address (RFC 4475 3.3.10)."""
    if ":" in ip:
        return not ip.lower().startswith("ff")
    first = ip.split(".", 1)[0]
    return not (ip == "255.255.255.255" or (first.isdigit() and 224 <= int(first) <= 239))
