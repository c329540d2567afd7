"""The rtpproxy control protocol (rtpproxy's and rtpengine's ``--listen-udp``; SER's and
Kamailio's rtpproxy module speak it): commands as bytes, replies parsed.  Pure: no sockets, no
clock (serlite/extrelay.py sends them).

Over UDP every command starts with a cookie, a token the relay repeats at the start of its
reply, so that a reply is matched to its command and a retransmitted command gets the same
reply (the relay keeps its answers by cookie for a while: cookies must not repeat, not even
across a restart of ours).  The commands used:

* ``V`` -> the protocol version (``20040107``); ``VF <date>`` -> ``1`` when the relay has
  the capability of that date (``20050322``: the session's direction flags and the like).
* ``U<modifiers> <call-id> <ip> <port> <tag>[;<n>] [<other tag>[;<n>]]`` -- update/offer:
  the media of stream ``n`` (1-based) of the party with ``tag`` is at ``ip``:``port``; creates
  the session.  The reply ``<port> [<ip> [4|6]]`` is where the other party must send.
* ``L<modifiers> <call-id> <ip> <port> <other tag>[;<n>] <tag>[;<n>]`` -- lookup/answer: the
  same for the party answering (tags in the offer's order: the offerer's first); creates
  nothing, port 0 when there is no such session.
* ``D <call-id> <from tag> [<to tag>]`` -- delete; ``0`` when done.

Modifiers (Kamailio's flags): ``I``/``E`` the direction, in the order given (``IE``: from the
internal network to the external one; rtpengine picks its interfaces named ``internal`` and
``external``, rtpproxy in bridge mode its first and second address), ``A`` asymmetric (no
latching), ``6`` the address is IPv6.  An error reply is ``E<n>`` (rtpproxy's error codes).
"""

PROTOCOL_VERSION = b"20040107"      # what ``V`` answers
CAP_DIRECTIONS = b"20050322"        # ``VF``: the capability a bridging relay needs


class RtppError(ValueError):
    """A reply that says the command failed (``E<n>``, port 0) or does not parse; ``code``
    is the relay's error number, None when it gave none."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class Sock:
    """Where the relay listens: ``family`` ``"udp"`` or ``"udp6"``, ``host``, ``port``."""

    __slots__ = ("family", "host", "port")

    def __init__(self, family, host, port):
        self.family, self.host, self.port = family, host, port

    def __str__(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.family}:{host}:{self.port}"


def parse_sock(text):
    """``udp:host:port``, ``udp6:[addr]:port`` (or ``udp6:addr:port``, the last colon
    before the port) -> Sock.  ValueError with what is wrong: several sockets (Kamailio's
    weights and sets), ``unix:`` (rtpproxy's stream socket: not supported, use udp:)."""
    text = text.strip()
    if not text:
        raise ValueError("empty rtpproxy_sock")
    if any(c in text for c in " \t="):
        raise ValueError(f"rtpproxy_sock {text!r}: one socket only (several relays, weights "
                         f"and sets are not supported)")
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in ("udp", "udp6"):
        if scheme == "unix" or not sep:
            raise ValueError(f"rtpproxy_sock {text!r}: unix sockets are not supported; name "
                             f"a UDP one: udp:127.0.0.1:7722 (rtpproxy -s udp:..., rtpengine "
                             f"--listen-udp)")
        raise ValueError(f"rtpproxy_sock {text!r}: the scheme must be udp: or udp6:")
    if rest.startswith("["):
        end = rest.find("]")
        host, port = rest[1:end], rest[end + 2:] if rest[end + 1:end + 2] == ":" else ""
    else:
        host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"rtpproxy_sock {text!r}: expected {scheme}:host:port")
    if scheme == "udp6" and ":" not in host and not host.replace(".", "").isalnum():
        raise ValueError(f"rtpproxy_sock {text!r}: bad host")
    return Sock(scheme, host, int(port))


def _token(value, what):
    if not value or any(c in value for c in " \t\r\n;"):
        raise ValueError(f"{what} {value[:40]!r} cannot go into an rtpproxy command")
    return value


def modifiers(flags, ip):
    """The command's modifiers from a script's flags: directions in order, ``A``, ``6``."""
    out = "".join(c.upper() for c in flags if c in "ie")
    if "a" in flags:
        out += "A"
    if ":" in ip:
        out += "6"
    return out


def update(cookie, call_id, ip, port, tag, other_tag=None, stream=1, mods=""):
    """``U``: the offer of the party with ``tag`` (its stream ``stream`` at ip:port)."""
    text = (f"{cookie} U{mods} {_token(call_id, 'Call-ID')} {_token(ip, 'address')} "
            f"{int(port)} {_token(tag, 'tag')};{stream}")
    if other_tag:
        text += f" {_token(other_tag, 'tag')};{stream}"
    return text.encode("latin-1")


def lookup(cookie, call_id, ip, port, tag, offerer_tag, stream=1, mods=""):
    """``L``: the answer of the party with ``tag`` to the offer of ``offerer_tag``."""
    return (f"{cookie} L{mods} {_token(call_id, 'Call-ID')} {_token(ip, 'address')} "
            f"{int(port)} {_token(offerer_tag, 'tag')};{stream} "
            f"{_token(tag, 'tag')};{stream}").encode("latin-1")


def delete(cookie, call_id, from_tag, to_tag=None):
    """``D``: the call's session (both parties' media) is over."""
    text = f"{cookie} D {_token(call_id, 'Call-ID')} {_token(from_tag, 'tag')}"
    if to_tag:
        text += f" {_token(to_tag, 'tag')}"
    return text.encode("latin-1")


def version(cookie):
    return f"{cookie} V".encode("latin-1")


def capability(cookie, date=CAP_DIRECTIONS):
    return f"{cookie} VF ".encode("latin-1") + date


def split_reply(data):
    """(cookie, [tokens]) of a reply datagram; ValueError when it has no cookie."""
    parts = data.split()
    if not parts:
        raise RtppError("empty reply")
    return parts[0].decode("latin-1"), parts[1:]


def check_error(tokens):
    """RtppError when the reply's tokens say the command failed (``E<n>``, or nothing)."""
    if not tokens:
        raise RtppError("empty reply")
    first = tokens[0]
    if first[:1] in (b"E", b"e"):
        code = first[1:]
        raise RtppError(f"error {first.decode('latin-1')}",
                        int(code) if code.isdigit() else None)


def media_address(tokens, default_ip):
    """(ip, port) of a ``U``/``L`` reply: ``<port> [<ip> [4|6]]``; without an address, the
    relay's own (``default_ip``: rtpproxy started without ``-l`` says only the port).
    RtppError for an error, port 0 (no such session) or anything else that does not parse."""
    check_error(tokens)
    port = tokens[0]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise RtppError(f"no media port in the reply ({port[:20].decode('latin-1')!r})")
    ip = tokens[1].decode("latin-1") if len(tokens) > 1 else default_ip
    if ip in ("0.0.0.0", "::") or not ip or any(c not in "0123456789abcdefABCDEF.:"
                                                 for c in ip):
        raise RtppError(f"no usable address in the reply ({ip[:40]!r})")
    return ip, int(port)
