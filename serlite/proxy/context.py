"""The state one script run works on: SER's ``struct sip_msg`` plus what the core adds to it.

A ``Context`` is made for each received request or reply (and for each failure/branch route run).
The script's conditions and every module function take it as their first argument.  It does no
I/O: sending goes through ``ctx.core``.
"""

from __future__ import annotations

from ..routes import REQUEST_ROUTE
from ..sip.errors import ParseError
from ..sip.uri import URI
from ..transport import Source  # noqa: F401  (re-exported: the transport makes it)


class Branch:
    """One extra destination of the destination set (``append_branch``, ``lookup`` with several
    contacts).  ``uri`` is the new Request-URI; ``dst_uri`` the next hop if not the URI itself."""

    __slots__ = ("uri", "q", "dst_uri", "flags")

    def __init__(self, uri, q=None, dst_uri=None, flags=0):
        self.uri = uri
        self.q = q
        self.dst_uri = dst_uri
        self.flags = flags

    def __repr__(self):
        return f"Branch({self.uri!r}, q={self.q})"


class Context:
    """One message being routed.

    ``msg``       the parsed Request or Response;
    ``source``    a Source;
    ``core``      the server's services (send, reply, is_myself, now, modules, stats);
    ``route_type`` REQUEST_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE or BRANCH_ROUTE;
    ``flags``     SER's message flags (setflag/isflag), an int bit set;
    ``new_uri``   the rewritten Request-URI (None: unchanged), SER's ``new_uri``;
    ``dst_uri``   the next hop set by the script or by lookup (``$du``), None if the R-URI;
    ``q``         the q-value of the R-URI branch (from lookup), None if unset;
    ``branches``  the rest of the destination set (``Branch`` list);
    ``replied``   set once a final reply was sent statelessly or statefully;
    ``transaction`` the server transaction, when tm made one;
    ``forwarded`` set once the request was sent on (statelessly or by tm);
    ``dropped``   set by the script's ``drop``: a reply route's reply is not relayed;
    ``reply``, ``reply_status``  in failure_route: the winning final Response (None when it was
                  made up locally, e.g. 408 on timeout) and its status;
    ``ruri_new``  whether the R-URI is still a destination of its own: False once
                  ``append_branch()`` copied it into the destination set, and on entry to a
                  failure_route (it was tried already); a rewrite makes it new again (as in
                  Kamailio, whose t_relay in failure_route only uses a rewritten R-URI);
    ``received``  set by nathelper's fix_nated_register: the address the REGISTER really came
                  from (``sip:ip:port;transport=tcp``), which save() stores with the binding
                  and lookup() then sends to;
    ``hold``      None, or the Hold (proxy/hold.py) its sends wait for: an external media
                  relay's answer the SDP needs.
    """

    __slots__ = ("msg", "source", "core", "route_type", "flags", "new_uri", "dst_uri", "q",
                 "branches", "replied", "transaction", "forwarded", "dropped", "reply",
                 "reply_status", "received", "ruri_new", "_parsed_ruri", "hold",
                 "__weakref__")

    def __init__(self, msg, source, core, route_type=REQUEST_ROUTE):
        self.msg = msg
        self.source = source
        self.core = core
        self.route_type = route_type
        self.flags = 0
        self.new_uri = None
        self.dst_uri = None
        self.q = None
        self.branches = []
        self.replied = False
        self.transaction = None
        self.forwarded = False
        self.dropped = False
        self.reply = None
        self.reply_status = 0
        self.received = None
        self.ruri_new = True
        self._parsed_ruri = None    # (new_uri text, its URI or None): the cache of ``uri``
        self.hold = None            # what this message's sends wait for (proxy/hold.py)

    @property
    def ruri(self):
        """The Request-URI as the script sees it now (after rewrites)."""
        return self.new_uri if self.new_uri is not None else self.msg.ruri

    @property
    def uri(self):
        """``ruri`` parsed (SER's parsed_uri), or None when it is no SIP/SIPS/tel URI or does not
        parse.  Parsed once per R-URI: the message caches its own, a rewritten one is cached
        here for as long as ``new_uri`` stays the same string.  Shared, so never change it:
        parse ``ruri`` afresh to build a new R-URI."""
        text = self.new_uri
        if text is None:
            msg = self.msg
            # the Request's own cache read without its property's call (a Response, or a
            # stand-in, has none: the property decides)
            uri = getattr(msg, "_uri", None)
            if uri is not None:
                return uri
            try:
                return msg.uri
            except ParseError:
                return None
        cached = self._parsed_ruri
        if cached is not None and cached[0] is text:
            return cached[1]
        try:
            uri = URI.parse(text)
        except ParseError:
            uri = None
        self._parsed_ruri = (text, uri)
        return uri

    def set_ruri(self, uri):
        self.new_uri = uri
        self.ruri_new = True
