"""rr: record-routing (RFC 3261 16.4, 16.6 step 4): ``record_route``, ``record_route_preset``,
``loose_route`` (with strict-router compatibility, RFC 3261 16.4).

``sign_routes`` (serlite's; Kamailio has no such parameter): every Record-Route we add carries
``;sig=``, a MAC of the Call-ID under the auth module's nonce secret, and ``loose_route()``
follows a route set whose top entry is ours only when that MAC is right.  A To tag and our own
address in a Route are easy to forge (``Route: <sip:ROUTER;lr>,<sip:GATEWAY;lr>`` with a made-up
To tag would walk an INVITE past the logins to a gateway); a signature is not, and it needs no
state, so dialogs outlive a restart.  Both directions of a dialog share the Call-ID, and the
Route value is the Record-Route value we wrote, so the check holds for either side.

``enable_double_rr`` (Kamailio's, 1 by default there and here): a request that leaves by
another socket than it came in on (another interface with ``mhomed=1``, or another transport)
gets two entries, the outgoing socket's on top (the one the callee sends to), then the incoming
one's (the one the caller sends to), so each side reaches us on the address it can reach.
``record_route()`` runs before the branch's socket is known (the script may still change the
destination, tm forks), so it writes the incoming entry only, and the sending code asks
``double_entry`` per branch, once its socket is chosen, for the bytes with the outgoing entry
added: Kamailio's lumps do the same at the point of sending.  It costs one identity check per
branch when the sockets are the same.
"""

import hashlib
import hmac
import os

from .. import log
from .export import BRANCH_ROUTE, FAILURE_ROUTE, REQUEST_ROUTE, Function, Module, ModuleSpec, \
    Param

PRELOADED = -3      # loose_route: the next hop comes from a route set we did not record
SIG_HEX = 16        # 64 bits of HMAC-SHA256: a forger gets one try per request


class Rr(Module):
    name = "rr"

    def __init__(self, params):
        super().__init__(params)
        self._lr = ";lr=on" if params["enable_full_rr"] else ";lr"
        self._append_fromtag = bool(params["append_fromtag"])
        self._prefixes = {}     # Listener -> "Record-Route: <sip:host:port;transport=..;lr"
        self._sign = bool(params["sign_routes"])
        self._key = None        # the auth module's secret, taken at first use
        self._double = bool(params["enable_double_rr"])
        # loose_route's callbacks (Kamailio's register_rrcb): uac's restore and CSeq shift;
        # called with (ctx, the URI of our Route entry) before the entry is removed
        self.callbacks = ()

    def start(self, core, previous=None):
        super().start(core, previous)
        # the sending code (core's forward, tm's branches) adds the outgoing entry
        core.double_rr = self.double_entry if self._double else None

    def _prefix(self, local):
        prefix = self._prefixes.get(local)
        if prefix is None:
            transport = f";transport={local.proto}" if local.proto != "udp" else ""
            prefix = self._prefixes[local] = (
                f"Record-Route: <sip:{local.host}:{local.port}{transport}{self._lr}")
        return prefix

    def double_entry(self, rest, inbound, outbound):
        """``rest`` (a request's bytes after its request line) with ``outbound``'s entry put on
        top of the one ``record_route()`` wrote for ``inbound``, with the same parameters
        (ftag, sig); ``rest`` as it is when it has no such entry.  Ours is the first
        Record-Route line (record_route puts it above the others)."""
        prefix = self._prefixes.get(inbound)
        if prefix is None:      # record_route() never ran for this socket
            return rest
        head = prefix.encode("latin-1")
        start = rest.find(head)
        if start < 0:
            return rest
        # record_route() puts ours above every other Record-Route: a match further down is
        # another hop's entry naming us (a spiral), not ours to double
        first = rest.find(b"Record-Route:")
        if first != start:
            return rest
        end = rest.find(b"\r\n", start)
        tail = rest[start + len(head):end + 2]  # ;ftag=...;sig=...>CRLF
        return (rest[:start] + self._prefix(outbound).encode("latin-1") + tail
                + rest[start:])

    def _signature(self, msg):
        """``;sig=`` + the MAC of the request's Call-ID (empty when routes are not signed)."""
        if not self._sign:
            return ""
        key = self._key
        if key is None:
            auth = self.core.module("auth")
            key = getattr(auth, "secret", None)
            if not key:
                # no auth module: a key for this run only (dialogs then end with a restart)
                log.notice("rr: sign_routes without the auth module's secret: a key for this "
                           "run only")
                key = os.urandom(32)
            self._key = key
        mac = hmac.new(key, (msg.call_id or "").encode("utf-8", "surrogateescape"),
                       hashlib.sha256).hexdigest()[:SIG_HEX]
        return ";sig=" + mac

    def _signed(self, msg, uri):
        """True when ``uri`` (one of our Route entries) carries the right signature, or routes
        are not signed."""
        if not self._sign:
            return True
        given = uri.param("sig")
        return given is not None and hmac.compare_digest(
            given, self._signature(msg)[len(";sig="):])

    def _ftag(self, ctx):
        sig = self._signature(ctx.msg)
        if not self._append_fromtag:
            return sig
        tag = ctx.msg.from_.tag
        return (f";ftag={tag}" if tag else "") + sig

    def record_route(self, ctx):
        local = ctx.source.local
        if local is None:
            return -1
        prefix = self._prefixes.get(local) or self._prefix(local)
        # our address, and the From tag as parse() took it (a token, no LWS, no CR/LF): a
        # line that needs none of add_header's checks (``_ftag``, written out: this runs for
        # every request)
        msg = ctx.msg
        if self._append_fromtag:
            tag = msg.from_.tag
            if tag:
                prefix = prefix + ";ftag=" + tag
        if self._sign:
            prefix += self._signature(msg)      # hex digits: as safe as the rest of the line
        msg.add_trusted_line("record-route", prefix + ">", True)
        return 1

    def record_route_preset(self, ctx, address):
        uri = address if address.startswith(("sip:", "sips:")) else "sip:" + address
        ctx.msg.add_header("Record-Route", f"<{uri}{self._lr}{self._ftag(ctx)}>", top=True)
        return 1

    def loose_route(self, ctx):
        """True (1) when the request carries a route set that we recorded and that now decides
        its next hop.  A route set whose top entry is not ours was pre-loaded by the sender
        (an outbound proxy, or a gateway someone wants to reach through us): it still decides
        the next hop when the request is relayed, but the answer is false (-3, Kamailio's
        RR_PRELOADED), so that ``if (has_totag()) { if (loose_route()) t_relay(); }`` never
        relays a request with a forged To tag straight to a gateway without credentials.
        With ``sign_routes``, an entry of ours without the right signature (a made-up
        ``Route: <sip:ROUTER;lr>,<sip:GATEWAY;lr>``) is false too (-1), and left in place."""
        msg = ctx.msg
        routes = msg.routes         # parsed once, cached on the lines: next_hop reads them too
        if not routes:
            return -1
        core = self.core
        ruri = ctx.uri
        # RFC 3261 16.4: the previous hop was a strict router, so the R-URI holds our own
        # Record-Route value: the real target is the last Route entry.
        if ruri is not None and ruri.user is None and core.is_myself(ruri.host, ruri.port):
            if not self._signed(msg, ruri):
                return -1
            ctx.set_ruri(routes[-1].uri_text)
            _remove_last_route(msg)
            return 1
        first = routes[0].uri
        if not core.is_myself(first.host, first.port):
            return PRELOADED
        if not self._signed(msg, first):
            return -1
        for callback in self.callbacks:
            callback(ctx, first)
        msg.remove_first_value("Route")
        # our own second entry when we record-routed twice (transport change)
        if len(routes) > 1:
            second = routes[1].uri
            if core.is_myself(second.host, second.port):
                msg.remove_first_value("Route")
        return 1


    def register_rrcb(self, callback):
        """``callback(ctx, uri)`` on every request loose_route finds our (signed) entry in."""
        if callback not in self.callbacks:
            self.callbacks = self.callbacks + (callback,)

    def set_rr_param(self, ctx, name, value):
        """Set ``;name=value`` on the request's top Record-Route when it is ours (the one
        ``record_route()`` wrote): what the dialog's later requests bring back in their
        Route (Kamailio's add_rr_param, for uac's stored values).  False when there is none
        of ours."""
        msg = ctx.msg
        local = ctx.source.local
        top = msg.get("Record-Route") if local is not None else None
        mine = self._prefix(local)[len("Record-Route: "):] if top is not None else None
        if mine is None or not top.startswith(mine):
            return False
        values = msg.values("Record-Route")
        first = values[0]
        head, gt, tail = first.partition(">")
        params = [p for p in head.split(";") if p.split("=", 1)[0] != name]
        msg.remove_first_value("Record-Route")
        msg.add_header("Record-Route", ";".join(params) + f";{name}={value}" + gt + tail,
                       top=True)
        return True


def _remove_last_route(msg):
    values = msg.values("Route")
    msg.remove_header("Route")
    for value in values[:-1]:
        msg.add_header("Route", value)


EXPORTS = ModuleSpec(
    name="rr",
    doc="Record-routing (RFC 3261 16.4): stay in a dialog's path, route in-dialog requests.",
    factory=Rr,
    functions=(
        Function("record_route", "record_route", (0,), REQUEST_ROUTE | BRANCH_ROUTE |
                 FAILURE_ROUTE, doc="add our Record-Route"),
        Function("record_route_preset", "record_route_preset", (1,), REQUEST_ROUTE |
                 BRANCH_ROUTE | FAILURE_ROUTE, doc="add a Record-Route with the given address"),
        Function("loose_route", "loose_route", (0,), REQUEST_ROUTE,
                 doc="route by the Route header; true if it was ours (-3: a pre-loaded route "
                 "set, whose top entry is not ours, decides the next hop)"),
    ),
    params={
        "enable_full_rr": Param(int, 0, "write ;lr=on instead of ;lr", min=0, max=1),
        "sign_routes": Param(int, 0, "1: our Record-Route carries ;sig= (a MAC of the Call-ID "
                             "under auth's secret) and loose_route follows only signed ones "
                             "(serlite's)", min=0, max=1),
        "append_fromtag": Param(int, 1, "add ;ftag= with the From tag", min=0, max=1),
        "enable_double_rr": Param(int, 1, "1: a request leaving by another socket than it came "
                                  "in on gets two Record-Route entries, the outgoing one's on "
                                  "top", min=0, max=1),
    },
)
