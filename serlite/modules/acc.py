"""acc: SER's accounting module, to the log (Kamailio's acc, its syslog part), and serlite's
call history.

The log: one line per transaction whose request carried the script's flags when t_relay ran
(``setflag(N)``; Kamailio's names and meanings): ``log_flag`` logs each transaction answered
with a 2xx, ``failed_transaction_flag`` one answered >= 300 (except the ``failed_filter``
codes), ``log_missed_flag`` an INVITE that every branch failed (once, before failure_route,
with the best branch's status), and ``acc_log_request("comment")`` logs the request at hand at
once.  Kamailio's format (acc.c acc_log_request, ``acc_time_mode`` 0), then serlite's fixed
extras ``from`` and ``to`` (the URIs, as Kamailio's ``log_extra`` would give them)::

    ACC: transaction answered: timestamp=1765000000;method=INVITE;from_tag=a;to_tag=b;
        call_id=c;code=200;reason=OK;from=sip:100@home;to=sip:101@home

The call history (serlite's own, ``history_file``): every INVITE dialog the proxy relays, when
it ends, with start, answer, end, duration, caller, callee and result (serlite.store.calls); the
calls are followed by tm's dialog tracker (serlite.dialog).  Calls ended by an auth challenge
(401/407: the phone sends the INVITE again with credentials) are not kept.
"""

from .. import log
from ..dialog.tracker import TERMINATED, call_result
from ..sip.errors import ParseError
from ..store.calls import CallHistory, make_record
from .export import BRANCH_ROUTE, FAILURE_ROUTE, REQUEST_ROUTE, Function, Module, ModuleSpec, Param

ANSWERED = "ACC: transaction answered: "
MISSED = "ACC: call missed: "
REQUEST = "ACC: request accounted: "
_CHALLENGES = (401, 407)


def _fix_comment(module, args, script):
    """Kamailio's acc_parse_code: "403 Forbidden" -> (403, "Forbidden"); no leading code: 0 and
    the text as the reason."""
    text = str(args[0])
    if "\r" in text or "\n" in text:
        raise ValueError("the comment must be one line")
    if len(text) >= 3 and text[:3].isdigit() and text[:3].isascii():
        return (int(text[:3]), text[3:].strip())
    return (0, text)


def _flag_bit(value):
    """The flag's bit in the message flags (0: off); the range is the Param's (-1..31)."""
    value = int(value)
    return 0 if value == -1 else 1 << value


def _clean(text):
    """A value as it goes into the log line: one line (no CR/LF to forge a second one)."""
    text = "" if text is None else str(text)
    if "\n" in text or "\r" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    return text


class Acc(Module):
    name = "acc"

    def __init__(self, params):
        super().__init__(params)
        self.log_bit = _flag_bit(params["log_flag"])
        self.missed_bit = _flag_bit(params["log_missed_flag"])
        self.failed_bit = _flag_bit(params["failed_transaction_flag"])
        self.level = int(params["log_level"])
        try:
            self.failed_filter = frozenset(int(c) for c in
                                           str(params["failed_filter"]).split(",") if c.strip())
        except ValueError:
            raise ValueError(f"failed_filter: codes separated by commas, not "
                             f"{params['failed_filter']!r}")
        self.history_size = int(params["history_size"])
        self.history = None
        self.tracker = None
        self.lines = 0          # acc lines logged (tests, ser-ctl stats)

    def start(self, core, previous=None):
        super().start(core, previous)
        tm = core.module("tm")
        if previous is not None and previous.history is not None \
                and previous.history.path == (self.params["history_file"] or None):
            self.history = previous.history     # SIGHUP: the same file goes on
            self.history.calls = type(self.history.calls)(self.history.calls,
                                                          maxlen=self.history_size)
            self.history.size = self.history_size
        elif self.params["history_file"]:
            self.history = CallHistory(self.params["history_file"], self.history_size)
            self.history.load()
        if tm is None:
            return
        if self.log_bit or self.missed_bit or self.failed_bit:
            tm.watch(self)
        if self.history is not None:
            self.tracker = tm.dialog_tracker()
            self.tracker.subscribe(self._dialog_changed)

    def stop(self):
        if self.history is not None:
            self.history.close()

    # -- the log ---------------------------------------------------------------------------
    def _write(self, text, msg, code, reason, to_tag):
        """One acc line for the request ``msg``."""
        try:
            frm, to = msg.from_, msg.to
            method = msg.method
            if to_tag is None:
                to_tag = to.tag if to is not None else None
            line = (f"{text}timestamp={int(self.core.wall())};method={_clean(method)};"
                    f"from_tag={_clean(frm.tag if frm else '')};to_tag={_clean(to_tag or '')};"
                    f"call_id={_clean(msg.call_id)};code={code};reason={_clean(reason)};"
                    f"from={_clean(frm.uri_text if frm else '')};"
                    f"to={_clean(to.uri_text if to else '')}")
        except ParseError as exc:
            log.limited(("acc-parse", msg.call_id), log.NOTICE,
                        f"acc: request not accounted: {exc.reason}")
            return
        self.lines += 1
        log.log(self.level, line)

    def acc_log_request(self, ctx, code, reason):
        self._write(REQUEST, ctx.msg, code, reason, None)
        return 1

    # tm watcher (serlite.modules.tm.Tm.watch)
    def request(self, st, ctx, now):
        pass

    def response_out(self, st, status, reason, msg, now):
        if status < 200 or st.status >= 200:
            return          # provisional, or not the first final: one line per transaction
        rc = st.data
        ctx = rc.ctx if rc is not None else None
        if ctx is None:
            return
        flags = ctx.flags
        to_tag = None
        if msg is not None:
            try:
                to_tag = msg.to.tag
            except (ParseError, AttributeError):
                to_tag = None
        elif status > 100:
            try:
                to_tag = ctx.msg.to.tag or self.core.local_to_tag(ctx.msg)
            except (ParseError, AttributeError):
                to_tag = None
        if status >= 300:
            if flags & self.missed_bit and st.method == "INVITE":
                self._missed(ctx, status, reason, to_tag)   # a final made by tm or t_reply
            if flags & self.failed_bit and status not in self.failed_filter:
                self._write(ANSWERED, ctx.msg, status, reason, to_tag)
        elif flags & self.log_bit:
            self._write(ANSWERED, ctx.msg, status, reason, to_tag)

    def failure(self, st, now):
        rc = st.data
        ctx = rc.ctx if rc is not None else None
        if ctx is None or not ctx.flags & self.missed_bit or st.method != "INVITE":
            return
        from ..proxy.response_context import best_response
        best = best_response(rc.branches)
        if best is None:
            return
        reason = best.reason
        to_tag = None
        if best.response is not None:
            reason = best.response.reason
            try:
                to_tag = best.response.to.tag
            except (ParseError, AttributeError):
                to_tag = None
        self._missed(ctx, best.final, reason or "", to_tag)

    def _missed(self, ctx, status, reason, to_tag):
        # Kamailio's on_missed: once per transaction, the flag is reset on the request
        ctx.flags &= ~self.missed_bit
        self._write(MISSED, ctx.msg, status, reason, to_tag)

    def ended(self, st, now):
        pass

    # -- the call history ------------------------------------------------------------------
    def _dialog_changed(self, dlg, old):
        if dlg.state != TERMINATED or dlg.status in _CHALLENGES:
            return
        wall = self.core.wall()
        mono = dlg.ended

        def at(t):
            return None if t is None else wall - (mono - t)
        self.history.add(make_record(at(dlg.created), at(dlg.answered), wall, dlg.caller,
                                     dlg.callee, call_result(dlg), dlg.status, dlg.reason,
                                     dlg.call_id))

    def calls(self, n, now):
        """What ``ser-ctl calls`` and the page show: the active calls, the newest ``n``."""
        active = self.tracker.active(now) if self.tracker is not None else []
        history = self.history.last(n) if self.history is not None else []
        return {"active": active, "history": history,
                "history_on": self.history is not None,
                # calls relayed but not followed: the tracker was full (tm's max_dialogs)
                "untracked": self.tracker.refused if self.tracker is not None else 0}


EXPORTS = ModuleSpec(
    name="acc",
    factory=Acc,
    functions=(
        # Kamailio: ANY_ROUTE; here where the script works on a request (in onreply_route
        # it holds a response)
        Function("acc_log_request", "acc_log_request", (1,),
                 REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE, _fix_comment,
                 "log the request now: acc_log_request(\"200 comment\")"),
    ),
    params={
        "log_flag": Param(int, -1, "flag (0-31) that logs a transaction answered 2xx; -1 off",
                          min=-1, max=31),
        "log_missed_flag": Param(int, -1, "flag that logs an INVITE every branch failed "
                                          "(a missed call); -1 off", min=-1, max=31),
        "failed_transaction_flag": Param(int, -1, "flag that logs a transaction answered "
                                                  ">= 300; -1 off", min=-1, max=31),
        "failed_filter": Param(str, "", "codes, comma-separated, never logged as failed"),
        "log_level": Param(int, log.NOTICE, "SER level of the acc lines (2: notice)",
                           min=log.ALERT, max=log.DBG),
        "history_file": Param(str, "", "serlite's call history: a flat file of the last "
                                       "calls (empty: none, no call tracking)"),
        "history_size": Param(int, 500, "calls the history keeps (the file holds at most "
                                        "twice as many lines)", min=1, max=100000),
    },
    depends=("tm",),
)
