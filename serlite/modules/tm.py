"""tm: the transaction-stateful proxy (RFC 3261 16 and 17): ``t_relay``, ``t_reply``,
``t_newtran``, ``t_on_failure``/``t_on_reply``/``t_on_branch``, ``t_set_fr``.

The state machines live in ``serlite.transaction``; this module is their I/O side: it sends what
they ask, arms one loop timer per transaction, and does the proxy's part (forwarding branches,
relaying responses, the best-response choice, CANCEL).
"""

import heapq
import itertools
import math
import os
import re
import sys

from .. import log
from ..dns.cache import FAILED, Negative
from ..dns.locate import failure_status
from ..proxy import forward
from ..proxy.context import Branch, Context
from ..proxy.response_context import BranchState, ResponseContext, best_response
from ..sip.errors import ParseError
from ..transaction.requests import build_ack, build_cancel
from ..transaction.table import TransactionTable, client_key, server_key
from ..transaction.transaction import ClientTransaction, ServerTransaction
from .export import (BRANCH_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE, REQUEST_ROUTE, ROUTE_NAMES,
                     Function, Module, ModuleSpec, Param)
from .sl import fix_reply, redirect_contacts

_REQ_FAIL = REQUEST_ROUTE | FAILURE_ROUTE
_DNS_FAILED = failure_status(Negative(FAILED, ""))[1]
MAX_FAILURE_ROUNDS = 16     # a failure_route that re-arms itself forever still ends


# new requests that start work (a dialog, a binding, a subscription): what overload turns away
# first; in-dialog requests (To tag), ACK, BYE, CANCEL, OPTIONS always go on
_SHED_EARLY = frozenset(("INVITE", "REGISTER", "SUBSCRIBE", "MESSAGE", "PUBLISH"))
TICK = 16      # timers fire on a grid of 1/TICK s, as Kamailio's tm (fast timer: 1/16 s)


def _tick(when):
    """The first grid point at or after ``when``: transactions due within one tick share one
    wake-up of the loop (at a thousand calls a second, their 32 s timers would otherwise wake
    it a few thousand times a second).  A retransmission goes at most 62 ms late, as
    Kamailio's from its own 1/16 s timer."""
    return max(when, math.ceil(when * TICK) / TICK)


def _ms(value):
    """fr timers: milliseconds (Kamailio); SER 0.9 configs give seconds, so small values are
    taken as seconds."""
    value = int(value)
    return value if value >= 300 else value * 1000


def _fix_route(kind):
    def fixup(module, args, script):
        name = str(args[0])
        if script is not None and not script.has_route(kind, name):
            raise ValueError(f"there is no {ROUTE_NAMES[kind]}[{name}]")
        return (name,)
    return fixup


def _fix_relay_to(module, args, script):
    host = str(args[0])
    try:
        port = int(args[1])
    except (TypeError, ValueError):
        raise ValueError(f"port must be a number, not {args[1]!r}")
    return (host.strip("[]"), port)


def _fix_status_re(module, args, script):
    try:
        return (re.compile(str(args[0])),)
    except re.error as exc:
        raise ValueError(f"bad regular expression {args[0]!r}: {exc}")


def _fix_fr(module, args, script):
    try:
        return tuple(_ms(a) for a in args)
    except (TypeError, ValueError):
        raise ValueError("t_set_fr takes milliseconds")


def _prepared(rc, msg):
    """The request's bytes for its branches (``forward.prepare_request``), with
    ``rc.branch_headers`` set on them only (uac): the request keeps its own lines."""
    edits = rc.branch_headers
    if not edits:
        return forward.prepare_request(msg, rc.max_forwards)
    saved = [(name, msg.get_all(name)) for name in edits]
    for name, value in edits.items():
        msg.set_header(name, value)
    try:
        return forward.prepare_request(msg, rc.max_forwards)
    finally:
        for name, lines in saved:
            if len(lines) == 1:
                msg.set_header(name, lines[0])      # in its place
                continue
            msg.remove_header(name)
            for line in lines:
                msg.add_header(name, line)


class OwnBranch(BranchState):
    """The one branch of a request serlite sends itself (``Tm.t_uac``): no response context
    (``rc`` None), the callback its responses go to."""

    __slots__ = ("callback",)

    def __init__(self, proto, ip, port, listener, sent, callback):
        super().__init__(None, "", proto, ip, port, listener, sent)
        self.callback = callback


def _call_back(callback, status, msg):
    try:
        callback(status, msg)
    except Exception as exc:    # a module's bug must not stop tm's timers
        log.limited(("t_uac-callback", type(exc).__name__), log.ERR,
                    f"t_uac: the callback failed on {status}: {exc!r}")


class Tm(Module):
    name = "tm"

    def __init__(self, params):
        super().__init__(params)
        # seconds, from the modparams (read once: they only change with a new instance)
        self.fr_timer = _ms(params["fr_timer"]) / 1000.0
        self.fr_inv_timer = _ms(params["fr_inv_timer"]) / 1000.0
        self.table = TransactionTable()
        # every transaction's next deadline as (when, sequence, transaction), and one loop timer
        # for the earliest: a transaction costs a heap entry, not a loop Timer of its own
        self.due = []
        self._due_seq = itertools.count()
        self._wakeup = None         # the loop Timer due at self.due[0]
        self._keyed = (None, None)  # the last request and its server_key (_server_key)
        self.unanswered = 0         # server transactions with no final response yet
        self._branch_prefix = ""
        self._shed_at = float("inf")    # shed_backlog as a fraction (start)
        self._branch_seq = 0
        # watchers are told what passes (Kamailio's tm callbacks): a tuple, empty unless a
        # module asked, so that each hook costs one test when nothing listens (watch())
        self.watchers = ()
        self.dialogs = None         # the DialogTracker, made on the first dialog_tracker()
        self._dialog_feed = None
        self._dialog_timer = None
        self._previous_dialogs = None
        self._took_over = None

    def start(self, core, previous=None):
        super().start(core, previous)
        # what is given back to the running tm if this start is a failed reload's (stop)
        self._took_over = (previous, previous.watchers) if previous is not None else None
        if previous is not None:
            previous.watchers = ()      # retired: the new modules watch this instance
        if previous is not None and previous.dialogs is not None:
            # SIGHUP: the calls go on; the new modules subscribe again (dialog_tracker())
            if previous._dialog_timer is not None:
                previous._dialog_timer.cancel()
            self._previous_dialogs = previous.dialogs
            if self.dialogs is not None:
                self._adopt_dialogs()
        if self.dialogs is not None:
            self._arm_dialog_timer()
        if previous is not None:    # SIGHUP: transactions in flight go on
            self.table = previous.table
            self.due, self._due_seq = previous.due, previous._due_seq
            if previous._wakeup is not None:
                previous._wakeup.cancel()
                previous._wakeup = None
            self._arm_wakeup()
            self.unanswered = previous.unanswered
        self._branch_prefix = "z9hG4bK" + os.urandom(3).hex()
        self._shed_at = self.params["shed_backlog"] / 100 or float("inf")
        if hasattr(getattr(core, "transport", None), "on_connect_failed"):
            core.transport.on_connect_failed = self._connect_failed

    def _connect_failed(self, proto, ip, port, why):
        """A TCP/TLS connection opened for branches failed before it carried anything (refused,
        reset, the peer's TLS certificate refused): RFC 3261 16.9, such a branch behaves as if
        it got a 503, now rather than at its timer B/F."""
        now = self.core.now()
        for ct in list(self.table.client.values()):
            branch = ct.data
            if branch is None or branch.final or branch.port != port or branch.ip != ip \
                    or branch.proto != proto:
                continue
            if branch.rc is None:   # a request of serlite's own (t_uac)
                branch.final = 503
                ct.step("error", now)
                self._schedule(ct)
                if not self._uac_failover(branch):
                    _call_back(branch.callback, 503, None)
                continue
            if branch.failover is not None and self._failover(branch):
                branch.final = 503      # RFC 3263 4.3: the next target took its place
                for action in ct.step("error", now):
                    self._client_action(ct, action, None)
                self._schedule(ct)
                continue
            branch.final, branch.reason = 503, "Service Unavailable"
            log.limited(("connect-failed", ip, port), log.NOTICE,
                        f"{proto} {ip}:{port}: {why}: branch {branch.uri} failed (503)")
            for action in ct.step("error", now):
                self._client_action(ct, action, None)
            self._schedule(ct)
            self._branch_final(branch.rc, branch)

    # -- watchers and the dialog tracker -----------------------------------------------------
    def watch(self, watcher):
        """``watcher`` is told, with the loop's time: ``request(st, ctx, now)`` when a request
        was relayed (st None for ACK and CANCEL), ``response_out(st, status, reason, msg,
        now)`` for each response going upstream (msg None when tm made it),
        ``failure(st, now)`` when every branch failed (before failure_route), ``ended(st,
        now)`` when a server transaction ends."""
        if watcher not in self.watchers:
            self.watchers = self.watchers + (watcher,)

    def unwatch(self, watcher):
        self.watchers = tuple(w for w in self.watchers if w is not watcher)

    def dialog_tracker(self):
        """The server's one DialogTracker (serlite.dialog), fed from here; made, and tm's
        hooks turned on, by the first module that asks (acc, the call history)."""
        if self.dialogs is None:
            from ..dialog.feed import DialogFeed
            from ..dialog.tracker import DialogTracker
            self.dialogs = DialogTracker(self.params["dialog_timeout"],
                                         self.params["max_dialogs"])
            self._dialog_feed = DialogFeed(self.dialogs)
            self.watch(self._dialog_feed)
            self._adopt_dialogs()
            if self.core is not None:
                self._arm_dialog_timer()
        return self.dialogs

    def _adopt_dialogs(self):
        old, self._previous_dialogs = self._previous_dialogs, None
        if old is not None:
            old.dialogs.update(self.dialogs.dialogs)
            self.dialogs.dialogs = old.dialogs

    def _arm_dialog_timer(self):
        if self._dialog_timer is not None:
            self._dialog_timer.cancel()
        # a lost BYE is noticed within a minute (or a quarter of a short dialog_timeout)
        period = max(1.0, min(60.0, self.dialogs.max_lifetime / 4))

        def expire():
            self.dialogs.expire(self.core.now())
            self._dialog_timer = self.core.loop.call_at(self.core.now() + period, expire)
        self._dialog_timer = self.core.loop.call_at(self.core.now() + period, expire)

    def stop(self):
        if self._dialog_timer is not None:
            self._dialog_timer.cancel()
            self._dialog_timer = None
        took_over, self._took_over = getattr(self, "_took_over", None), None
        if took_over is not None:
            # a failed reload (a later module's start raised): the running config goes on,
            # so its tm gets back its watchers (acc, the dialog feed), its dialog timer and
            # its wakeup; at exit this does no harm (the loop runs no more timers)
            previous, watchers = took_over
            if self._wakeup is not None:    # the shared heap is the running tm's again
                self._wakeup.cancel()
                self._wakeup = None
            previous.watchers = watchers
            if previous.dialogs is not None:
                previous._dialog_timer = None
                previous._arm_dialog_timer()
            if previous._wakeup is None:
                previous._arm_wakeup()

    def _tell_response(self, st, status, reason, msg):
        now = self.core.now()
        for w in self.watchers:
            w.response_out(st, status, reason, msg, now)

    # -- timers ----------------------------------------------------------------------------
    def _schedule(self, tx):
        """Keep each transaction in ``due`` at or before its next deadline.  An entry that comes
        due early finds nothing to fire and is put back (``_on_due``), so a transaction is
        pushed again only when its deadline moves earlier: most state changes cost nothing
        here.  Entries of a transaction whose deadline moved or that ended stay in the heap
        until their time and are skipped then (``tx.due`` no longer matches)."""
        if tx.state == "terminated":
            tx.due = None
            self._forget(tx)
            return
        d = tx.deadlines        # (next_deadline() inline: this runs after every step)
        if not d:
            tx.due = None
            return
        when = min(d[1::2])
        if tx.due is not None and tx.due <= when:
            return
        tx.due = when
        due = self.due
        heapq.heappush(due, (when, next(self._due_seq), tx))
        if len(due) > len(self.table) * 3 // 2 + 256:
            # entries left behind outnumber the live ones (an INVITE's branch keeps one at
            # fr_inv_timer, 120 s, after its 2xx): drop them rather than hold their
            # transactions that long.  At most every n/2 pushes, O(n): O(1) a push
            due[:] = [e for e in due if e[2].due == e[0]]
            heapq.heapify(due)
        at = _tick(when)
        wakeup = self._wakeup
        if wakeup is None or at < wakeup.when:
            if wakeup is not None:
                wakeup.cancel()
            self._wakeup = self.core.loop.call_at(at, self._on_due)

    def _arm_wakeup(self):
        self._wakeup = None
        if self.due and self.core is not None:
            self._wakeup = self.core.loop.call_at(_tick(self.due[0][0]), self._on_due)

    def _on_due(self):
        self._wakeup = None
        now = self.core.now()
        due = self.due
        try:
            while due and due[0][0] <= now:
                when, _, tx = heapq.heappop(due)
                if tx.due != when:
                    continue        # moved earlier (another entry) or ended
                tx.due = None
                try:
                    for action in tx.expire(now):
                        if isinstance(tx, ServerTransaction):
                            self._server_action(tx, action)
                        else:
                            self._client_action(tx, action, None)
                finally:
                    self._schedule(tx)
        finally:
            # what _schedule armed above is for the transactions it pushed again, which may be
            # later than ones still waiting in the heap: the next wake-up is for the heap's
            # head (also when one transaction's action failed: the others still fire)
            if self._wakeup is not None:
                self._wakeup.cancel()
            self._arm_wakeup()

    def _forget(self, tx):
        if isinstance(tx, ServerTransaction):
            if self.table.server.get(tx.key) is tx:
                del self.table.server[tx.key]
                if tx.status < 200:
                    self.unanswered -= 1
                if self.watchers:
                    now = self.core.now()
                    for w in self.watchers:
                        w.ended(tx, now)
            # ServerTransaction <-> ResponseContext is a reference cycle: broken here, the
            # ended transaction is freed at once rather than by a full garbage collection
            # (which by then walks every transaction kept; tests/modules/test_tm_lifetime.py)
            tx.data = None
        else:
            key = client_key(tx.branch, tx.method)
            if self.table.client.get(key) is tx:
                del self.table.client[key]
            branch = tx.data
            if branch is not None:      # nothing is sent on this branch any more
                branch.client = None
                branch.sent = None
                tx.data = tx.request = None

    # -- server side -----------------------------------------------------------------------
    def absorb(self, ctx):
        """Called by the core before the script: a retransmitted request (or the ACK of a
        non-2xx final) of a known transaction is handled here and never reaches the script."""
        msg = ctx.msg
        if msg.method == "CANCEL":
            return False
        st = self.table.server.get(self._server_key(msg))
        if st is None:
            if msg.method in _SHED_EARLY and msg.to.tag is None:
                # the socket this request came in on is behind what it is offered: a new call
                # or registration from it is turned away before the script, so that the calls
                # already going on (their responses, ACKs and BYEs, waiting in the same
                # socket) get through.  Only that socket's: a flood on the WAN address must
                # not turn away the phones on the LAN's (their socket is read empty).  TCP
                # has the kernel's flow control and no backlog here (max_transactions bounds it).
                backlog = getattr(ctx.source.local, "backlog", 0.0)
                if backlog > self._shed_at:
                    self._shed(ctx, f"receive buffer {backlog:.0%} full")
                    return True
            return False
        if msg.method == "ACK":
            if st.method != "INVITE" or st.status < 300:
                return False     # an ACK for a 2xx is end-to-end: the script routes it
            actions = st.step("ack", self.core.now())
        else:
            actions = st.step("request", self.core.now())
        for action in actions:
            self._server_action(st, action)
        self._schedule(st)
        return True

    def _server_action(self, st, action):
        if action in ("send", "resend"):
            if st.response is not None:
                proto, ip, port, local, conn = st.dest
                self.core.send(proto, ip, port, st.response, local, conn)
        elif action == "timeout":
            log.debug(f"no ACK for transaction {st.key}")

    def _server_key(self, msg):
        """server_key(msg), made once per request: absorb() asks before the script runs and
        t_relay/t_reply after, for the same message."""
        keyed = self._keyed
        if keyed[0] is msg:
            return keyed[1]
        key = server_key(msg)
        self._keyed = (msg, key)
        return key

    def _new_server(self, ctx):
        msg = ctx.msg
        key = self._server_key(msg)
        st = self.table.server.get(key)
        if st is not None:
            return st, False
        proto, host, port = forward.via_target(msg.top_via, ctx.source)
        # interned: the same few hosts and methods, shared by every transaction kept 32 s
        # rather than a copy each (interned strings still go when unused)
        dest = (proto, sys.intern(host), port, ctx.source.local, ctx.source.conn)
        st = ServerTransaction(sys.intern(msg.method), key, ctx.source.proto != "udp", dest)
        st.data = ResponseContext(st, ctx)
        self.table.server[key] = st
        self.unanswered += 1
        ctx.transaction = st
        return st, True

    def _respond(self, st, status, data):
        if st.state == "terminated":
            # ended before this branch answered (over TCP a non-INVITE ends with its final
            # response, timer J = 0): 16.7 step 5, only a 2xx to an INVITE still goes up
            if st.method == "INVITE" and 200 <= status < 300:
                self.core.stats.reply_out(status, len(data))
                proto, ip, port, local, conn = st.dest
                self.core.send(proto, ip, port, data, local, conn)
            return
        if status >= 200 and st.status < 200:
            self.unanswered -= 1
        self.core.stats.reply_out(status, len(data))
        for action in st.respond(status, data, self.core.now()):
            self._server_action(st, action)
        if status >= 200:
            st.data.release()
            if st.state == "accepted":
                # RFC 6026 7.1: retransmitted INVITEs are absorbed, never answered again:
                # the 2xx need not be kept for the 32 s of timer L
                st.response = None
        self._schedule(st)

    def _local_reply(self, st, status, reason, headers=()):
        rc = st.data
        if rc is not None and rc.held_up:   # after the responses waiting for their SDP
            self._queue_up(rc, None, lambda: self._local_reply_now(st, status, reason,
                                                                   headers))
            return
        self._local_reply_now(st, status, reason, headers)

    def _local_reply_now(self, st, status, reason, headers=()):
        rc = st.data
        if rc is None or rc.ctx is None:
            return      # answered already (released, or ended): nothing more goes upstream
        data = self.core.reply_bytes(rc.ctx.msg, status, reason, headers)
        if status >= 200:
            rc.answered = status
            rc.ctx.replied = True
        if self.watchers:
            self._tell_response(st, status, reason, None)
        self._respond(st, status, data)

    def t_newtran(self, ctx):
        if ctx.msg.method == "ACK":
            return -1
        self._new_server(ctx)
        return 1

    def t_reply(self, ctx, code, reason):
        headers = redirect_contacts(ctx) if 300 <= code < 400 else ()
        return 1 if self.reply(ctx, code, reason, headers) else -1

    def reply(self, ctx, code, reason, headers=()):
        """Answer statefully (creating the transaction if needed); False if it was answered
        already or is an ACK."""
        if ctx.msg.method == "ACK":
            return False
        st = ctx.transaction
        if st is None:
            st, _ = self._new_server(ctx)
        if st.data.answered >= 200:
            return False    # nothing follows a final response, not even a provisional one
        self._local_reply(st, code, reason, headers)
        return True

    # -- relaying --------------------------------------------------------------------------
    def t_relay(self, ctx, host=None, port=None, proto=None):
        msg = ctx.msg
        if msg.method == "ACK":
            # an ACK for a 2xx is its own transaction and never answered: forward statelessly
            if self.watchers:
                now = self.core.now()
                for w in self.watchers:
                    w.request(None, ctx, now)
            return 1 if self.core.forward_stateless(ctx, proto, host, port) else -1
        if msg.method == "CANCEL":
            return self._relay_cancel(ctx, host, port, proto)
        if ctx.transaction is None and self.unanswered >= self.params["max_transactions"]:
            return self._shed(ctx)
        st, _ = self._new_server(ctx)
        rc = st.data
        first = not rc.relayed
        if not first and ctx.route_type != FAILURE_ROUTE:
            log.limited(("relay-twice", ctx.msg.call_id), log.WARN,
                        "t_relay called twice for one request outside failure_route: ignored")
            return -1
        if rc.answered >= 200:
            log.limited(("relay-answered", ctx.msg.call_id), log.WARN,
                        "t_relay after a final reply to the request: ignored")
            return -1
        if rc.cancelled:
            return -1       # RFC 3261 16.10: a cancelled request gets no new branches
        refused = forward.check_forwardable(msg)
        if refused is not None:
            self._local_reply(st, refused[0], refused[1], refused[2])
            return -1
        if first:
            rc.relayed = True
            rc.max_forwards = msg.max_forwards
            if self.watchers:
                now = self.core.now()
                for w in self.watchers:
                    w.request(st, ctx, now)
            if msg.method == "INVITE" and st.status == 0:
                # RFC 3261 16.2 / 17.2.1: 100 Trying at once, so the UAC stops retransmitting
                self._local_reply(st, 100, "Trying")
        # (URI, next hop, the URI parsed when the context has it already)
        targets = [(b.uri, b.dst_uri, None) for b in ctx.branches]
        if ctx.ruri_new:
            targets.insert(0, (ctx.ruri, ctx.dst_uri, ctx.uri))
        ctx.branches = []
        if not targets:
            log.limited(("no-branch", msg.call_id), log.NOTICE,
                        "t_relay: no destination (the R-URI was tried already; rewrite it or "
                        "append_branch first)")
            return -1
        ctx.forwarded = True
        if ctx.hold:
            # the request waits (its SDP for an external relay's ports, proxy/hold.py): its
            # branches go when it is released; retransmissions are absorbed meanwhile
            self._after_hold(rc, ctx.hold, lambda: self._branches_out(
                rc, ctx, targets, host, port, proto) > 0)
            return 1
        if not self._branches_out(rc, ctx, targets, host, port, proto):
            if rc.answered < 200 and rc.all_final() and not rc.in_failure:
                self._finish(rc)    # nowhere to send it: answer with why
            return -1
        return 1

    def _branches_out(self, rc, ctx, targets, host, port, proto):
        """Send ``ctx``'s request to each target, through the branch_route if armed; how many
        went (or wait for a hold of their branch_route's)."""
        msg = ctx.msg
        inbound = ctx.source.local
        rest = _prepared(rc, msg)
        sent = 0
        for uri, dst, parsed in targets:
            branch_msg, branch_rest = msg, rest
            if rc.branch_route is not None:
                bctx = self._run_branch_route(rc, ctx, uri, dst)
                if bctx is None:
                    continue        # the branch_route dropped it
                branch_msg, uri, dst, parsed = bctx.msg, bctx.ruri, bctx.dst_uri, bctx.uri
                if bctx.hold:
                    self._after_hold(rc, bctx.hold, lambda m=branch_msg, u=uri, d=dst, p=parsed:
                                     self._send_branch(
                                         rc, m, u, d, _prepared(rc, m),
                                         host, port, proto, p, inbound))
                    sent += 1
                    continue
                branch_rest = _prepared(rc, branch_msg)
            if self._send_branch(rc, branch_msg, uri, dst, branch_rest, host, port, proto,
                                 parsed, inbound):
                sent += 1
        return sent

    def _after_hold(self, rc, hold, send):
        """``send()`` (true when the request went) once ``hold`` is released (proxy/hold.py):
        the branch counts as pending until then (``rc.held``: no best response is chosen
        without it).  A CANCEL or a final reply meanwhile: nothing is sent."""
        rc.held += 1

        def go():
            rc.held -= 1
            self._held_done(rc, not rc.cancelled and rc.answered < 200 and send())
        hold.then(go)

    def _held_done(self, rc, sent):
        """A held branch (external relay, resolver) is done: when it did not go and nothing
        else is pending, the request is answered now."""
        if not sent and rc.answered < 200 and rc.all_final() and not rc.in_failure:
            if rc.cancelled:
                self._local_reply(rc.server, 487, "Request Terminated")   # 16.10
            else:
                self._finish(rc)

    def _shed(self, ctx, why=None):
        """Overload: a new request gets 503 with Retry-After, statelessly, and costs no memory
        (RFC 3261 21.5.4), rather than a transaction table that grows until the router runs
        out of memory."""
        self.core.stats.incr("shed")
        key = ("tm-shed", why is None)
        if why is None:
            why = f"{self.unanswered} requests waiting for an answer (max_transactions)"
        log.limited(key, log.WARN, f"overload, {why}: new requests answered 503")
        self.core.reply(ctx, 503, "Service Unavailable",
                        (("Retry-After", str(self.params["retry_after"])),))
        return -1

    def _run_branch_route(self, rc, ctx, uri, dst):
        """branch_route (t_on_branch): runs on this branch's own copy of the request; ``drop``
        there means the branch is not sent.  Returns the branch's context, or None."""
        bctx = Context(ctx.msg.copy(), ctx.source, self.core, BRANCH_ROUTE)
        bctx.new_uri, bctx.dst_uri, bctx.flags = uri, dst, ctx.flags
        bctx.transaction = ctx.transaction
        self.core.script.run(BRANCH_ROUTE, rc.branch_route, bctx)
        return None if bctx.dropped else bctx

    def _send_branch(self, rc, msg, uri, dst, rest, host, port, proto, parsed=None,
                     inbound=None):
        """Send ``msg`` to ``uri`` (text; ``parsed``: the same as a URI, when known) on a new
        client transaction; False when it could not go (the branch is then final already).
        ``inbound``: the socket the request came in on (rr's double Record-Route).  A next
        hop named by a name is located (RFC 3263) first: from the cache at once, else the
        branch waits for the resolver (counted in ``rc.held``) and goes from its callback."""
        core = self.core
        try:
            if host is not None:
                hop = (proto or "udp", host, port or (5061 if proto == "tls" else 5060))
                parts = (host, port, proto, proto == "tls")
            else:
                hop_uri = core.next_hop_uri(msg, parsed or uri, dst)
                hop = forward.uri_target(hop_uri)
                parts = None
        except ParseError as exc:
            log.limited(("badhop", uri), log.NOTICE, f"cannot route to {uri}: {exc.reason}")
            branch = BranchState(rc, uri, "", "", 0, None, b"")
            branch.final, branch.reason = exc.status, exc.reason
            rc.branches.append(branch)
            return False
        hproto, hhost, hport = hop
        method = sys.intern(msg.method)
        ip = core.address(hhost)
        if ip is not None:      # an address (the fast path): no selection to make
            listener = core.listener_for(hproto, ip)
            if listener is None:
                branch = BranchState(rc, uri, hproto, hhost, hport, None, b"")
                branch.final, branch.reason = 503, "Service Unavailable"
                rc.branches.append(branch)
                return False
            self._start_branch(rc, method, uri, rest, inbound, hproto, ip, hport, listener,
                               hhost, None, None)
            return True
        if parts is None:
            parts = forward.uri_parts(hop_uri)
        targets = core.cached_targets(*parts)
        if targets is not None:
            return self._branch_to(rc, method, uri, rest, inbound, list(targets), parts[0])
        if getattr(core, "dns", None) is None:
            return self._unresolved(rc, uri, hop, None)
        # the branch waits for the resolver: pending meanwhile (no best response is chosen
        # without it), as a branch held for an external relay (_after_hold)
        rc.held += 1

        def located(result):
            rc.held -= 1
            if rc.cancelled or rc.answered >= 200:
                sent = False
            elif result.targets:
                sent = self._branch_to(rc, method, uri, rest, inbound, list(result.targets),
                                       parts[0])
            else:
                sent = self._unresolved(rc, uri, hop, result.error)
            self._held_done(rc, sent)
        core.locate(*parts, located)
        return True

    def _unresolved(self, rc, uri, hop, error):
        """The branch to a name that did not resolve: final, 478 or 503 (locate's
        failure_status: a name that does not exist, or name servers that fail)."""
        status, reason = failure_status(error)
        why = error.reason if error is not None else "not resolved"
        log.limited(("unresolved", hop[1]), log.NOTICE,
                    f"cannot route to {uri}: {why} ({status} {reason})")
        branch = BranchState(rc, uri, hop[0], hop[1], hop[2], None, b"")
        branch.final, branch.reason = status, reason
        rc.branches.append(branch)
        return False

    def _branch_to(self, rc, method, uri, rest, inbound, targets, name, replace=None):
        """Start the branch on the first of ``targets`` (proto, ip, port) with a socket to
        send from; the others are kept for failover (RFC 3263 4.3).  ``replace``: the branch
        whose target failed (the new one takes its place).  False when none could go."""
        core = self.core
        while targets:
            proto, ip, port = targets.pop(0)
            listener = core.listener_for(proto, ip)
            if listener is not None:
                self._start_branch(rc, method, uri, rest, inbound, proto, ip, port, listener,
                                   name, targets or None, replace)
                return True
        branch = BranchState(rc, uri, "", name, 0, None, b"")
        branch.final, branch.reason = 503, "Service Unavailable"
        self._put_branch(rc, branch, replace)
        return False

    @staticmethod
    def _put_branch(rc, branch, replace):
        if replace is not None:
            for i, b in enumerate(rc.branches):
                if b is replace:
                    rc.branches[i] = branch
                    return
        rc.branches.append(branch)

    def _start_branch(self, rc, method, uri, rest, inbound, proto, ip, port, listener, name,
                      failover, replace=None):
        """A new client transaction for one branch: its Via (a new branch id), sent."""
        core = self.core
        self._branch_seq += 1
        branch_id = f"{self._branch_prefix}.{self._branch_seq}"
        sent_rest = rest
        if listener is not inbound and inbound is not None and core.double_rr is not None:
            sent_rest = core.double_rr(rest, inbound, listener)
        data = forward.branch_bytes(method, uri, sent_rest,
                                    forward.via_line(listener, proto, branch_id))
        branch = BranchState(rc, uri, proto, ip, port, listener, data)
        if failover is not None:
            branch.failover = (failover, rest, inbound, name)
        now = core.now()
        ct = ClientTransaction(method, branch_id, data, proto != "udp", now,
                               fr_timer=rc.fr_timer or self.fr_timer,
                               fr_inv_timer=rc.fr_inv_timer or self.fr_inv_timer, data=branch)
        branch.client = ct
        self._put_branch(rc, branch, replace)
        self.table.client[client_key(branch_id, method)] = ct
        core.stats.request_out(method, len(data))
        if not (core.transport.send(proto, ip, port, data, listener) if proto != "tls" else
                core.transport.send(proto, ip, port, data, listener, server_name=name)):
            self._client_action(ct, "timeout", None)
            ct.step("error", now)
        self._schedule(ct)

    def _failover(self, branch):
        """RFC 3263 4.3: the branch's target timed out, failed to send, or answered 503
        before any provisional: a new client transaction to the next target takes the
        branch's place (the failure is not relayed).  False when there is none to try."""
        rc = branch.rc
        if branch.failover is None or branch.cancelled or rc is None or rc.cancelled \
                or rc.answered >= 200:
            return False
        targets, rest, inbound, name = branch.failover
        branch.failover = None
        log.limited(("failover", name), log.INFO,
                    f"{name}: {branch.ip}:{branch.port} failed, trying the next target")
        self.core.stats.incr("dns_failover")
        if not self._branch_to(rc, branch.client.method, branch.uri, rest, inbound,
                               targets, name, branch):
            self._branch_final(rc, None)    # no socket for any of them: final (503)
        return True

    def _relay_cancel(self, ctx, host, port, proto):
        """RFC 3261 16.10: answer the CANCEL, cancel every pending branch; the INVITE gets 487
        when the branches answer."""
        msg = ctx.msg
        st = self.table.server.get(server_key(msg, "INVITE"))
        if st is None:
            # no transaction to cancel: forward statelessly (16.10)
            return 1 if self.core.forward_stateless(ctx, proto, host, port) else -1
        self.core.reply(ctx, 200, "OK")
        if self.watchers:
            now = self.core.now()
            for w in self.watchers:
                w.request(None, ctx, now)
        rc = st.data
        rc.cancelled = True
        for branch in rc.pending():
            self._cancel_branch(branch)
        return 1

    def _cancel_branch(self, branch):
        ct = branch.client
        if ct is None or branch.cancelled or branch.final:
            return
        branch.cancelled = True
        if ct.state != "proceeding":
            # 9.1: no provisional yet; the CANCEL waits (a timeout ends the branch otherwise)
            return
        data = build_cancel(branch.sent)
        cancel = ClientTransaction("CANCEL", ct.branch, data, branch.proto != "udp",
                                   self.core.now(), fr_timer=self.fr_timer)
        self.table.client[client_key(ct.branch, "CANCEL")] = cancel
        self.core.stats.request_out("CANCEL", len(data))
        self.core.transport.send(branch.proto, branch.ip, branch.port, data, branch.listener)
        self._schedule(cancel)
        for action in ct.step("cancel_sent", self.core.now()):
            self._client_action(ct, action, None)
        self._schedule(ct)

    # -- replies ---------------------------------------------------------------------------
    def on_reply(self, msg, source):
        """A response whose top Via is ours; False if no transaction of ours knows it."""
        try:
            key = client_key(msg.top_via.branch, msg.cseq.method)
        except ParseError:
            return False
        ct = self.table.client.get(key)
        if ct is None:
            return False
        branch = ct.data
        actions = ct.receive(msg.status, self.core.now())
        for action in actions:
            self._client_action(ct, action, msg, source)
        if ct.status >= 200 and ct.request is not None:
            # final: the request is never retransmitted again (only an ACK, built from
            # branch.sent, answers a repeated non-2xx final to an INVITE)
            ct.request = None
            if branch is not None and ct.method != "INVITE":
                branch.sent = None
        if branch is not None and msg.status < 200:
            # the target answers: no failover to another one from now on (RFC 3263 4.3)
            branch.failover = None
        if branch is not None and ct.status >= 100 and ct.state == "proceeding" \
                and branch.cancelled:
            # the CANCEL that waited for a provisional (9.1) can go now
            branch.cancelled = False
            self._cancel_branch(branch)
        self._schedule(ct)
        return True

    def _client_action(self, ct, action, msg, source=None):
        branch = ct.data
        if branch is None:          # our own CANCEL: its responses end here
            return
        if branch.rc is None:       # a request serlite made itself (t_uac)
            self._own_action(ct, branch, action, msg)
            return
        if action == "retransmit":
            self.core.transport.send(branch.proto, branch.ip, branch.port, ct.request,
                                     branch.listener)
        elif action == "send_ack":
            ack = build_ack(branch.sent, msg)
            self.core.transport.send(branch.proto, branch.ip, branch.port, ack, branch.listener)
        elif action == "cancel":
            self._cancel_branch(branch)
        elif action == "timeout":
            if not branch.final:
                if branch.failover is not None and self._failover(branch):
                    branch.final = 408      # replaced by the next target's branch
                    return
                branch.final, branch.reason = 408, "Request Timeout"
                self._branch_final(branch.rc, branch)
        elif action == "up":
            self._reply_up(ct, branch, msg, source)

    def _reply_up(self, ct, branch, msg, source):
        rc = branch.rc
        status = msg.status
        # onreply routes: the plain one sees every reply, t_on_reply's the ones of this request
        script = self.core.script
        hold = None
        if rc.reply_route is not None or script.has_route(ONREPLY_ROUTE, "0"):
            reply_ctx = Context(msg, source, self.core, ONREPLY_ROUTE)
            if script.run_reply(reply_ctx) == 0 or reply_ctx.dropped:
                if status < 200:
                    return
            if rc.reply_route is not None:
                script.run(ONREPLY_ROUTE, rc.reply_route, reply_ctx)
                if reply_ctx.dropped and status < 200:
                    return
            hold = reply_ctx.hold   # its SDP waits for an external relay (proxy/hold.py)
        if status < 200:
            if status > 100 and rc.answered < 200:
                self._relay(rc, msg, hold)  # 16.7 step 5: provisional responses go up at once
            return
        if status == 503 and branch.failover is not None and self._failover(branch):
            branch.final = 503      # RFC 3263 4.3: the next target's branch took its place
            return
        branch.final = status
        branch.response = msg
        if status < 300:
            # 16.7 step 5: every 2xx is forwarded at once; 16.7 step 10: cancel the rest
            rc.answered = max(rc.answered, status)
            if rc.ctx is not None:      # None: a 2xx of another branch went up already
                rc.ctx.replied = True
            self._relay(rc, msg, hold)
            for other in rc.pending():
                self._cancel_branch(other)
            return
        if status >= 600:
            for other in rc.pending():   # 16.7 step 5: a 6xx ends the search
                self._cancel_branch(other)
        self._branch_final(rc, branch)

    def _branch_final(self, rc, branch):
        if not rc.all_final() or rc.answered >= 200:
            return
        self._finish(rc)

    def _finish(self, rc):
        """All branches are final and none was a 2xx: the armed failure_route (which may relay
        to new branches, and arm itself again), then the best response goes upstream."""
        if self.watchers:
            now = self.core.now()
            for w in self.watchers:
                w.failure(rc.server, now)
        best = None
        for _ in range(MAX_FAILURE_ROUNDS):
            best = best_response(rc.branches)
            if best is None or rc.failure_route is None:
                break
            route, rc.failure_route = rc.failure_route, None
            ctx = rc.ctx
            # the failure route sees the request as t_relay sent it ($ru included: the first
            # branch's URI); the destination set starts empty
            ctx.route_type = FAILURE_ROUTE
            ctx.branches = []
            ctx.ruri_new = False    # tried already: t_relay uses it again only if rewritten
            ctx.reply, ctx.reply_status = best.response, best.final
            rc.in_failure = True
            try:
                self.core.script.run(FAILURE_ROUTE, route, ctx)
            finally:
                rc.in_failure = False
                ctx.route_type = REQUEST_ROUTE
            if rc.answered >= 200 or not rc.all_final():
                return      # the failure route replied, or new branches are under way
        if best is None:
            if not rc.branches and rc.answered < 200:
                # no branch left to answer with (uac_auth took the challenge's, and the
                # failure_route relayed nothing): the caller must not wait forever
                self._local_reply(rc.server, 500, "Server Internal Error")
            return
        if best.response is not None and best.final != 503:
            self._relay(rc, best.response)
            return
        status, reason = best.final, best.reason or "Request Timeout"
        if rc.cancelled:
            status, reason = 487, "Request Terminated"     # RFC 3261 16.10
        elif status == 503 and reason != _DNS_FAILED:
            # 16.7 step 6: a 503 becomes 500 upstream.  Not our own resolver's failure:
            # that one is this proxy's condition, which 503 says (RFC 3263 4.3 lets the
            # caller try elsewhere)
            status, reason = 500, "Server Internal Error"
        self._local_reply(rc.server, status, reason)

    def _relay(self, rc, msg, hold=None):
        status = msg.status
        if status >= 200:
            rc.answered = max(rc.answered, status)
        if hold is not None or rc.held_up:
            self._queue_up(rc, hold, lambda: self._relay_now(rc, msg))
            return
        self._relay_now(rc, msg)

    def _queue_up(self, rc, hold, send):
        """A response for upstream that waits for ``hold`` (its SDP: proxy/hold.py), or one
        behind such a response: they go in the order they came (a 180 never after the 200),
        and the server transaction keeps what went, rewritten, for its retransmissions."""
        entry = [hold is None, send]
        if rc.held_up is None:
            rc.held_up = []
        rc.held_up.append(entry)
        if hold is None:
            return self._drain_up(rc)

        def ready():
            entry[0] = True
            self._drain_up(rc)
        hold.then(ready)

    def _drain_up(self, rc):
        queue = rc.held_up
        while queue and queue[0][0]:
            send = queue.pop(0)[1]
            send()
        if not queue:
            rc.held_up = None

    def _relay_now(self, rc, msg):
        status = msg.status
        msg.remove_first_value("Via")
        if rc.reply_headers:    # what uac changed on the branches, back as the caller sent it
            for name, value in rc.reply_headers.items():
                msg.set_header(name, value(msg) if callable(value) else value)
        data = msg.to_bytes()
        if self.watchers:
            self._tell_response(rc.server, status, msg.reason, msg)
        self._respond(rc.server, status, data)

    # -- requests of serlite's own (Kamailio's t_uac) ---------------------------------------
    def t_uac(self, method, ruri, rest, hop, callback):
        """Send a non-INVITE request serlite makes itself (uac's REGISTER) on a client
        transaction of its own: ``rest`` is its header lines and body as bytes, without Via
        (ours goes on top, with a branch of tm's, so the responses come back here); ``hop``
        (proto, host, port) where it goes, or a URI (its host located by RFC 3263: SRV when
        it names no port; the first target).  ``callback(status, msg)`` is called from the
        loop for each response (``msg`` the Response), or once with 408 and None when none
        came (timer F, fr_timer), 478 (503: the name servers failed) when ``host`` does not
        resolve, 503 when there is no socket to send from.  Returns the branch id."""
        if method in ("INVITE", "ACK", "CANCEL"):
            raise ValueError(f"t_uac sends no {method}")
        core = self.core
        if isinstance(hop, tuple):
            proto, host, port = hop
            parts = (host, port, proto, proto == "tls")
        else:       # a URI: a name in it is located as RFC 3263 says (SRV when no port)
            proto, host, port = forward.uri_target(hop)
            parts = forward.uri_parts(hop)
        self._branch_seq += 1
        branch_id = f"{self._branch_prefix}.{self._branch_seq}"
        ip = core.resolve(host) if isinstance(hop, tuple) else core.address(host)
        if ip is not None:
            targets = [(proto, ip, port)]
        elif getattr(core, "dns", None) is not None:
            targets = core.cached_targets(*parts)
            if targets is None:     # sent from the resolver's callback
                core.locate(*parts, lambda result: self._uac_send(
                    method, ruri, rest, result.targets, parts[0], branch_id, callback,
                    result.error))
                return branch_id
        else:
            targets = []
        self._uac_send(method, ruri, rest, targets, parts[0], branch_id, callback, None)
        return branch_id

    def _uac_send(self, method, ruri, rest, targets, name, branch_id, callback, error):
        """t_uac's request on its way to the first target with a socket to send from; the
        others kept for failover (RFC 3263 4.3: a timeout, a send error or a 503)."""
        core = self.core
        status = 503 if targets else failure_status(error)[0]      # should none go
        targets = list(targets)
        while targets:
            proto, ip, port = targets.pop(0)
            listener = core.listener_for(proto, ip)
            if listener is None:
                continue
            data = forward.branch_bytes(method, ruri, rest,
                                        forward.via_line(listener, proto, branch_id))
            branch = OwnBranch(proto, ip, port, listener, data, callback)
            if targets:
                branch.failover = (targets, method, ruri, rest, name)
            ct = ClientTransaction(sys.intern(method), branch_id, data, proto != "udp",
                                   core.now(), fr_timer=self.fr_timer, data=branch)
            branch.client = ct
            self.table.client[client_key(branch_id, ct.method)] = ct
            core.stats.request_out(ct.method, len(data))
            if not (core.transport.send(proto, ip, port, data, listener) if proto != "tls" else
                    core.transport.send(proto, ip, port, data, listener, server_name=name)):
                branch.final = 503
                ct.step("error", core.now())
                self._schedule(ct)
                if targets:
                    self._branch_seq += 1
                    branch_id = f"{self._branch_prefix}.{self._branch_seq}"
                    continue
                core.loop.call_at(core.now(), lambda: _call_back(callback, 503, None))
                return
            self._schedule(ct)
            return
        # never from inside the caller's own call: from the loop, as a response would be
        core.loop.call_at(core.now(), lambda: _call_back(callback, status, None))

    def _uac_failover(self, branch):
        """The next target of a request of serlite's own (its callback hears nothing of the
        failed one).  False when there is none."""
        if branch.failover is None:
            return False
        targets, method, ruri, rest, name = branch.failover
        branch.failover = None
        log.limited(("failover", name), log.INFO,
                    f"{name}: {branch.ip}:{branch.port} failed, trying the next target")
        self.core.stats.incr("dns_failover")
        self._branch_seq += 1
        self._uac_send(method, ruri, rest, targets, name,
                       f"{self._branch_prefix}.{self._branch_seq}", branch.callback, None)
        return True

    def _own_action(self, ct, branch, action, msg):
        if action == "retransmit":
            self.core.transport.send(branch.proto, branch.ip, branch.port, ct.request,
                                     branch.listener)
        elif action == "up":
            if msg.status >= 200:
                branch.final = msg.status
                if msg.status == 503 and self._uac_failover(branch):
                    return
            _call_back(branch.callback, msg.status, msg)
        elif action == "timeout" and not branch.final:
            branch.final = 408
            if not self._uac_failover(branch):
                _call_back(branch.callback, 408, None)

    # -- script hooks ----------------------------------------------------------------------
    def _rc(self, ctx):
        st = ctx.transaction
        if st is None:
            st, _ = self._new_server(ctx)
        return st.data

    def t_on_failure(self, ctx, route):
        self._rc(ctx).failure_route = route
        return 1

    def t_on_reply(self, ctx, route):
        self._rc(ctx).reply_route = route
        return 1

    def t_on_branch(self, ctx, route):
        self._rc(ctx).branch_route = route
        return 1

    def t_set_fr(self, ctx, fr_inv, fr=None):
        rc = self._rc(ctx)
        rc.fr_inv_timer = fr_inv / 1000.0
        if fr is not None:
            rc.fr_timer = fr / 1000.0
        return 1

    def t_check_status(self, ctx, regex):
        """True if the reply status matches: the winning final status in failure_route, the
        reply's in onreply_route."""
        if ctx.route_type == FAILURE_ROUTE:
            status = ctx.reply_status
        elif ctx.route_type == ONREPLY_ROUTE:
            status = ctx.msg.status
        else:
            return -1
        return 1 if regex.search(str(status)) else -1

    def t_was_cancelled(self, ctx):
        st = ctx.transaction
        return 1 if st is not None and st.data.cancelled else -1

    def t_load_contacts(self, ctx):
        """Serial forking: put the destination set aside, grouped by q-value (highest first);
        ``t_next_contacts`` takes the next group.  With one q-value there is nothing to do."""
        targets = [(ctx.ruri, ctx.q, ctx.dst_uri)] + [(b.uri, b.q, b.dst_uri)
                                                        for b in ctx.branches]
        if len({q for _, q, _ in targets}) < 2:
            return 1
        targets.sort(key=lambda t: -(t[1] if t[1] is not None else -1))
        groups = []
        for target in targets:
            if groups and groups[-1][0][1] == target[1]:
                groups[-1].append(target)
            else:
                groups.append([target])
        self._rc(ctx).contact_groups = groups
        ctx.branches = []
        return 1

    def t_next_contacts(self, ctx):
        """The next q-group of ``t_load_contacts`` becomes the destination set; false if none
        is left."""
        st = ctx.transaction
        if st is None or not st.data.contact_groups:
            return -1
        group = st.data.contact_groups.pop(0)
        (uri, q, dst), rest = group[0], group[1:]
        ctx.set_ruri(uri)
        ctx.q, ctx.dst_uri = q, dst
        ctx.branches = [Branch(u, bq, d) for u, bq, d in rest]
        return 1

    def t_relay_to_udp(self, ctx, host, port):
        return self.t_relay(ctx, host, port, "udp")

    def t_relay_to_tcp(self, ctx, host, port):
        return self.t_relay(ctx, host, port, "tcp")

    def t_relay_to_tls(self, ctx, host, port):
        return self.t_relay(ctx, host, port, "tls")

    def t_relay_args(self, ctx, host=None, port=None):
        return self.t_relay(ctx, host, port)


EXPORTS = ModuleSpec(
    name="tm",
    doc="The transaction-stateful proxy (RFC 3261 16, 17): relay, timers, failure/reply routes.",
    factory=Tm,
    functions=(
        Function("t_relay", "t_relay_args", (0, 2), _REQ_FAIL, lambda m, a, s:
                 _fix_relay_to(m, a, s) if a else (),
                 "relay statefully (to the R-URI or host, port)"),
        Function("t_relay_to_udp", "t_relay_to_udp", (2,), _REQ_FAIL, _fix_relay_to,
                 "t_relay over UDP"),
        Function("t_relay_to_tcp", "t_relay_to_tcp", (2,), _REQ_FAIL, _fix_relay_to,
                 "t_relay over TCP"),
        Function("t_relay_to_tls", "t_relay_to_tls", (2,), _REQ_FAIL, _fix_relay_to,
                 "t_relay over TLS (the tls module)"),
        Function("t_reply", "t_reply", (2,), _REQ_FAIL, fix_reply, "reply statefully",
                 dynamic=True),
        Function("t_newtran", "t_newtran", (0,), REQUEST_ROUTE,
                 doc="create the transaction now; false for an ACK"),
        Function("t_on_failure", "t_on_failure", (1,), _REQ_FAIL, _fix_route(FAILURE_ROUTE),
                 "run failure_route[n] when all branches failed"),
        Function("t_on_reply", "t_on_reply", (1,), _REQ_FAIL, _fix_route(ONREPLY_ROUTE),
                 "run onreply_route[n] on each reply"),
        Function("t_on_branch", "t_on_branch", (1,), _REQ_FAIL, _fix_route(BRANCH_ROUTE),
                 "run branch_route[n] for each branch"),
        Function("t_set_fr", "t_set_fr", (1, 2), _REQ_FAIL, _fix_fr,
                 "this request's fr_inv_timer[, fr_timer] in ms"),
        Function("t_check_status", "t_check_status", (1,), FAILURE_ROUTE | ONREPLY_ROUTE,
                 _fix_status_re, "true if the reply status matches the regular expression"),
        Function("t_was_cancelled", "t_was_cancelled", (0,), FAILURE_ROUTE | ONREPLY_ROUTE,
                 doc="true if the UAC cancelled the request"),
        Function("t_load_contacts", "t_load_contacts", (0,), _REQ_FAIL,
                 doc="serial forking: group the destination set by q"),
        Function("t_next_contacts", "t_next_contacts", (0,), _REQ_FAIL,
                 doc="the next q-group becomes the destination set; false when none is left"),
    ),
    params={
        "fr_timer": Param(int, 30000, "ms to wait for a first response (seconds if < 300)",
                          min=1, max=3600000),
        "max_transactions": Param(int, 2000, "this many requests waiting for an answer: new "
                                             "ones get 503 (overload)",
                                  min=1, max=1000000),
        "retry_after": Param(int, 5, "seconds in the Retry-After of an overload 503",
                             min=0, max=86400),
        "shed_backlog": Param(int, 50, "% of a UDP socket's receive buffer filled with unread "
                                       "datagrams past which new INVITE/REGISTER/SUBSCRIBE/"
                                       "MESSAGE/PUBLISH get 503 before the script (0: never)",
                              min=0, max=100),
        "fr_inv_timer": Param(int, 120000, "ms to wait for a final response to INVITE after a "
                                            "provisional (seconds if < 300)",
                              min=1, max=3600000),
        "dialog_timeout": Param(int, 43200, "seconds a call is tracked at most when no BYE "
                                            "ends it (Kamailio dialog's default_timeout)",
                                min=60, max=30 * 86400),
        "max_dialogs": Param(int, 10000, "calls tracked at once at most (about 0.5 kB each); "
                                         "past it a new call is relayed but not tracked",
                             min=1, max=1000000),
    },
    depends=("sl",),
)
