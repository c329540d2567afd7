"""pua_dialoginfo: busy lamps.  ``dialoginfo_set([side])`` on a call's initial INVITE marks
it, and the watchers of its local parties (SUBSCRIBE with ``Event: dialog``, RFC 4235, to
the caller's or the callee's address) are told how it goes: the caller's ``trying``,
``early`` when it rings, ``confirmed`` on the answer, ``terminated`` (with its reason:
cancelled, rejected and the code, local-bye/remote-bye, timeout) at the end; the callee's
from ``early`` on, its ``<remote>`` naming the caller so that a desk phone can offer to pick
the call up.  A forked call is one dialog: the first ringing branch's, then the answering
one's.  Each party's document holds all its calls in progress.

Kamailio's module publishes every dialog its dialog module tracks and has no function;
OpenSIPS's marks a call with ``dialoginfo_set([side])`` (``"A"`` the caller, ``"B"`` the
callee, both by default), which serlite takes, with the parameters both share (Kamailio's
names and meanings): ``include_callid``, ``include_tags``, ``include_localremote`` (what a
pick-up needs; on by default), ``caller_confirmed`` (Linksys SPA962s blink for a caller's
``early``: show ``confirmed``), Kamailio's ``callee_trying``, ``override_lifetime`` (the
documents' expiry; 0: tm's ``dialog_timeout``) and ``include_req_uri`` (the callee is the
Request-URI as the script left it when ``dialoginfo_set()`` ran, not the To URI).  Only
parties of this server are published (Kamailio's check: the URI's host is ``myself``).

The calls come from tm's dialog tracker (serlite.dialog), the documents from
serlite.presence.dialoginfo, and they go to the presence module's ``local_publish`` (no
SIP PUBLISH to ourselves), which notifies the watchers: it needs the presence module.
"""

from .. import log
from ..presence.dialoginfo import CALLEE, CALLER, CONTENT_TYPE, Call, DialogInfo, aor, \
    display_name
from ..sip.errors import ParseError
from .export import REQUEST_ROUTE, Function, Module, ModuleSpec, Param

SOURCE = "pua_dialoginfo"       # the publisher's id at the presence module
EVENT = "dialog"


def _fix_side(module, args, script):
    side = str(args[0]).upper() if args else "AB"
    if not side or set(side) - {CALLER, CALLEE}:
        raise ValueError(f'side is "A" (the caller), "B" (the callee) or "AB", not {args[0]!r}')
    return (CALLER in side, CALLEE in side)


class PuaDialoginfo(Module):
    name = "pua_dialoginfo"

    def __init__(self, params):
        super().__init__(params)
        self.info = None
        self.tracker = None
        self.presence = None
        self.published = 0      # documents handed to presence (tests, stats)

    def start(self, core, previous=None):
        super().start(core, previous)
        p = self.params
        tm = core.module("tm")
        self.presence = core.module("presence")
        self.tracker = tm.dialog_tracker()
        options = dict(include_callid=bool(p["include_callid"]),
                       include_tags=bool(p["include_tags"]),
                       include_localremote=bool(p["include_localremote"]),
                       caller_confirmed=bool(p["caller_confirmed"]),
                       callee_trying=bool(p["callee_trying"]),
                       lifetime=p["override_lifetime"] or int(self.tracker.max_lifetime),
                       max_calls=self.tracker.max_dialogs)
        self.info = DialogInfo(**options)
        old = getattr(previous, "info", None)
        if old is not None:         # SIGHUP: the calls under way keep their watchers told
            self.info.adopt(old)
        self.tracker.subscribe(self._changed)

    def stop(self):
        if self.tracker is not None:
            self.tracker.unsubscribe(self._changed)

    # -- the script ------------------------------------------------------------------------
    def dialoginfo_set(self, ctx, caller=True, callee=True):
        msg = ctx.msg
        if msg.method != "INVITE":
            return -1
        core = self.core
        try:
            to = msg.to
            if to.tag is not None:
                return -1           # a re-INVITE: its call was marked (or not) already
            frm = msg.from_
            call_id, from_tag = msg.call_id, frm.tag
            if not call_id or not from_tag:
                return -1
            by_ruri = self.params["include_req_uri"]
            callee_uri = ctx.uri if by_ruri else to.uri
            caller_uri = frm.uri
            caller_aor = aor(caller_uri) if caller and core.is_myself_uri(caller_uri) else None
            callee_aor = aor(callee_uri) if callee and callee_uri is not None \
                and core.is_myself_uri(callee_uri) else None
            contacts = msg.contacts
            target = contacts[0].uri_text if contacts and contacts != "*" else ""
            call = Call(call_id, from_tag, frm.uri_text, ctx.ruri if by_ruri else to.uri_text,
                        caller_name=display_name(frm.display),
                        callee_name=display_name(to.display), caller_target=target,
                        caller_aor=caller_aor, callee_aor=callee_aor)
        except (ParseError, AttributeError) as exc:
            log.limited(("dialoginfo", "parse"), log.NOTICE,
                        f"pua_dialoginfo: call not marked: {getattr(exc, 'reason', exc)}")
            return -1
        if not self.info.mark(call, core.now()):
            log.limited(("dialoginfo", "full"), log.NOTICE,
                        "pua_dialoginfo: too many calls marked: this one has no busy lamp")
            return -1
        return 1

    # -- the tracker's listener ------------------------------------------------------------
    def _changed(self, dlg, old):
        for pub in self.info.changed(dlg, old):
            try:
                self.presence.local_publish(pub.presentity, EVENT, pub.body, CONTENT_TYPE,
                                            pub.expires, SOURCE)
                self.published += 1
            except Exception as exc:    # a listener inside tm's hooks: never break the call
                log.limited(("dialoginfo", "publish"), log.ERR,
                            f"pua_dialoginfo: {pub.presentity}: not published: {exc!r}")


EXPORTS = ModuleSpec(
    name="pua_dialoginfo",
    doc="Busy lamps: RFC 4235 dialog-info of the calls marked with dialoginfo_set(), for "
        "the watchers of their local parties (through the presence module).",
    factory=PuaDialoginfo,
    functions=(
        Function("dialoginfo_set", "dialoginfo_set", (0, 1), REQUEST_ROUTE, _fix_side,
                 'on an initial INVITE: its parties\' watchers see the call ("A" the caller '
                 'only, "B" the callee only; both by default)'),
    ),
    params={
        "include_callid": Param(int, 1, "the Call-ID in each dialog element (call pick-up)",
                                min=0, max=1),
        "include_tags": Param(int, 1, "the local and remote tags (call pick-up)", min=0, max=1),
        "include_localremote": Param(int, 1, "the <local> and <remote> parties (call "
                                             "pick-up: who calls)", min=0, max=1),
        "caller_confirmed": Param(int, 0, "show the caller confirmed while it rings (phones "
                                          "that blink for any early dialog)", min=0, max=1),
        "callee_trying": Param(int, 0, "show the callee trying before it rings", min=0, max=1),
        "override_lifetime": Param(int, 0, "seconds a call's document lives (0: tm's "
                                           "dialog_timeout)", min=0, max=86400 * 7),
        "include_req_uri": Param(int, 0, "the callee is the Request-URI, not the To URI",
                                 min=0, max=1),
    },
    depends=("tm", "presence"),
)
