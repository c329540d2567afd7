"""uac's From/To replacement (Kamailio's ``uac_replace_from``/``_to``, restore_mode auto).

The initial request leaves with the new URI (and display name) on its branches only: the
request itself, its local replies (100, 408, 487) and the script keep the caller's (tm's
``branch_headers``, as Kamailio's lumps do), and the responses relayed upstream get the
caller's line back (``reply_headers``).  The dialog's later requests pass through
``loose_route`` (we record-route: ``record_route()`` must come first), and our Record-Route
carries the change stateless, as Kamailio does: ``;vsf=`` (``;vst=`` for the To) holds the old
URI XOR the new, base64url; XOR again with the one a request carries gives the other.  The
caller's requests (From tag = the route's ftag) get the new URI in the From, the callee's get
the caller's old one back in the To (and the other way round for the To).
"""

import base64

from .. import log
from ..sip.errors import ParseError
from ..sip.headers import parse_name_addr
from ..sip.uri import URI

PARAM = {"From": "vsf", "To": "vst"}


def encode(old, new):
    """``old`` XOR ``new`` (the shorter padded with NULs), base64url without padding."""
    a, b = old.encode("latin-1"), new.encode("latin-1")
    n = max(len(a), len(b))
    x = bytes(p ^ q for p, q in zip(a.ljust(n, b"\0"), b.ljust(n, b"\0")))
    return base64.urlsafe_b64encode(x).rstrip(b"=").decode("ascii")


def decode(value, present):
    """The other URI of ``encode``'s pair, from the one ``present``; None if it is no such
    value (not ours, or tampered with into something that is no URI)."""
    try:
        x = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, TypeError):
        return None
    p = present.encode("latin-1")
    if len(p) > len(x):
        return None
    other = bytes(a ^ b for a, b in zip(x, p.ljust(len(x), b"\0"))).rstrip(b"\0")
    text = other.decode("latin-1")
    try:
        URI.parse(text)
    except ParseError:
        return None
    return text


def _with_uri(value, uri, display=None):
    na = parse_name_addr(value).copy()
    na.uri_text = uri
    if display is not None:
        na.display = display or None
    return str(na)


def replace(module, ctx, header, *args):
    """uac_replace_from([display,] uri) / uac_replace_to: see the module docstring."""
    display, uri = (None, args[0]) if len(args) == 1 else (args[0], args[1])
    uri = str(uri)
    try:
        URI.parse(uri)
    except ParseError as exc:
        log.limited(("uac-replace", uri[:40]), log.NOTICE,
                    f"uac_replace_{header.lower()}: {uri!r} is no URI: {exc.reason}")
        return -1
    msg = ctx.msg
    if msg.to.tag is not None:
        return -1       # in a dialog the route set restores it (Kamailio's auto mode)
    tm = module.core.module("tm")
    tm.t_newtran(ctx)
    if ctx.transaction is None:
        return -1
    own = msg.get(header)
    old = (msg.from_ if header == "From" else msg.to).uri_text
    if display is not None:
        display = str(display)
        if display and not display.startswith('"'):
            display = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
    from .uac import edit_branches
    edit_branches(ctx.transaction.data, msg, header, _with_uri(own, uri, display))
    rr = module.core.module("rr")
    if rr is None or not rr.set_rr_param(ctx, PARAM[header], encode(old, uri)):
        log.limited(("uac-replace-rr", header), log.NOTICE,
                    f"uac_replace_{header.lower()}: no Record-Route of ours (call "
                    f"record_route() first): the dialog's later requests keep the new URI")
    return 1


def in_dialog_edits(msg, route_uri, downstream):
    """The (header, value) a request in the dialog needs, from our Route entry's ;vsf/;vst."""
    edits = []
    for header, name in PARAM.items():
        value = route_uri.param(name)
        if not value:
            continue
        # the caller's requests carry the old From (or To) and go on with the new; the
        # callee's carry the new one in the other header and get the old one back
        carries = header if downstream else ("To" if header == "From" else "From")
        na = msg.from_ if carries == "From" else msg.to
        other = decode(value, na.uri_text)
        if other is not None and other != na.uri_text:
            edits.append((carries, _with_uri(msg.get(carries), other)))
    return edits


def restore(module, ctx, header):
    """uac_restore_from()/_to(): what loose_route did already (auto mode); true when the
    request carries a change of ours."""
    routes = ctx.msg.routes
    if not routes:
        return -1
    return 1 if routes[0].uri.param(PARAM[header]) else -1
