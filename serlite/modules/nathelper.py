"""nathelper: SER's helpers for phones behind NAT (the home router's own LAN phones are not; a
phone registering from a hotel or an office across the WAN is).

Script functions (SER names and flag bits):

* ``nat_uac_test(flags)`` -- true if any test of ``flags`` holds: 1 the first Contact's host is
  a private address (RFC 1918, and RFC 6598 shared space as Kamailio does); 2 the top Via's
  sent-by address is not the source address; 4 the top Via's host is private; 8 a ``c=`` line
  of the SDP body is private; 16 the source port is not the top Via's port (5060 if none).
* ``fix_nated_contact()`` -- the first Contact URI's host:port becomes the source ip:port.
* ``fix_nated_register()`` -- ``save()`` stores the binding with the source address
  (``sip:ip:port``, ``;transport=tcp`` over TCP) as its ``received``, flagged NATed; ``lookup()``
  then sends there.
* ``add_rcv_param()`` -- ``;received="sip:ip:port"`` on every Contact (SER's registrar stores
  that parameter as the binding's received address; so does ``save()`` here, through the same
  ``ctx.received`` that ``fix_nated_register`` sets).
* ``fix_nated_sdp(flags [, ip])`` -- Kamailio's bits: 1 add ``a=direction:active``; 2 the
  address of every ``c=`` line becomes the source address (or ``ip``); 4 add
  ``a=nortpproxy:yes``; 8 the same for the ``o=`` line.  Content-Length follows.

NAT keepalive: with ``natping_interval`` > 0, every NATed binding is pinged that often from the
socket its REGISTER came in on, to the address it came from: an ``OPTIONS`` request
(``natping_method``), or with ``natping_method`` "NULL" a bare ``CRLF CRLF`` (SER 2.0's 4-byte
ping).  With ``natping_timeout`` > 0, a binding that has not answered a ping (any response
counts, 404 and 405 too) nor registered again for that many seconds is removed.  UDP only:
a TCP binding keeps its NAT mapping open through its connection.
"""

import os
import socket

from .. import log
from ..proxy import forward
from ..sip import sdp
from ..sip.errors import ParseError
from ..sip.grammar import TOKEN_CHARS
from ..store.location import FLAG_NAT
from .export import (BRANCH_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE, REQUEST_ROUTE, Function,
                     Module, ModuleSpec, Param)

# nat_uac_test bits (SER's nathelper.c NAT_UAC_TEST_*)
TEST_CONTACT_PRIVATE = 1
TEST_VIA_RECEIVED = 2
TEST_VIA_PRIVATE = 4
TEST_SDP_PRIVATE = 8
TEST_VIA_RPORT = 16
_ALL_TESTS = 31

# fix_nated_sdp bits (Kamailio's nathelper: ADD_ADIRECTION, FIX_MEDIP, ADD_ANORTPPROXY,
# FIX_ORGIP)
SDP_ADD_DIRECTION = 1
SDP_FIX_C = 2
SDP_ADD_NORTPPROXY = 4
SDP_FIX_O = 8
_ALL_SDP = 15
DIRECTION_ACTIVE = b"a=direction:active"
NORTPPROXY = b"a=nortpproxy:yes"

CRLF_PING = b"\r\n\r\n"         # natping_method "NULL": SER 2.0's 4-byte keepalive
PING_BRANCH = "z9hG4bKnp"       # + random hex: our pings' Via branches (tm's never hold "n")

# RFC 1918 private networks and RFC 6598 shared address space (carrier-grade NAT), as
# (network, mask) over 32-bit integers.
_PRIVATE_V4 = tuple(
    (int.from_bytes(socket.inet_aton(net), "big"), (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF)
    for net, bits in (("10.0.0.0", 8), ("172.16.0.0", 12), ("192.168.0.0", 16),
                      ("100.64.0.0", 10)))


# --- the tests and rewrites: pure functions over a parsed message and its source ---------------

def ipv4_int(text):
    """The 32-bit value of a dotted-quad IPv4 address, None for anything else."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for p in parts:
        if not p.isdigit() or len(p) > 3:
            return None
        n = int(p)
        if n > 255:
            return None
        value = (value << 8) | n
    return value


def is_private(host):
    """True for an IPv4 address in 10/8, 172.16/12, 192.168/16 or 100.64/10."""
    value = ipv4_int(host)
    if value is None:
        return False
    return any(value & mask == net for net, mask in _PRIVATE_V4)


def same_address(host, ip):
    """Whether a Via/URI host (IPv6 in brackets, or a name) is the address ``ip``."""
    host = host.strip("[]").lower()
    ip = ip.lower()
    if host == ip:
        return True
    if ":" in host and ":" in ip:
        try:
            return socket.inet_pton(socket.AF_INET6, host) == \
                socket.inet_pton(socket.AF_INET6, ip)
        except (OSError, ValueError):
            return False
    return False


def uri_host(ip):
    """An IP address as a URI host: IPv6 in brackets."""
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


def received_uri(source):
    """``sip:ip:port`` (``;transport=tcp`` over TCP, ``tls`` over TLS): where a NATed UA can be
    reached (over its own connection)."""
    uri = f"sip:{uri_host(source.ip)}:{source.port}"
    return uri + f";transport={source.proto}" if source.proto != "udp" else uri


def _first_contact(msg):
    """The first Contact value (NameAddr), None if there is none, it is ``*`` or unparsable."""
    try:
        contacts = msg.contacts
    except ParseError:
        return None
    if not contacts or contacts == "*":
        return None
    return contacts[0]


def _sdp_body(msg):
    body = msg.body
    if not body or not sdp.is_sdp(msg.get("Content-Type")):
        return None
    return body


def uac_is_nated(msg, source, flags):
    """SER's nat_uac_test: true if any of the tests in ``flags`` holds (cheapest first).
    ``source`` may be None (a reply tm relays): the tests that need it are then false."""
    try:
        via = msg.top_via
    except ParseError:
        via = None
    if via is not None and source is not None:
        if flags & TEST_VIA_RPORT and source.port != (via.port or 5060):
            return True
        if flags & TEST_VIA_RECEIVED and not same_address(via.host, source.ip):
            return True
    if flags & TEST_CONTACT_PRIVATE:
        contact = _first_contact(msg)
        if contact is not None:
            try:
                if is_private(contact.uri.host):
                    return True
            except ParseError:
                pass
    if flags & TEST_SDP_PRIVATE:
        body = _sdp_body(msg)
        if body is not None:
            for addrtype, address in sdp.addresses(body, b"c"):
                if addrtype == b"IP4" and is_private(address.decode("latin-1")):
                    return True
    if flags & TEST_VIA_PRIVATE and via is not None and is_private(via.host):
        return True
    return False


def fix_contact(msg, source):
    """The first Contact URI's host:port becomes the source's; False if there is no SIP URI to
    fix (no Contact, ``*``, a tel: URI, a malformed one)."""
    contact = _first_contact(msg)
    if contact is None:
        return False
    try:
        uri = contact.uri
    except ParseError:
        return False
    if uri.scheme not in ("sip", "sips"):
        return False
    uri.host = uri_host(source.ip)
    uri.port = source.port
    contact.uri = uri
    return True


def add_received_param(msg, source):
    """``;received="sip:ip:port"`` on every Contact value; False if there is none."""
    try:
        contacts = msg.contacts
    except ParseError:
        return False
    if not contacts or contacts == "*":
        return False
    value = f'"{received_uri(source)}"'
    for contact in contacts:
        contact.set_param("received", value)
    return True


def fix_sdp(body, flags, ip):
    """The SDP ``body`` rewritten as fix_nated_sdp's ``flags`` say, or None when a rewrite of
    c= (o=) lines was asked and the body has none."""
    if flags & SDP_FIX_C:
        body, found = sdp.rewrite_addresses(body, b"c", ip)
        if not found:
            return None
    if flags & SDP_FIX_O:
        body, found = sdp.rewrite_addresses(body, b"o", ip)
        if not found:
            return None
    extra = []
    if flags & SDP_ADD_DIRECTION:
        extra.append(DIRECTION_ACTIVE)
    if flags & SDP_ADD_NORTPPROXY and NORTPPROXY not in body.splitlines():
        extra.append(NORTPPROXY)
    return sdp.add_lines(body, extra)


def ping_request(method, contact, listener, branch):
    """The bytes of one keepalive request to ``contact`` sent from ``listener`` (a stateless
    request: one Via with our branch, so its response comes back to us)."""
    here = f"{listener.host}:{listener.port}"
    return (f"{method} {contact} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {here};branch={branch}\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:pinger@{here}>;tag={branch[-12:]}\r\n"
            f"To: <{contact}>\r\n"
            f"Call-ID: {branch}@{listener.host}\r\n"
            f"CSeq: 1 {method}\r\n"
            f"Content-Length: 0\r\n\r\n").encode("latin-1")


class KeepAlive:
    """Which bindings to ping in a round and which have stopped answering.  No I/O and no clock:
    ``now`` (monotonic seconds) is passed in.

    Per pinged binding it keeps its Binding object and when it was last known alive (its
    registration, or an answer to a ping); ``round`` forgets bindings that are gone, so the state
    is as large as the set of NATed bindings.  ``pending`` maps the branches of the last two
    rounds' pings to their binding's key.
    """

    def __init__(self, timeout, prefix):
        self.timeout = timeout
        self.prefix = prefix
        self.state = {}         # key -> [Binding, last alive]
        self.pending = {}       # branch -> key, this round
        self.previous = {}      # branch -> key, the round before
        self.seq = 0

    def round(self, items, now):
        """``items``: (key, binding, payload) of every binding to ping now.  Returns (pings, dead):
        pings as (branch, binding, payload), dead as (key, binding) of bindings silent for
        ``timeout`` seconds (0: never)."""
        state, pending = {}, {}
        pings, dead = [], []
        timeout = self.timeout
        for key, binding, payload in items:
            entry = self.state.get(key)
            if entry is None or entry[0] is not binding:
                entry = [binding, now]      # new, or registered again: alive now
            if timeout and now - entry[1] >= timeout:
                dead.append((key, binding))
                continue
            state[key] = entry
            self.seq += 1
            branch = f"{self.prefix}.{self.seq:x}"
            pending[branch] = key
            pings.append((branch, binding, payload))
        self.state = state
        self.previous, self.pending = self.pending, pending
        return pings, dead

    def answered(self, branch, now):
        """A response to the ping with this branch came; False if it is not one of ours."""
        key = self.pending.get(branch) or self.previous.get(branch)
        if key is None:
            return False
        entry = self.state.get(key)
        if entry is not None:
            entry[1] = now
        return True


# --- the module ------------------------------------------------------------------------------

def _int_flags(name, value, highest):
    try:
        flags = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} flags must be a number, not {value!r}")
    if not 0 < flags <= highest:
        raise ValueError(f"{name} flags must be between 1 and {highest}, not {flags}")
    return flags


def _fix_test(module, args, script):
    return (_int_flags("nat_uac_test", args[0], _ALL_TESTS),)


def _fix_sdp(module, args, script):
    flags = _int_flags("fix_nated_sdp", args[0], _ALL_SDP)
    if len(args) == 1:
        return (flags,)
    ip = str(args[1]).strip().strip("[]")
    if ipv4_int(ip) is None:
        try:
            socket.inet_pton(socket.AF_INET6, ip)
        except (OSError, ValueError):
            raise ValueError(f"fix_nated_sdp: {args[1]!r} is not an IP address")
    return (flags, ip)


def _method_of(value):
    """natping_method: a SIP method (upper-cased), or None for "NULL"/"" (the CRLF ping)."""
    method = str(value).strip().upper()
    if method in ("", "NULL"):
        return None
    if method.strip(TOKEN_CHARS):
        raise ValueError(f"natping_method {value!r} is not a method name")
    return method


def _is_ip(host):
    return ipv4_int(host) is not None or ":" in host


class Nathelper(Module):
    name = "nathelper"

    def __init__(self, params):
        super().__init__(params)
        for p in ("natping_interval", "natping_timeout"):
            if params[p] < 0:
                raise ValueError(f"{p} must be 0 (off) or a number of seconds, not {params[p]}")
        self.method = _method_of(params["natping_method"])
        self.keepalive = None
        self._timer = None

    # -- script functions ------------------------------------------------------------------
    def nat_uac_test(self, ctx, flags):
        return 1 if uac_is_nated(ctx.msg, ctx.source, flags) else -1

    def fix_nated_contact(self, ctx):
        if ctx.source is None:
            return -1
        return 1 if fix_contact(ctx.msg, ctx.source) else -1

    def fix_nated_register(self, ctx):
        if ctx.source is None:
            return -1
        ctx.received = received_uri(ctx.source)
        return 1

    def add_rcv_param(self, ctx):
        if ctx.source is None or not add_received_param(ctx.msg, ctx.source):
            return -1
        if ctx.received is None:
            ctx.received = received_uri(ctx.source)
        return 1

    def fix_nated_sdp(self, ctx, flags, ip=None):
        msg = ctx.msg
        body = _sdp_body(msg)
        if body is None:
            return -1
        if ip is None:
            if ctx.source is None:
                return -1
            ip = ctx.source.ip
        new = fix_sdp(body, flags, ip)
        if new is None:
            return -1
        if new != body:
            msg.set_body(new)
        return 1

    # -- keepalive -------------------------------------------------------------------------
    def start(self, core, previous=None):
        super().start(core, previous)
        old = getattr(previous, "keepalive", None)
        interval = self.params["natping_interval"]
        if not interval:
            return
        timeout = self.params["natping_timeout"]
        if timeout and self.method is None:
            log.warn("nathelper: natping_timeout needs natping_method (a CRLF ping gets no "
                     "answer): bindings are not removed")
            timeout = 0
        if core.module("usrloc") is None:
            log.warn('nathelper: natping_interval is set but usrloc is not loaded: '
                     'nothing to ping')
        if old is not None:         # SIGHUP: the answers to pings in flight still count
            self.keepalive = old
            old.timeout = timeout
        else:
            self.keepalive = KeepAlive(timeout, PING_BRANCH + os.urandom(3).hex())
        core.add_response_handler(self.keepalive.prefix, self._on_reply)
        self._timer = core.loop.call_later(interval, self._tick)

    def stop(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_reply(self, msg, source):
        """A response to one of our pings: the binding is alive (whatever the status)."""
        if self.keepalive is not None:
            self.keepalive.answered(msg.top_via.branch or "", self.core.now())

    def _tick(self):
        self._timer = None
        if self.core.module(self.name) is not self:
            return      # a reloaded config took over (the one before a failed reload stays)
        try:
            self._ping_round()
        finally:
            if self._timer is None:
                self._timer = self.core.loop.call_later(self.params["natping_interval"],
                                                        self._tick)

    def _targets(self, wall):
        """(key, binding, (store, ip, port)) of every binding to ping."""
        usrloc = self.core.module("usrloc")
        if usrloc is None:
            return []
        nated_only = self.params["ping_nated_only"]
        items = []
        for name, store in usrloc.tables.items():
            for b in store.bindings():
                if b.expires <= wall:
                    continue
                nated = b.flags & FLAG_NAT and b.received
                if nated_only and not nated:
                    continue
                try:
                    proto, host, port = forward.uri_target(b.received if nated else b.contact)
                except ParseError:
                    continue
                if proto != "udp" or not _is_ip(host):
                    continue            # TCP keeps its own mapping; names need DNS: skipped
                items.append(((name, b.aor, b.contact), b, (store, host, port)))
        return items

    def _ping_round(self):
        core = self.core
        now, wall = core.now(), core.wall()
        pings, dead = self.keepalive.round(self._targets(wall), now)
        for (table, aor, contact), binding in dead:
            store = self.core.module("usrloc").tables.get(table)
            if store is None or store.get(aor, contact) is not binding:
                continue
            try:
                store.save(aor, wall, delete=[contact])
            except OSError as exc:
                log.limited("nathelper-save", log.ERR,
                            f"nathelper: cannot remove {contact} of {aor}: {exc}")
                continue
            log.notice(f"nathelper: {contact} of {aor} answered no ping for "
                       f"{self.keepalive.timeout} s: binding removed")
        if not pings:
            return
        listeners = {lst.name: lst for lst in core.transport.listeners}
        method = self.method
        for branch, binding, (store, host, port) in pings:
            local = listeners.get(binding.socket)
            if local is None or local.proto != "udp" or (":" in host) != (":" in local.ip):
                local = core.transport.listener_for(
                    "udp", socket.AF_INET6 if ":" in host else socket.AF_INET, host)
                if local is None:
                    continue
            if method is None:
                data = CRLF_PING
            else:
                try:
                    data = ping_request(method, binding.contact, local, branch)
                except UnicodeEncodeError:
                    continue
                core.stats.request_out(method, len(data))
            core.transport.send("udp", host, port, data, local)


EXPORTS = ModuleSpec(
    name="nathelper",
    doc="Phones behind NAT (outside the house): detect, fix Contact and SDP, ping.",
    factory=Nathelper,
    functions=(
        Function("nat_uac_test", "nat_uac_test", (1,),
                 REQUEST_ROUTE | ONREPLY_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE, _fix_test,
                 "true if the UA looks NATed: 1 Contact private, 2 Via address is not the "
                 "source, 4 Via private, 8 SDP private, 16 source port is not the Via's"),
        Function("fix_nated_contact", "fix_nated_contact", (0,),
                 REQUEST_ROUTE | ONREPLY_ROUTE | BRANCH_ROUTE, None,
                 "rewrite the first Contact's host:port to the source address"),
        Function("fix_nated_register", "fix_nated_register", (0,), REQUEST_ROUTE, None,
                 "save() stores the source address with the binding; lookup() sends there"),
        Function("add_rcv_param", "add_rcv_param", (0,), REQUEST_ROUTE, None,
                 'add ;received="sip:ip:port" to every Contact'),
        Function("fix_nated_sdp", "fix_nated_sdp", (1, 2),
                 REQUEST_ROUTE | ONREPLY_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE, _fix_sdp,
                 "SDP: 1 add a=direction:active, 2 c= address to the source (or the given "
                 "ip), 4 add a=nortpproxy:yes, 8 o= address too", dynamic=True),
    ),
    params={
        "natping_interval": Param(int, 0, "seconds between keepalive pings (0: none)",
                                  min=0, max=3600),
        "natping_method": Param(str, "OPTIONS",
                                'ping request method; "NULL": a 4-byte CRLF CRLF ping'),
        "natping_timeout": Param(int, 0, "remove a binding silent this many seconds (0: never)",
                                 min=0, max=86400),
        "ping_nated_only": Param(int, 1, "0: ping bindings that are not NATed too",
                                 min=0, max=1),
    },
)
