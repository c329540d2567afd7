"""SER's core: what happens to one received message, and the services modules call.

``Core.receive`` takes the bytes of one message and its Source: it parses, validates, answers
what is broken, runs the script for requests, and hands responses to tm (or relays them
statelessly).  Modules reach sockets, time, and the other modules only through the Core.
"""

import os
import socket
from binascii import crc32

from .. import log
from ..dns.cache import NXDOMAIN, Negative
from ..dns.locate import Located, numeric
from ..routes import ONREPLY_ROUTE
from ..sip.errors import ParseError
from ..sip.message import Request, checked_line, parse, raw_header_lines, response_bytes
from ..sip.uri import URI
from . import forward
from .context import Context

_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6
_REPLY_COPY = ("via", "from", "to", "call-id", "cseq")


class Core:
    def __init__(self, loop, transport, stats, server_header=("Server", "serlite")):
        self.loop = loop
        self.transport = transport
        self.stats = stats
        self.script = None
        self.modules = {}
        self.tm = None
        self.server_header = server_header
        self.aliases = set()            # (host, port or None), lower-case host
        self.my_ips = set()
        self.my_ports = set()
        self.tag_prefix = os.urandom(4).hex()
        self._dns = {}                  # address -> (ip, unicast): see _address
        self.dns = None                 # the DnsClient (server.py): names, RFC 3263
        self.source_filters = []        # callables(source) -> True to drop before parsing
        self._myself = {}               # (host, port) -> is_myself's answer, see is_myself
        self.response_handlers = {}     # Via branch prefix -> callable(msg, source)
        self._server_line = (None, ())  # (server_header, its checked line): _server_lines
        # rr's double_entry(rest, inbound, outbound) when enable_double_rr is on: a request
        # leaving by another socket than it came in on gets that socket's Record-Route too
        self.double_rr = None

    def add_source_filter(self, check):
        """``check(source)`` runs for every message before it is parsed; True drops it (pike
        uses this to keep a flooding source from costing a parse)."""
        if check not in self.source_filters:
            self.source_filters.append(check)

    def add_response_handler(self, branch_prefix, handler):
        """Responses whose top Via branch starts with ``branch_prefix`` (requests a module sent
        itself, e.g. nathelper's keepalive OPTIONS) go to ``handler(msg, source)``."""
        self.response_handlers[branch_prefix] = handler

    # -- configuration -----------------------------------------------------------------------
    def set_identity(self, listeners, aliases):
        """``myself``: the listen addresses and the ``alias=`` names (RFC 3261 16.4)."""
        self._myself = {}
        self.my_ips = {lst.ip.lower() for lst in listeners}
        self.my_ports = {lst.port for lst in listeners}
        self.aliases = set()
        for lst in listeners:
            self.aliases.add((lst.ip.lower(), lst.port))
            self.aliases.add((_normal_ipv6(lst.host.lower()) if lst.host.startswith("[")
                              else lst.host.lower(), lst.port))
        for alias in aliases:
            host, port = _split_hostport(alias)
            if host.startswith("["):
                host = _normal_ipv6(host)
            self.aliases.add((host, port))

    def use_script(self, script):
        """Make ``script`` (a compiled config with started modules) the one that runs."""
        self.script = script
        self.modules = script.modules
        self.tm = self.modules.get("tm")

    def module(self, name):
        return self.modules.get(name)

    # -- myself ------------------------------------------------------------------------------
    def is_myself(self, host, port=None):
        """Whether ``host`` (and ``port``, None: any of ours) names this server.  Asked for
        every Via of a response and every Route and R-URI the script checks: the answers are
        kept (a home router sees a handful of names)."""
        key = (host, port)
        mine = self._myself.get(key)
        if mine is None:
            mine = self._is_myself(host, port)
            if len(self._myself) >= 256:
                self._myself = {}
            self._myself[key] = mine
        return mine

    def _is_myself(self, host, port):
        host = host.lower()
        if host.startswith("[") and host.endswith("]"):
            host = _normal_ipv6(host)
        if (host, None) in self.aliases:
            return port is None or port in self.my_ports
        return (host, port or 5060) in self.aliases

    def is_myself_uri(self, uri):
        """Whether ``uri`` (a URI, its text, or None for one that did not parse) names us."""
        if uri is None:
            return False
        if isinstance(uri, str):
            try:
                uri = URI.parse(uri)
            except ParseError:
                return False
        return self.is_myself(uri.host, uri.port)

    def is_myself_ip(self, ip):
        return ip.lower() in self.my_ips

    # -- time --------------------------------------------------------------------------------
    def now(self):
        return self.loop.time()

    def wall(self):
        return self.loop.wall()

    # -- receiving ---------------------------------------------------------------------------
    def receive(self, data, source):
        for check in self.source_filters:
            if check(source):
                self.stats.incr("drop_filtered")
                return
        try:
            msg = parse(data)
        except ParseError as exc:
            self.stats.incr("drop_invalid")
            log.limited(("invalid", source.ip), log.NOTICE,
                        f"invalid message from {source.proto}:{source.ip}:{source.port}: "
                        f"{exc.reason}")
            if data[:4] != b"SIP/":
                self._answer_unparsable(data, source, exc)
            return
        if isinstance(msg, Request):
            self.stats.request_in(msg.method, len(data))
            self._receive_request(msg, source)
        else:
            self.stats.reply_in(msg.status, len(data))
            self._receive_response(msg, source)

    def _receive_request(self, msg, source):
        ctx = Context(msg, source, self)
        try:
            forward.fix_top_via(msg, source)
            if self.tm is not None and self.tm.absorb(ctx):
                return
            if msg.method == "ACK" and self._acks_our_reply(msg):
                return      # SER's sl_filter_ACK: the ACK of a reply we sent ends here
            self.script.run_request(ctx)
        except Exception as exc:
            # a header the script touched was malformed (a Route's port of 20 digits, its
            # scheme smp:): the peer's fault, answer it (400, 416 ...), also when a module
            # function met it (the script wraps that as a runtime error, the ParseError its
            # cause); anything else is a fault of ours for the loop to report
            if not isinstance(exc, ParseError):
                if not isinstance(exc.__cause__, ParseError):
                    raise
                exc = exc.__cause__
            log.limited(("invalid-hdr", source.ip), log.NOTICE,
                        f"bad request from {source.ip}:{source.port}: {exc.reason}")
            self.stats.incr("drop_invalid")
            if not ctx.replied and msg.method != "ACK":
                self.reply(ctx, exc.status, exc.reason)

    def _acks_our_reply(self, msg):
        """An ACK for a non-2xx reply this server made itself (a 401/407/404 ...): its To tag
        is one of ours (RFC 3261 17.2.1: the ACK belongs to that hop alone)."""
        try:
            tag = msg.to.tag
        except ParseError:
            return False
        return tag is not None and tag.startswith(self.tag_prefix)

    def _receive_response(self, msg, source):
        # RFC 3261 18.1.2: a response whose top Via is not ours is discarded
        try:
            via = msg.top_via
        except ParseError:
            self.stats.incr("drop_invalid")
            return
        host, port = via.host, via.port
        mine = self._myself.get((host, port))   # is_myself's cache, without its call
        if mine is None:
            mine = self.is_myself(host, port)
        if not mine:
            self.stats.incr("drop_not_ours")
            log.limited(("notours", source.ip), log.NOTICE,
                        f"response from {source.ip}:{source.port} with top Via "
                        f"{via.host}:{via.port or 5060} that is not ours: dropped")
            return
        if self.response_handlers:
            branch = via.branch or ""
            for prefix, handler in self.response_handlers.items():
                if branch.startswith(prefix):
                    handler(msg, source)
                    return
        if self.tm is not None and self.tm.on_reply(msg, source):
            return
        # stateless: the plain onreply_route sees it, then it goes up
        ctx = Context(msg, source, self, ONREPLY_ROUTE)
        if self.script.run_reply(ctx) == 0 or getattr(ctx, "dropped", False):
            return
        if ctx.hold:    # its SDP waits for an external relay (proxy/hold.py)
            ctx.hold.then(lambda: self.forward_response(msg))
            return
        self.forward_response(msg)

    def _answer_unparsable(self, data, source, exc):
        """Answer a request that did not parse (RFC 3261 8.2, 16.3): copy what identifies it and
        send the error straight back to where it came from."""
        start, lines = raw_header_lines(data)
        if not lines or start.count(" ") < 2:
            return
        copied = [line for key, line in lines if key in _REPLY_COPY]
        if not any(key == "via" for key, _line in lines):
            return
        reply = (f"SIP/2.0 {exc.status} {exc.reason}\r\n" + "\r\n".join(copied) +
                 f"\r\n{': '.join(self.server_header)}\r\nContent-Length: 0\r\n\r\n"
                 ).encode("latin-1")
        self.stats.reply_out(exc.status, len(reply))
        self.transport.send(source.proto, source.ip, source.port, reply, source.local,
                            source.conn)

    # -- sending -----------------------------------------------------------------------------
    def _address(self, host):
        """(ip, unicast) for an address ``host`` (brackets or not), None for a name (see
        ``locate``).  Cached, so that sending to an address costs one dict lookup."""
        entry = self._dns.get(host)
        if entry is None:
            ip = numeric(host)
            if ip is None:
                return None
            entry = (ip, forward.is_unicast_target(ip))
            if len(self._dns) > 256:
                self._dns.clear()
            self._dns[host] = entry
        return entry

    def address(self, host):
        """The IP address of an address ``host`` (brackets or not); None for a name."""
        entry = self._dns.get(host) or self._address(host)
        return None if entry is None else entry[0]

    # -- names: RFC 3263 through the resolver in the loop (dns_client), never blocking ----
    def cached_targets(self, host, port, transport, secure):
        """The RFC 3263 targets [(proto, ip, port)] of a name (a URI's parts, as
        ``forward.uri_parts``) when known now (hosts file, cache), else None: nothing waits."""
        dns = self.dns
        return None if dns is None else dns.cached_locate(host, port, transport, secure)

    def locate(self, host, port, transport, secure, callback):
        """``callback(Located)`` from the loop with the targets of a name, in the order to try
        (RFC 3263 4.3), or none and the error (``failure_status`` gives the SIP answer)."""
        if self.dns is None:
            self.loop.call_later(0, callback, Located([], Negative(NXDOMAIN, "no resolver")))
            return
        self.dns.locate(host, port, transport, secure, callback)

    def resolve(self, host):
        """An IP address for ``host`` (a name, or an address with or without brackets) when
        known now; None otherwise (a name not in the cache: its lookup is left to a send)."""
        entry = self._dns.get(host) or self._address(host)     # the cache without a call
        if entry is not None:
            return entry[0]
        targets = self.cached_targets(host, 5060, "udp", False)     # A/AAAA (4.2)
        return targets[0][1] if targets else None

    def hop_ip(self, msg, uri, dst_uri=None):
        """The IP address the request goes to (``next_hop``'s host, a name located per RFC
        3263) when known now, else None."""
        proto, host, port = self.next_hop(msg, uri, dst_uri)
        entry = self._dns.get(host) or self._address(host)
        if entry is not None:
            return entry[0]
        targets = self.cached_targets(*forward.uri_parts(
            self.next_hop_uri(msg, uri, dst_uri)))
        return targets[0][1] if targets else None

    def send(self, proto, host, port, data, local=None, conn=None):
        """Send to ``host``; False when it is no unicast address or a name that does not
        resolve now.  A name not known yet is looked up (A/AAAA, RFC 3263 4.2: the port is
        given) and the message sent when it is (True: on its way)."""
        entry = self._dns.get(host) or self._address(host)     # the cache without a call
        if entry is None:
            return self._send_named(proto, host, port, data, local, conn)
        if not entry[1]:
            return False
        if proto == "tls":      # the name the peer's certificate must carry (RFC 5922 7.2)
            return self.transport.send(proto, entry[0], port, data, local, conn,
                                       host.strip("[]"))
        return self.transport.send(proto, entry[0], port, data, local, conn)

    def _send_named(self, proto, host, port, data, local, conn):
        if self.dns is None:
            return False
        name = host.strip("[]")
        targets = self.dns.cached_locate(name, port, proto, False)
        if targets:
            return self._send_located(proto, name, targets, data, local, conn)

        def located(result):
            if result.targets:
                self._send_located(proto, name, result.targets, data, local, conn)
            else:
                log.limited(("dns-send", name), log.NOTICE,
                            f"cannot send to {name}: {result.error.reason}")
        self.dns.locate(name, port, proto, False, located)
        return True

    def _send_located(self, proto, name, targets, data, local, conn):
        _proto, ip, port = targets[0]
        if not forward.is_unicast_target(ip):
            return False
        if local is not None and (":" in ip) != (local.family == _AF_INET6):
            local = self.listener_for(proto, ip)    # the name's address is of the other family
            if local is None:
                return False
        if proto == "tls":
            return self.transport.send(proto, ip, port, data, local, conn, name)
        return self.transport.send(proto, ip, port, data, local, conn)

    def local_to_tag(self, msg):
        """SER's sl to-tag: a fixed prefix and a hash of the request, so that a retransmitted
        request gets the same tag (32 bits of it: CRC-32 is as good as MD5 for that, and
        cheaper)."""
        seed = f"{msg.call_id}|{msg.from_.tag}|{msg.top_via.branch}".encode("latin-1")
        return self.tag_prefix + "%08x" % crc32(seed)

    def reply_bytes(self, msg, status, reason, headers=(), body=b"", to_tag=None):
        """A response to ``msg``; ``headers`` are (name, value) pairs."""
        if to_tag is None and status > 100 and msg.to.tag is None:
            to_tag = self.local_to_tag(msg)
        return response_bytes(msg, status, reason, to_tag, headers, body,
                              self._server_lines())

    def _server_lines(self):
        """The Server line every reply of ours ends with, checked once for each value of
        ``server_header`` (the server sets it after start-up, from the config)."""
        header = self.server_header
        cached = self._server_line
        if cached[0] is not header:
            if not header:
                lines = ()
            else:
                key, line = checked_line(*header)
                # response_bytes writes Content-Length itself; a server_header naming it (a
                # config mistake) is left out
                lines = (line,) if key != "content-length" else ()
            cached = self._server_line = (header, lines)
        return cached[1]

    def reply(self, ctx, status, reason, headers=(), body=b""):
        """Answer the request of ``ctx`` statelessly (SER's sl_send_reply)."""
        msg = ctx.msg
        if msg.method == "ACK":     # RFC 3261 17: ACK is never answered
            return True
        data = self.reply_bytes(msg, status, reason, headers, body)
        if status >= 200:
            ctx.replied = True
        self.stats.reply_out(status, len(data))
        proto, host, port = forward.via_target(msg.top_via, ctx.source)
        return self.send(proto, host, port, data, ctx.source.local, ctx.source.conn)

    def send_reply(self, ctx, status, reason, headers=()):
        """Answer the request of ``ctx``: through its transaction when tm made one (t_newtran,
        or in failure_route), else statelessly (Kamailio's ``send_reply``)."""
        if ctx.transaction is not None and self.tm is not None:
            return self.tm.reply(ctx, status, reason, headers)
        return self.reply(ctx, status, reason, headers)

    def forward_response(self, msg):
        """Relay a response up to the next Via (RFC 3261 16.7 step 9, 18.2.2)."""
        msg.remove_first_value("Via")
        try:
            via = msg.top_via
        except (ParseError, IndexError):
            return False
        if via is None:
            return False
        data = msg.to_bytes()
        proto, host, port = forward.via_target(via)
        conn = self.transport.connections.get((host, port)) if proto != "udp" else None
        self.stats.reply_out(msg.status, len(data))
        return self.send(proto, host, port, data, conn=conn)

    def next_hop(self, msg, uri, dst_uri=None):
        """16.6 steps 6-7: the script's destination, the first Route, or the Request-URI
        (``uri``, a URI or its text), as (proto, host, port): where to send when the host is
        an address; a name's targets are ``locate``d from ``next_hop_uri``."""
        return forward.uri_target(self.next_hop_uri(msg, uri, dst_uri))

    def next_hop_uri(self, msg, uri, dst_uri=None):
        """The URI whose host is the next hop (16.6 steps 6-7)."""
        if dst_uri:
            return dst_uri
        routes = msg.routes         # parsed once, shared with loose_route
        if routes:
            return routes[0].uri
        return uri

    def forward_stateless(self, ctx, proto=None, host=None, port=None):
        """SER's ``forward()``: send the request to every destination of the destination set
        (or to host:port) without keeping state (RFC 3261 16.11)."""
        msg = ctx.msg
        if ctx.hold:    # its SDP waits for an external relay (proxy/hold.py): sent after
            ctx.hold.then(lambda: self.forward_stateless(ctx, proto, host, port))
            ctx.forwarded = True
            return True
        refused = forward.check_forwardable(msg)
        if refused is not None:
            self.reply(ctx, refused[0], refused[1], refused[2])
            return False
        rest = forward.prepare_request(msg, msg.max_forwards)
        # (URI, next hop, the URI parsed when the context has it already); the usual request
        # (an ACK or a CANCEL in a dialog) has no branches: no list built for them
        ruri = ctx.ruri
        first = (ruri, ctx.dst_uri, ctx.uri) if ctx.ruri_new else None
        if ctx.branches:
            targets = [(b.uri, b.dst_uri, None) for b in ctx.branches]
            if first is not None:
                targets.insert(0, first)
        else:
            targets = () if first is None else (first,)
        sent = False
        for index, (uri, dst, parsed) in enumerate(targets):
            if host is not None:
                hop = (proto or "udp", host, port or (5061 if proto == "tls" else 5060))
            else:
                hop_uri = self.next_hop_uri(msg, parsed or uri,
                                            dst or (ctx.dst_uri if uri == ruri else None))
                hop = forward.uri_target(hop_uri)
                if self._address(hop[1]) is None:
                    # a name: its RFC 3263 target (a stateless proxy tries only the first)
                    parts = forward.uri_parts(hop_uri)
                    located = self.cached_targets(*parts)
                    if located is None:
                        self.locate(*parts, lambda result, i=index, u=uri, h=hop[1]:
                                    result.targets and self._forward_one(
                                        ctx, rest, i, u, result.targets[0], h))
                        sent = True
                        continue
                    sent = self._forward_one(ctx, rest, index, uri, located[0],
                                             hop[1]) or sent
                    continue
            sent = self._forward_one(ctx, rest, index, uri, hop) or sent
        ctx.forwarded = True
        return sent

    def _forward_one(self, ctx, rest, index, uri, hop, name=None):
        """One stateless copy of the request to ``hop`` (proto, host or ip, port); ``name``:
        the name it was located from (the TLS server name)."""
        msg = ctx.msg
        hproto, hhost, hport = hop
        listener = self.listener_for(hproto, hhost)
        if listener is None:
            return False
        branch = forward.stateless_branch(msg, index)
        local = ctx.source.local
        data = forward.branch_bytes(
            msg.method, uri, rest if listener is local or local is None
            or self.double_rr is None else self.double_rr(rest, local, listener),
            forward.via_line(listener, hproto, branch))
        self.stats.request_out(msg.method, len(data))
        if name is not None and hproto == "tls":
            return self.transport.send(hproto, hhost, hport, data, listener, None, name)
        return self.send(hproto, hhost, hport, data, listener)

    def listener_for(self, proto, host):
        """The socket to send to ``host`` from: ours of that protocol and address family."""
        entry = self._dns.get(host) or self._address(host)     # resolve(), written out
        ip = None if entry is None else entry[0]
        family = _AF_INET6 if ip is not None and ":" in ip else _AF_INET
        listener = self.transport.listener_for(proto, family, ip)
        if listener is None:
            log.limited(("nolistener", proto, family), log.WARN,
                        f"no {proto} socket for {host}: not forwarded")
        return listener


def _normal_ipv6(ref):
    """``[0:0::1]`` -> ``[::1]``: IPv6 references compare as addresses (RFC 3261 19.1.4)."""
    try:
        return "[" + socket.inet_ntop(socket.AF_INET6,
                                      socket.inet_pton(socket.AF_INET6, ref[1:-1])) + "]"
    except OSError:
        return ref


def _split_hostport(text):
    text = text.strip().strip('"').lower()
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[:end + 1], text[end + 1:]
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, _, port = text.partition(":")
    return host, int(port) if port.isdigit() else None
