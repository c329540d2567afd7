"""uac: serlite as a user agent toward a provider, with Kamailio's names: ``uac_auth()``
(answer a provider's 401/407 in a failure_route), outbound registration from the ``uacreg``
table (``reg_db_url``; ``uac_reg_lookup``, ``uac_reg_status``, the control command
``uac.reg_dump``), ``uac_replace_from``/``uac_restore_from``.

The registration state machine is pure (``serlite.uac.registration``); this module is its I/O:
it reads the table, sends the REGISTERs through tm's ``t_uac`` and arms one loop timer.

CSeq after ``uac_auth`` (RFC 3261 22.2: the request with credentials is a new request, its CSeq
one more): the resend's branches carry the request's CSeq + 1 (tm's ``branch_headers``), its
responses go upstream with the caller's own, and the delta travels in our Record-Route
(``;uac_cs=N``, Kamailio keeps it in the dialog module instead) so that the caller's ACK, BYE
and re-INVITEs in that dialog reach the provider shifted as well (rr's loose_route callback).
"""

import os

from .. import log
from ..sip import digest
from ..sip.errors import ParseError
from .export import FAILURE_ROUTE, REQUEST_ROUTE, Function, Module, ModuleSpec, Param

_CHALLENGE = {401: ("WWW-Authenticate", "Authorization"),
              407: ("Proxy-Authenticate", "Proxy-Authorization")}
CSEQ_PARAM = "uac_cs"


def parse_credential(text):
    """``"user:realm:password"`` -> (user, realm, password); ValueError otherwise.  The password
    may hold colons (it is the rest)."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise ValueError(f"credential {text!r}: want \"user:realm:password\"")
    return tuple(parts)


def edit_branches(rc, msg, name, value):
    """``name: value`` on the request's branches only (tm's ``branch_headers``); the responses
    relayed upstream get the request's own line back (``reply_headers``)."""
    if rc.branch_headers is None:
        rc.branch_headers, rc.reply_headers = {}, {}
    rc.branch_headers[name] = value
    if name not in rc.reply_headers:
        own = msg.get(name)
        rc.reply_headers[name] = (_restore_to(own) if name == "To" and msg.to.tag is None
                                  else own)


def _restore_to(own):
    """The reply's To as the caller sent it, with the tag the callee added."""
    def restore(reply):
        tag = reply.to.tag
        return own if tag is None else f"{own};tag={tag}"
    return restore


def shift_cseq(rc, msg, n):
    """The branches' CSeq ``n`` more than the last one sent (uac_auth: RFC 3261 22.2, the
    request with credentials is a new request); the shift from the request's own."""
    cseq = msg.cseq
    current = (rc.branch_headers or {}).get("CSeq")
    number = int(current.split()[0]) if current else cseq.number
    edit_branches(rc, msg, "CSeq", f"{number + n} {cseq.method}")
    return number + n - cseq.number


def _realm_of(value):
    try:
        return digest.parse_credentials(value)[1].get("realm")
    except ParseError:
        return None


class Uac(Module):
    name = "uac"

    def __init__(self, params):
        super().__init__(params)
        self.credentials = {}       # realm -> (user, password, is HA1)
        for text in params["credential"]:
            user, realm, password = parse_credential(text)
            self.credentials[realm] = (user, password, False)
        self.registrations = None   # serlite.uac glue, when reg_db_url is set
        if params["reg_db_url"]:
            from ._uac_reg import Registrations
            self.registrations = Registrations(self, params)

    def start(self, core, previous=None):
        super().start(core, previous)
        rr = core.module("rr")
        if rr is not None:
            rr.register_rrcb(self._in_dialog)
        if self.registrations is not None:
            self.registrations.start(core, previous.registrations
                                     if previous is not None else None)

    def stop(self):
        if self.registrations is not None:
            self.registrations.stop()

    # -- uac_auth --------------------------------------------------------------------------
    def _credential(self, realm):
        found = self.credentials.get(realm)
        if found is None and self.registrations is not None:
            found = self.registrations.credential(realm)
        return found

    def uac_auth(self, ctx, mode=0):
        """The failure_route's winning reply is a 401/407: answer its challenge with the
        credential for its realm and make the request ready to be relayed again (t_relay()):
        credentials added, CSeq + 1 on the branches, the R-URI a destination again.  False
        when there is no challenge, no credential for its realm, or the same realm's
        credentials were refused already (a wrong password: no second try)."""
        reply = ctx.reply
        if reply is None or ctx.reply_status not in _CHALLENGE or ctx.transaction is None:
            return -1
        asked, answer = _CHALLENGE[ctx.reply_status]
        msg = ctx.msg
        for value in reply.get_all(asked):
            try:
                challenge = digest.parse_challenge(value)
            except (ParseError, digest.ChallengeError) as exc:
                log.limited(("uac-challenge", str(exc)[:40]), log.NOTICE,
                            f"uac_auth: cannot answer {asked}: {exc}")
                continue
            realm = challenge["realm"]
            cred = self._credential(realm)
            if cred is None:
                log.limited(("uac-nocred", realm), log.NOTICE,
                            f"uac_auth: no credential for realm {realm!r}")
                continue
            mine = [v for v in msg.get_all(answer) if _realm_of(v) == realm]
            if mine and not challenge["stale"]:
                log.limited(("uac-refused", realm), log.WARN,
                            f"uac_auth: realm {realm!r} refused the credentials of "
                            f"{cred[0]!r} (wrong password?)")
                return -1
            user, secret, is_ha1 = cred
            ha1 = secret if mode & 1 or is_ha1 else digest.ha1(user, realm, secret)
            value = digest.authorization(challenge, msg.method, ctx.ruri, user, ha1,
                                         os.urandom(8).hex())
            if mine:
                others = [v for v in msg.get_all(answer) if _realm_of(v) != realm]
                msg.remove_header(answer)
                for other in others:
                    msg.add_header(answer, other)
            msg.add_header(answer, value)
            rc = ctx.transaction.data
            # the challenge is answered here: it never goes upstream, whatever the resent
            # request ends with (a CANCEL's 487, a timeout), as Kamailio's failure_route
            # round leaves the branches before it out of the best-response choice
            rc.branches = [b for b in rc.branches if b.response is not reply]
            delta = shift_cseq(rc, msg, 1)
            self._note_delta(ctx, delta)
            ctx.ruri_new = True     # relayed again to the same destination
            return 1
        return -1

    def _note_delta(self, ctx, delta):
        """``;uac_cs=N`` on our Record-Route (the top one, when it is ours), so that the
        caller's requests later in the dialog are shifted too (``_in_dialog``)."""
        rr = self.core.module("rr")
        if rr is not None:
            rr.set_rr_param(ctx, CSEQ_PARAM, str(delta))

    def _in_dialog(self, ctx, route_uri):
        """rr's loose_route callback, on a request in a dialog whose first request uac
        changed: the CSeq shift of uac_auth, the From/To of uac_replace_from/_to."""
        if not route_uri.params:
            return
        msg = ctx.msg
        ftag = route_uri.param("ftag")
        downstream = ftag is not None and ftag == msg.from_.tag
        delta = route_uri.param(CSEQ_PARAM)
        edits = []      # (header, value on the way on)
        if downstream and delta and delta.isdigit():
            # the caller's requests go on shifted, their responses come back with the
            # caller's own; the provider's requests keep theirs
            cseq = msg.cseq
            edits.append(("CSeq", f"{cseq.number + int(delta)} {cseq.method}"))
        from ._uac_replace import in_dialog_edits
        edits += in_dialog_edits(msg, route_uri, downstream)
        if not edits:
            return
        if msg.method == "ACK" or msg.method == "CANCEL":
            # no response of its own to restore (a CANCEL's is ours): on the request itself
            for name, value in edits:
                msg.set_header(name, value)
            return
        tm = self.core.module("tm")
        tm.t_newtran(ctx)
        rc = ctx.transaction.data
        for name, value in edits:
            edit_branches(rc, msg, name, value)

    # -- registrations ---------------------------------------------------------------------
    def _regs(self):
        if self.registrations is None:
            raise ValueError("uac: reg_db_url is not set")
        return self.registrations

    def uac_reg_lookup(self, ctx, uuid, dst):
        """The provider's request for our Contact (``sip:l_uuid@...``) or our number
        (r_username): the R-URI becomes the record's local user, sip:l_username@l_domain."""
        if self.registrations is None:
            return -1
        if uuid in _USER_PVS:           # Kamailio writes the pseudo-variable quoted
            uuid = _USER_PVS[uuid](ctx)
            if not uuid:
                return -1
        return self.registrations.lookup(ctx, uuid, dst)

    def uac_reg_from_provider(self, ctx):
        """serlite's own: 1 when the request comes from an address of a registration's
        provider (its server or outbound proxy, or what their names resolved to)."""
        if self.registrations is None or ctx.source is None:
            return -1
        return 1 if self.registrations.from_provider(ctx.source.ip) else -1

    def uac_reg_status(self, ctx, uuid):
        if self.registrations is None:
            return -1
        return self.registrations.status(uuid)

    def uac_replace_from(self, ctx, *args):
        from ._uac_replace import replace
        return replace(self, ctx, "From", *args)

    def uac_replace_to(self, ctx, *args):
        from ._uac_replace import replace
        return replace(self, ctx, "To", *args)

    def uac_restore_from(self, ctx):
        from ._uac_replace import restore
        return restore(self, ctx, "From")

    def uac_restore_to(self, ctx):
        from ._uac_replace import restore
        return restore(self, ctx, "To")


def _user_of(get):
    def user(ctx):
        try:
            uri = get(ctx)
        except ParseError:
            return None
        return None if uri is None else uri.user
    return user


# the pseudo-variables uac_reg_lookup's first argument names in Kamailio's configs ("$rU")
_USER_PVS = {"$rU": _user_of(lambda ctx: ctx.uri), "$tU": _user_of(lambda ctx: ctx.msg.to.uri),
             "$fU": _user_of(lambda ctx: ctx.msg.from_.uri)}


def _fix_reg_lookup(module, args, script):
    uuid, dst = str(args[0]), str(args[1])
    if dst != "$ru":
        raise ValueError(f'uac_reg_lookup\'s second argument is "$ru" (the R-URI is '
                         f'rewritten), not {dst!r}')
    return uuid, dst


def _fix_mode(module, args, script):
    if not args:
        return ()
    try:
        return (int(args[0]),)
    except (TypeError, ValueError):
        raise ValueError(f"uac_auth's mode is a number (1: the passwords are HA1), not "
                         f"{args[0]!r}")


EXPORTS = ModuleSpec(
    name="uac",
    doc="serlite as a user agent toward a provider: uac_auth, outbound registration "
        "(uacreg table), From/To replacement (Kamailio's uac).",
    factory=Uac,
    functions=(
        Function("uac_auth", "uac_auth", (0, 1), FAILURE_ROUTE, _fix_mode,
                 "answer the reply's 401/407 from the credentials; then t_relay() sends the "
                 "request again (CSeq + 1); mode 1: passwords are HA1"),
        Function("uac_reg_lookup", "uac_reg_lookup", (2,), REQUEST_ROUTE, _fix_reg_lookup,
                 doc="uac_reg_lookup(\"$rU\", \"$ru\"): the registration whose l_uuid (or "
                 "r_username, for a provider's call to our number) is the first argument "
                 "rewrites the R-URI to its local user sip:l_username@l_domain",
                 dynamic=True),
        Function("uac_reg_from_provider", "uac_reg_from_provider", (0,), REQUEST_ROUTE,
                 None, doc="serlite's own (Kamailio has none): 1 when the request comes "
                 "from a registration's provider: its server's or outbound proxy's address, "
                 "or an address their names resolved to (RFC 3263 targets, as last "
                 "resolved for the REGISTER)"),
        Function("uac_reg_status", "uac_reg_status", (1,), REQUEST_ROUTE | FAILURE_ROUTE, None,
                 doc="1 when the registration l_uuid is registered; -1 unknown, -2 not "
                 "registered (yet, or failed), -99 disabled", dynamic=True),
        Function("uac_replace_from", "uac_replace_from", (1, 2), REQUEST_ROUTE,
                 doc="replace the From URI ([display,] uri) on the request as it leaves; the "
                 "caller's From comes back in the replies, and the dialog's requests are "
                 "changed both ways through our Record-Route's ;vsf= (call record_route() "
                 "first)", dynamic=True),
        Function("uac_replace_to", "uac_replace_to", (1, 2), REQUEST_ROUTE,
                 doc="replace the To URI ([display,] uri), restored like the From (;vst=)",
                 dynamic=True),
        Function("uac_restore_from", "uac_restore_from", (0,), REQUEST_ROUTE,
                 doc="true for a request (before loose_route) in a dialog whose From "
                 "uac_replace_from changed; the restore itself is loose_route's (Kamailio's "
                 "restore_mode auto)"),
        Function("uac_restore_to", "uac_restore_to", (0,), REQUEST_ROUTE,
                 doc="restore the To likewise"),
    ),
    params={
        "credential": Param(list, (), "\"user:realm:password\" for uac_auth (repeatable)"),
        "reg_db_url": Param(str, "", "dbtext://DIR of the uacreg table (outbound "
                                     "registrations; empty: none)"),
        "reg_contact_addr": Param(str, "", "host:port of the Contact the REGISTERs carry "
                                           "(empty: the address of the socket they leave by)"),
        "reg_timer_interval": Param(int, 90, "a registration is refreshed this many seconds "
                                             "before it expires (at half its interval at the "
                                             "latest); and how often our Contact address is "
                                             "looked at (a change registers again)",
                                    min=1, max=3600),
        "reg_retry_interval": Param(int, 0, "seconds before a refused registration (403, a "
                                            "wrong password) is tried again (0: never, as "
                                            "Kamailio); timeouts and 5xx are retried after it "
                                            "(0: 30 s), doubled per failure up to 30 min",
                                    min=0, max=86400),
        "reg_db_table": Param(str, "uacreg", "the table's name"),
    },
    depends=("tm",),
)
