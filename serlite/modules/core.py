"""SER's core actions: forward, log, flags, Request-URI rewriting, branches, force_rport, len_gt,
has_totag.

Always loaded; the script compiler resolves these names like any module's functions.
"""

from .. import log as logger
from ..sip.errors import ParseError
from ..sip.uri import URI
from .export import ANY_ROUTE, BRANCH_ROUTE, FAILURE_ROUTE, REQUEST_ROUTE, Function, Module, \
    ModuleSpec
from ..proxy.context import Branch

_REQ = REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE


def _int_arg(name, value, low=None, high=None):
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} needs a number, not {value!r}")
    if (low is not None and n < low) or (high is not None and n > high):
        raise ValueError(f"{name} must be between {low} and {high}, not {n}")
    return n


def _fix_forward(module, args, script):
    if not args:
        return ()
    host = str(args[0]).strip("[]") if str(args[0]).startswith("[") else str(args[0])
    # no port: the protocol's default (5060; 5061 for TLS, RFC 3261 19.1.2)
    port = _int_arg("port", args[1], 1, 65535) if len(args) > 1 else None
    return (host, port)


def _fix_flag(module, args, script):
    return (_int_arg("flag", args[0], 0, 31),)


def _fix_log(module, args, script):
    if len(args) == 1:
        return (logger.ERR, str(args[0]))
    return (_int_arg("log level", args[0], -3, 4), str(args[1]))


def _fix_uri(module, args, script):
    return (str(args[0]),)


def _fix_int(module, args, script):
    return (_int_arg("argument", args[0], 0),)


def _uri(ctx):
    return URI.parse(ctx.ruri)


class CoreFunctions(Module):
    """The script functions of SER's core (module name "core"; not ``proxy.core.Core``, the
    server's message handling, which they call through ``ctx.core``)."""

    name = "core"

    # -- forwarding ----------------------------------------------------------------------------
    def forward(self, ctx, host=None, port=None, proto=None):
        return 1 if self.core.forward_stateless(ctx, proto, host, port) else -1

    def forward_udp(self, ctx, host=None, port=None):
        if host is None:
            return self._forward_uri_proto(ctx, "udp")
        return self.forward(ctx, host, port, "udp")

    def forward_tcp(self, ctx, host=None, port=None):
        if host is None:
            return self._forward_uri_proto(ctx, "tcp")
        return self.forward(ctx, host, port, "tcp")

    def forward_tls(self, ctx, host=None, port=None):
        if host is None:
            return self._forward_uri_proto(ctx, "tls")
        return self.forward(ctx, host, port, "tls")

    def _forward_uri_proto(self, ctx, proto):
        uri = _uri(ctx)
        return self.forward(ctx, (uri.maddr or uri.host).strip("[]"),
                            uri.port or (5061 if proto == "tls" else 5060), proto)

    # -- logging and flags --------------------------------------------------------------------
    def log(self, ctx, level, text):
        logger.log(level, text)
        return 1

    def setflag(self, ctx, flag):
        ctx.flags |= 1 << flag
        return 1

    def resetflag(self, ctx, flag):
        ctx.flags &= ~(1 << flag)
        return 1

    def isflag(self, ctx, flag):
        return 1 if ctx.flags & (1 << flag) else -1

    # -- Request-URI ---------------------------------------------------------------------------
    def rewriteuri(self, ctx, uri):
        ctx.set_ruri(uri)
        return 1

    def rewritehost(self, ctx, host):
        uri = _uri(ctx)
        uri.host = host
        ctx.set_ruri(str(uri))
        return 1

    def rewritehostport(self, ctx, hostport):
        uri = _uri(ctx)
        host, _, port = hostport.rpartition(":")
        if hostport.endswith("]") or not host or not port.isdigit():
            host, port = hostport, None
        uri.host = host
        uri.port = int(port) if port else None
        ctx.set_ruri(str(uri))
        return 1

    def rewriteuser(self, ctx, user):
        uri = _uri(ctx)
        uri.user = user or None
        ctx.set_ruri(str(uri))
        return 1

    def prefix(self, ctx, text):
        uri = _uri(ctx)
        uri.user = text + (uri.user or "")
        ctx.set_ruri(str(uri))
        return 1

    def strip(self, ctx, count):
        uri = _uri(ctx)
        uri.user = (uri.user or "")[count:] or None
        ctx.set_ruri(str(uri))
        return 1

    def append_branch(self, ctx, uri=None):
        """SER: add the current R-URI (or ``uri``) to the destination set."""
        target = uri if uri is not None else ctx.ruri
        try:
            URI.parse(target)
        except ParseError as exc:
            logger.limited(("append_branch", target), logger.WARN,
                           f"append_branch: bad URI {target!r}: {exc.reason}")
            return -1
        ctx.branches.append(Branch(target, None, ctx.dst_uri if uri is None else None))
        if uri is None:
            ctx.ruri_new = False    # it is in the destination set now: not a second time
        return 1

    # -- misc ----------------------------------------------------------------------------------
    def force_rport(self, ctx):
        """RFC 3581: answer to the source port even if the client did not ask for rport."""
        via = ctx.msg.top_via
        if not via.rport:
            via.set_param("rport", str(ctx.source.port))
            via.set_param("received", ctx.source.ip)
        return 1

    def len_gt(self, ctx, size):
        return 1 if len(ctx.msg.to_bytes()) > size else -1

    def has_totag(self, ctx):
        """True when the To header has a tag: the request is inside a dialog."""
        to = ctx.msg.to
        return 1 if to is not None and to.tag else -1


EXPORTS = ModuleSpec(
    name="core",
    doc="SER's core actions: forwarding, log, flags, Request-URI edits, branches.",
    factory=CoreFunctions,
    functions=(
        Function("forward", "forward", (0, 1, 2), _REQ, _fix_forward,
                 "forward statelessly to the R-URI, or to host[, port]"),
        Function("forward_udp", "forward_udp", (0, 1, 2), _REQ, _fix_forward, "forward() over UDP"),
        Function("forward_tcp", "forward_tcp", (0, 1, 2), _REQ, _fix_forward, "forward() over TCP"),
        Function("forward_tls", "forward_tls", (0, 1, 2), _REQ, _fix_forward,
                 "forward() over TLS (port 5061 if none; the tls module)"),
        Function("log", "log", (1, 2), ANY_ROUTE, _fix_log, "log([level,] text)",
                 dynamic=True),
        Function("setflag", "setflag", (1,), ANY_ROUTE, _fix_flag, "set message flag 0..31"),
        Function("resetflag", "resetflag", (1,), ANY_ROUTE, _fix_flag, "clear message flag 0..31"),
        Function("isflag", "isflag", (1,), ANY_ROUTE, _fix_flag, "true if the flag is set"),
        Function("rewriteuri", "rewriteuri", (1,), _REQ, _fix_uri, "set the R-URI", dynamic=True),
        Function("seturi", "rewriteuri", (1,), _REQ, _fix_uri, "= rewriteuri", dynamic=True),
        Function("rewritehost", "rewritehost", (1,), _REQ, _fix_uri, "set the R-URI host"),
        Function("sethost", "rewritehost", (1,), _REQ, _fix_uri, "= rewritehost"),
        Function("rewritehostport", "rewritehostport", (1,), _REQ, _fix_uri, "set R-URI host:port"),
        Function("sethostport", "rewritehostport", (1,), _REQ, _fix_uri, "= rewritehostport"),
        Function("rewriteuser", "rewriteuser", (1,), _REQ, _fix_uri, "set the R-URI user"),
        Function("setuser", "rewriteuser", (1,), _REQ, _fix_uri, "= rewriteuser"),
        Function("prefix", "prefix", (1,), _REQ, _fix_uri, "put text before the R-URI user"),
        Function("strip", "strip", (1,), _REQ, _fix_int, "drop the R-URI user's first n chars"),
        Function("append_branch", "append_branch", (0, 1), REQUEST_ROUTE | FAILURE_ROUTE,
                 doc="add the R-URI (or the uri) to the destination set", dynamic=True),
        Function("force_rport", "force_rport", (0,), REQUEST_ROUTE,
                 doc="answer to the source port"),
        Function("len_gt", "len_gt", (1,), ANY_ROUTE, _fix_int, "true if the message is longer"),
        Function("has_totag", "has_totag", (0,), REQUEST_ROUTE | FAILURE_ROUTE,
                 doc="true if the To header has a tag (an in-dialog request)"),
    ),
)
