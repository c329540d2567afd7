"""Pseudo-variables: what ``$ru``, ``$fU``, ``$hdr(Name)`` ... read and write (Kamailio's ``pv``).

Owns the table ``PVARS``: name -> ``PVar`` (how to build its getter, the type of its value, the
route blocks where it may be read, and for the four writable ones the setter).  The compiler
resolves every ``$name`` against it once, at start-up; at run time a pseudo-variable is one
closure ``get(ctx)``.

Values are ``str``, ``int`` (``$rp $sp $cs $rs``) or ``None`` (null: the header or URI part is
not there, or does not parse).  Getters never raise for a missing or malformed header; they return
null.  Setters take the text to set (null only where ``nullable``) and raise ``ValueError`` or
``ParseError`` for a value that makes no URI, which the compiler turns into a
``ScriptRuntimeError`` at the assignment's line.
"""

from __future__ import annotations

from ..routes import ANY_ROUTE, BRANCH_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE, REQUEST_ROUTE
from ..sip.errors import ParseError
from ..sip.grammar import USER_CHARS, check_escapes, is_host, is_token
from ..sip.uri import URI

# Where the request (its R-URI, its next hop) can be read and changed.
REQUEST_SIDE = REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE
REPLY_SIDE = FAILURE_ROUTE | ONREPLY_ROUTE


class PVar:
    """One pseudo-variable.  ``make(arg, kinds) -> getter`` (``arg`` the text in parentheses or
    None; ``kinds`` the bit set of route blocks the getter will run in, so it can be
    specialised); ``type`` is ``"str"`` or ``"int"`` (either may be null); ``routes`` where it
    may be read; ``set(ctx, value)`` or None when read-only; ``nullable``: ``$x = null`` is
    allowed."""

    __slots__ = ("make", "type", "routes", "set", "nullable", "takes_arg", "doc")

    def __init__(self, make, type_="str", routes=ANY_ROUTE, set_=None, nullable=False,
                 takes_arg=False, doc=""):
        self.make = make
        self.type = type_
        self.routes = routes
        self.set = set_
        self.nullable = nullable
        self.takes_arg = takes_arg
        self.doc = doc


def _fixed(get):
    """A PVar ``make`` for a getter that needs no specialisation."""
    return lambda arg, kinds: get


# --- the Request-URI ----------------------------------------------------------------------------
# Parsed URIs of rewritten R-URIs (ctx.new_uri), shared and never changed: setters parse afresh.

_URI_CACHE = {}
_URI_CACHE_MAX = 256
_MISS = object()


def _parsed(text):
    u = _URI_CACHE.get(text, _MISS)
    if u is _MISS:
        try:
            u = URI.parse(text)
        except ParseError:
            u = None
        if len(_URI_CACHE) >= _URI_CACHE_MAX:
            _URI_CACHE.clear()
        _URI_CACHE[text] = u
    return u


def _ruri(ctx):
    """The current R-URI parsed (do not change it), None if it does not parse."""
    text = ctx.new_uri
    if text is None:
        try:
            return ctx.msg.uri       # cached on the message
        except ParseError:
            return None
    return _parsed(text)


def get_ru(ctx):
    text = ctx.new_uri
    return ctx.msg.ruri if text is None else text


def get_rU(ctx):
    u = _ruri(ctx)
    return None if u is None else u.user


def get_rd(ctx):
    u = _ruri(ctx)
    return None if u is None else u.host or None


def get_rp(ctx):
    """The port written in the R-URI, else the default of its scheme/transport (5061 for sips:
    and transport=tls, 5060 otherwise); null for tel: URIs and R-URIs that do not parse."""
    u = _ruri(ctx)
    if u is None or not u.host:
        return None
    if u.port is not None:
        return u.port
    return 5061 if u.scheme == "sips" or u.transport == "tls" else 5060


def get_du(ctx):
    return ctx.dst_uri


def _new_ruri(ctx):
    """A fresh, changeable parse of the current R-URI."""
    return URI.parse(ctx.ruri)


def set_ru(ctx, value):
    if value is None:
        raise ValueError("$ru cannot be null")
    URI.parse(value)            # ParseError for something that is no SIP/SIPS/tel URI
    ctx.set_ruri(value)


def set_rU(ctx, value):
    uri = _new_ruri(ctx)
    if value and (value.strip(USER_CHARS) or not check_escapes(value)):
        raise ValueError(f"{value[:60]!r} is not a URI user part")
    uri.user = value or None
    ctx.set_ruri(str(uri))


def set_rd(ctx, value):
    if not value or not is_host(value):
        raise ValueError(f"{(value or '')[:60]!r} is not a host")
    uri = _new_ruri(ctx)
    uri.host = value.lower()
    ctx.set_ruri(str(uri))


def set_du(ctx, value):
    if value:
        URI.parse(value)
        ctx.dst_uri = value
    else:
        ctx.dst_uri = None


# --- From, To -----------------------------------------------------------------------------------

def _uri_of(na):
    if na is None:
        return None
    try:
        return na.uri
    except ParseError:           # a scheme other than sip/sips/tel
        return None


def get_fu(ctx):
    f = ctx.msg.from_
    return None if f is None else f.uri_text


def get_fU(ctx):
    u = _uri_of(ctx.msg.from_)
    return None if u is None else u.user


def get_fd(ctx):
    u = _uri_of(ctx.msg.from_)
    return None if u is None else u.host or None


def get_tu(ctx):
    t = ctx.msg.to
    return None if t is None else t.uri_text


def get_tU(ctx):
    u = _uri_of(ctx.msg.to)
    return None if u is None else u.user


def get_td(ctx):
    u = _uri_of(ctx.msg.to)
    return None if u is None else u.host or None


# --- source, headers ----------------------------------------------------------------------------

def get_si(ctx):
    s = ctx.source
    return None if s is None else s.ip


def get_pr(ctx):
    s = ctx.source
    return None if s is None else s.proto


def get_sp(ctx):
    s = ctx.source
    return None if s is None else s.port


def get_ci(ctx):
    return ctx.msg.call_id


def get_cs(ctx):
    c = ctx.msg.cseq
    return None if c is None else c.number


def get_ua(ctx):
    return ctx.msg.get("User-Agent")


def make_hdr(arg, kinds):
    if not is_token(arg):
        raise ValueError(f"bad header name {arg!r} in $hdr({arg})")

    def get_hdr(ctx):
        return ctx.msg.get(arg)
    return get_hdr


# --- method, reply status -----------------------------------------------------------------------

def _request_method(ctx):
    return ctx.msg.method


def _reply_method(ctx):
    c = ctx.msg.cseq
    return None if c is None else c.method


def _either_method(ctx):
    if ctx.route_type == ONREPLY_ROUTE:
        return _reply_method(ctx)
    return ctx.msg.method


def make_rm(arg, kinds):
    """The request's method; for a reply (onreply_route) its CSeq method."""
    if not kinds & ONREPLY_ROUTE:
        return _request_method
    if kinds == ONREPLY_ROUTE:
        return _reply_method
    return _either_method


def _failure_status(ctx):
    return ctx.reply_status


def _reply_status(ctx):
    return ctx.msg.status


def _either_status(ctx):
    if ctx.route_type == FAILURE_ROUTE:
        return ctx.reply_status
    return ctx.msg.status


def make_rs(arg, kinds):
    """onreply_route: the reply's status; failure_route: the status of the winning final reply
    (``ctx.reply_status``, set by tm; also for a locally made 408)."""
    if kinds == FAILURE_ROUTE:
        return _failure_status
    if kinds == ONREPLY_ROUTE:
        return _reply_status
    return _either_status


def _failure_reason(ctx):
    r = ctx.reply
    return None if r is None else r.reason


def _reply_reason(ctx):
    return ctx.msg.reason


def _either_reason(ctx):
    if ctx.route_type == FAILURE_ROUTE:
        return _failure_reason(ctx)
    return ctx.msg.reason


def make_rr(arg, kinds):
    """The reason phrase; in failure_route that of the winning reply, null when tm made the
    reply up (a 408 on timeout)."""
    if kinds == FAILURE_ROUTE:
        return _failure_reason
    if kinds == ONREPLY_ROUTE:
        return _reply_reason
    return _either_reason


PVARS = {
    "ru": PVar(_fixed(get_ru), routes=REQUEST_SIDE, set_=set_ru,
               doc="the Request-URI as the script sees it (after rewrites)"),
    "rU": PVar(_fixed(get_rU), routes=REQUEST_SIDE, set_=set_rU, nullable=True,
               doc="the R-URI's user part"),
    "rd": PVar(_fixed(get_rd), routes=REQUEST_SIDE, set_=set_rd, doc="the R-URI's host"),
    "rp": PVar(_fixed(get_rp), "int", REQUEST_SIDE,
               doc="the R-URI's port (5060, or 5061 for sips:/transport=tls, if not written)"),
    "du": PVar(_fixed(get_du), routes=REQUEST_SIDE, set_=set_du, nullable=True,
               doc="the next hop set by the script or lookup, null if the R-URI"),
    "fu": PVar(_fixed(get_fu), doc="the From URI"),
    "fU": PVar(_fixed(get_fU), doc="the From URI's user"),
    "fd": PVar(_fixed(get_fd), doc="the From URI's host"),
    "tu": PVar(_fixed(get_tu), doc="the To URI"),
    "tU": PVar(_fixed(get_tU), doc="the To URI's user"),
    "td": PVar(_fixed(get_td), doc="the To URI's host"),
    "si": PVar(_fixed(get_si), doc="the source IP address"),
    "sp": PVar(_fixed(get_sp), "int", doc="the source port"),
    "pr": PVar(_fixed(get_pr), doc="the transport it came over: udp, tcp or tls"),
    "proto": PVar(_fixed(get_pr), doc="the same as $pr (Kamailio's other name)"),
    "ci": PVar(_fixed(get_ci), doc="the Call-ID"),
    "cs": PVar(_fixed(get_cs), "int", doc="the CSeq number"),
    "rm": PVar(make_rm, doc="the method (of a reply: its CSeq method)"),
    "ua": PVar(_fixed(get_ua), doc="the User-Agent header, null if none"),
    "hdr": PVar(make_hdr, takes_arg=True, doc="the first Name header's value, null if none"),
    "rs": PVar(make_rs, "int", REPLY_SIDE, doc="the reply status"),
    "rr": PVar(make_rr, routes=REPLY_SIDE, doc="the reply reason phrase"),
}
