"""rtpproxy: SER's and Kamailio's interface to a media relay: the one built into serlite's loop
(serlite.relay, serlite.media), or an external one (rtpproxy, rtpengine) named by
``rtpproxy_sock``: calls whose audio crosses the router's NAT.

Script functions (Kamailio's names and meanings):

* ``rtpproxy_offer([flags])`` -- the message's SDP (an offer) is learnt for the side that sent
  it and rewritten to point at the relay's ports facing the other side; on an initial INVITE
  this opens the call's relay session.  ``rtpproxy_answer([flags])`` -- the same for the SDP
  that answers it (a 1xx/2xx, or the ACK of a late offer); it opens nothing.
* ``rtpproxy_manage([flags])`` -- what to do from the message: an INVITE (UPDATE, PRACK) with
  SDP offers (an initial INVITE without SDP is noted: the offer of its 18x/2xx opens the
  session, and the ACK's SDP answers it), an ACK with SDP or a 1xx/2xx with SDP answers, a
  BYE (of the call's last fork) or CANCEL, a failure_route, or a final >= 300 to the INVITE
  of a call not answered yet closes the session (with tm: that branch's fork, see below).
* ``unforce_rtp_proxy()``, ``rtpproxy_destroy()`` -- close the call's session now.
* ``force_rtp_proxy([flags])`` -- SER 0.9's: offer on a request, answer on a reply.

Flags (Kamailio's letters): ``r`` trust the SDP's address (without it the SIP message's source
address is used with the SDP's port, and only packets from that address or the SDP's latch: a
NATed phone names a private address, a provider's media server is not its SIP proxy), ``a`` asymmetric (no latching: send where the SDP says), ``w``
symmetric (the default), ``o`` rewrite the ``o=`` address too, ``f`` relay even an SDP marked
``a=nortpproxy:yes``, ``i``/``e`` (internal/external, in the SDP's direction: an external
relay's interfaces; the built-in relay takes each side's address from its interface, the
listener the INVITE came in on for the caller, the one it leaves by for the callee).

Forked calls (serlite.media.session): each branch that answers with SDP (its To tag) gets
legs of its own facing the caller, so the caller's media for the early dialog or answer it
took reaches that phone; a branch's final >= 300 closes its legs (with tm; without it, the
session), the tracker's CONFIRMED closes those of every branch that sent no 2xx, and a BYE
closes its dialog's (the session with the last).  At most MAX_FORKS branches a call.

The session lives as long as the call: besides the cases above it is closed when tm's dialog
tracker says the call ended (BYE, the INVITE transaction ended unanswered, the dialog expired)
and after ``rtp_timeout`` seconds of silence on every leg, which also ends an answered call
in the tracker (both phones are gone: no BYE will come).

**An external relay** (``modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1:7722")``, or
``udp6:[::1]:7722``; one socket: Kamailio's several sockets, weights and sets, and rtpproxy's
``unix:`` stream socket, are config errors) is asked over the rtpproxy control protocol
(serlite.media.rtpp; rtpengine's ``--listen-udp``) through one non-blocking socket in the loop
(serlite.extrelay).  The script functions keep their meaning: an offer sends ``U`` (per relayed
stream, the sender's address -- the SIP source's unless flag ``r`` -- and port), an answer
``L``, and BYE, CANCEL, a failure, unforce and the dialog's end ``D``; flags ``i``/``e`` become
the command's direction (``ie``: from the internal network to the external one; rtpengine
picks its interfaces named ``internal``/``external``), ``a`` asymmetric.  Kamailio waits for
the relay's reply; serlite may not (one loop): the function registers the rewrite as a hold on
the message's context (serlite.proxy.hold) and returns 1 at once, the script goes on, and what
would send the message -- tm's branches (each client transaction starts when its request
really goes), a response relayed upstream (kept rewritten by the server transaction for its
retransmissions, in the order the responses came), a stateless forward -- waits for it.  When
the relay answers, the SDP is rewritten to its address and ports and the message goes.  When
it does not within ``rtpproxy_tout`` s per try, ``rtpproxy_retr`` tries (or says ``E<n>``, or
refuses: nothing listens), the message goes unchanged (as Kamailio's script goes on),
counted in ``rtpp_unrelayed`` and logged (rate-limited; an answer for a call the relay
does not carry, port 0, is no fault: a script may ask for every reply), and the relay is
left alone for
``rtpproxy_disable_tout`` s: meanwhile nothing waits.  A ``D`` waits for nothing.  A
retransmitted request is absorbed by its transaction meanwhile; a CANCEL ends a held INVITE
with 487 and nothing is sent down.  At start ``V`` and ``VF`` are sent and their answers
logged.  The calls sent to the relay are remembered (Call-ID, From tag, up to
``rtp_max_sessions``, the oldest forgotten first) only to send ``D`` when the dialog ends
without the script saying so; their packets are the relay's to count.
"""

from .. import log
from ..dialog.tracker import BY_BYE, CONFIRMED, ID_MAX, TERMINATED
from ..extrelay import ExternalRelay
from ..media import rtpp
from ..media import sdp as media_sdp
from ..media.session import CALLEE, CALLER
from ..proxy.hold import hold
from ..relay import ONE_WAY_AFTER, Relay, RelayFull
from ..sip.sdp import is_null_address
from ..sip import sdp
from ..sip.errors import ParseError
from .export import (BRANCH_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE, REQUEST_ROUTE, Function,
                     Module, ModuleSpec, Param)

_ROUTES = REQUEST_ROUTE | ONREPLY_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE
_FLAGS = "aefiorw"
NORTPPROXY = b"a=nortpproxy:yes"


def _fix_flags(module, args, script):
    flags = str(args[0]) if args else ""
    bad = sorted(set(flags) - set(_FLAGS))
    if bad:
        raise ValueError(f"rtpproxy flag{'s' if len(bad) > 1 else ''} "
                         f"{', '.join(repr(b) for b in bad)} not supported (these are: "
                         f"{', '.join(_FLAGS)})")
    if "a" in flags and "w" in flags:
        raise ValueError("rtpproxy flags 'a' (asymmetric) and 'w' (symmetric) exclude "
                         "each other")
    return (flags,)


def _body(msg):
    body = msg.body
    if not body or not sdp.is_sdp(msg.get("Content-Type")):
        return None
    return body


def _unspecified(ip):
    return ip in ("0.0.0.0", "::")


def _tags(msg):
    """(Call-ID, From tag) of a message, or None when it has neither."""
    try:
        call_id, tag = msg.call_id, msg.from_.tag
    except (ParseError, AttributeError):
        return None
    if not call_id or not tag:
        return None
    return call_id, tag


def _to_tag(msg):
    try:
        return msg.to.tag
    except (ParseError, AttributeError):
        return None


def _tag_of(session, tag):
    """The fork a tracker's To tag names (the tracker cuts tags at ID_MAX characters; a 2xx
    without one is the fork "", as ``_rewrite`` names it)."""
    if tag is None:
        return ""
    if tag in session.forks or len(tag) < ID_MAX:
        return tag
    return next((t for t in session.forks if t[:ID_MAX] == tag), tag)


class _ExtCall:
    """A call whose media an external relay carries, as far as we need to know it: to
    delete its session when the dialog ends without the script saying so."""

    __slots__ = ("from_tag", "answered")

    def __init__(self, from_tag):
        self.from_tag = from_tag
        self.answered = False


class _Rewrite:
    """One SDP waiting for the external relay's answers, one per relayed stream: then
    rewritten (or, if any failed, left as it was) and its message released."""

    __slots__ = ("module", "ctx", "body", "ports", "ip", "left", "failed", "hold", "origin",
                 "unknown")

    def __init__(self, module, ctx, body, nstreams, origin):
        self.module = module
        self.ctx = ctx
        self.body = body
        self.ports = [None] * nstreams
        self.ip = None
        self.left = 0
        self.failed = None
        self.hold = None
        self.origin = origin
        self.unknown = False    # the relay carries no such call: nothing to rewrite, no fault

    def answer(self, index, tokens):
        self.left -= 1
        if tokens is None:
            self.failed = self.failed or "no answer"
        elif tokens[:1] == [b"0"]:
            # a lookup of a call the relay does not carry (rtpengine: "0 0.0.0.0"): the answer
            # of a call not relayed, when the script asks for every reply (Kamailio's too)
            self.unknown = True
            self.failed = self.failed or "the relay has no such session"
        elif self.failed is None:
            try:
                ip, port = rtpp.media_address(tokens, self.module.external.ip)
            except rtpp.RtppError as exc:
                self.module.core.stats.counters["rtpp_errors"] += 1
                self.failed = str(exc)
            else:
                self.ports[index] = port
                self.ip = self.ip or ip
        if self.left == 0 and self.hold is not None:
            self.finish()

    def finish(self):
        msg = self.ctx.msg
        if self.failed is None:
            new = media_sdp.relay_body(self.body, self.ip, self.ports, origin=self.origin)
            if new != self.body:
                msg.set_body(new)
        elif self.unknown:
            log.debug(f"rtpproxy: {msg.call_id[:80]!r}: the relay has no session for it")
        else:
            self.module.unrelayed(msg, self.failed)
        self.hold.release()


class Rtpproxy(Module):
    name = "rtpproxy"

    def __init__(self, params):
        super().__init__(params)
        sock = str(params["rtpproxy_sock"]).strip()
        self.sock = rtpp.parse_sock(sock) if sock else None     # ValueError: config error
        self.external = None        # ExternalRelay when rtpproxy_sock names one
        self.calls = {}             # external: Call-ID -> _ExtCall (bounded, oldest first)
        if params["rtp_port_min"] + 1 > params["rtp_port_max"]:
            raise ValueError(f"rtp_port_min {params['rtp_port_min']} must be below "
                             f"rtp_port_max {params['rtp_port_max']}")
        self.relay = None
        self.tracker = None
        self._adopted = False
        self._hook_before = None
        # late offers (RFC 3261 13.2.1: an INVITE without SDP, the offer comes in the 2xx or
        # 18x, the answer in the ACK): Call-ID -> (From tag, caller's address, callee's),
        # noted at the INVITE for the reply that opens the session; bounded by max sessions
        self.late = {}

    def start(self, core, previous=None):
        super().start(core, previous)
        if self.sock is not None or getattr(previous, "external", None) is not None:
            self._start_external(core, previous)
            if self.sock is not None:
                return
        p = self.params
        old = getattr(previous, "relay", None)
        if old is not None:     # SIGHUP: the calls' media go on through the same sockets
            self.relay = old
            old.max_sessions, old.timeout = p["rtp_max_sessions"], float(p["rtp_timeout"])
            if (old.pool.low, old.pool.high) != (p["rtp_port_min"] + (p["rtp_port_min"] & 1),
                                                 p["rtp_port_max"]):
                log.notice("rtpproxy: the new RTP port range is used after a restart")
        else:
            self.relay = Relay(core.loop, core.stats, p["rtp_port_min"], p["rtp_port_max"],
                               p["rtp_max_sessions"], p["rtp_timeout"])
        self._adopted = old is not None
        # the running config's hook, given back if this start is a failed reload's
        self._hook_before = self.relay.on_timeout
        self.relay.on_timeout = self._silent
        tm = core.module("tm")
        if tm is not None:
            self.tracker = tm.dialog_tracker()
            self.tracker.subscribe(self._dialog_changed)
            # a call rings (in silence, without early media) as long as tm's INVITE may wait
            # for its answer; the tracker closes its session when that ends (32 s: timer B's
            # slack for the last provisional's branch)
            self.relay.ringing = tm.fr_inv_timer + 32.0

    def _start_external(self, core, previous):
        """The external relay's socket: kept at SIGHUP when it names the same one."""
        p = self.params
        old = getattr(previous, "external", None)
        if old is not None and self.sock is not None and str(old) == str(self.sock):
            self.external = old
            old.timeout, old.tries = float(p["rtpproxy_tout"]), p["rtpproxy_retr"]
            old.disable_time = float(p["rtpproxy_disable_tout"])
            self.calls = previous.calls
            self._adopted = True
        else:
            if old is not None:
                old.close()
                previous.external = None
            if self.sock is None:
                return
            self.external = ExternalRelay(core.loop, core.stats, self.sock, p["rtpproxy_tout"],
                                          p["rtpproxy_retr"], p["rtpproxy_disable_tout"])
            self.external.check()
        old_relay = getattr(previous, "relay", None)
        if old_relay is not None:
            old_relay.close_all()   # the built-in relay's calls end with the switch
            previous.relay = None
        tm = core.module("tm")
        if tm is not None:
            self.tracker = tm.dialog_tracker()
            self.tracker.subscribe(self._dialog_changed)

    def stop(self):
        if self.tracker is not None:
            self.tracker.unsubscribe(self._dialog_changed)
        if self.relay is not None and self.relay.on_timeout == self._silent:
            self.relay.on_timeout = self._hook_before if self._adopted else None
        # a relay taken over at SIGHUP is left alone: this stop may be a failed reload's,
        # after which the running config keeps relaying (at exit the process closes them)
        if self.relay is not None and not self._adopted:
            self.relay.close_all()
        if self.external is not None and not self._adopted:
            self.external.close()

    def _dialog_changed(self, dlg, old):
        if dlg.state not in (CONFIRMED, TERMINATED):
            return
        if self.external is not None:
            call = self.calls.get(dlg.call_id)
            if dlg.state == TERMINATED:
                self.late.pop(dlg.call_id, None)
            if call is None or call.from_tag != dlg.from_tag:
                return
            if dlg.state == CONFIRMED:
                call.answered = True
            else:
                self._delete(dlg.call_id, dlg.from_tag)
            return
        session = self.relay.get(dlg.call_id)
        if dlg.state == TERMINATED:
            self.late.pop(dlg.call_id, None)
        if session is None or session.from_tag != dlg.from_tag:
            return
        if dlg.state == CONFIRMED:
            session.answered = dlg.answered     # the one-way audio hint counts from here
            # the other forks' media ends with their branches (tm CANCELs them, 16.7 step
            # 10); one that sent a 2xx too keeps its legs until its BYE (13.2.2.4)
            for tag in session.unanswered(_tag_of(session, dlg.to_tag)):
                self.relay.drop_fork(session, tag, "not answered")
        elif dlg.ended_by == BY_BYE:
            # this dialog ended; another fork's 2xx may still be up (its UAC BYEs it,
            # 13.2.2.4): the session ends with the last fork (the script's BYE may have
            # closed this one already)
            self.relay.drop_fork(session, _tag_of(session, dlg.to_tag), "ended (bye)")
            if not session.forks:
                self.relay.close(dlg.call_id, "ended (bye)")
        else:
            self.relay.close(dlg.call_id, f"ended ({dlg.ended_by})")

    def _silent(self, session):
        """The relay closed ``session`` after rtp_timeout s of silence on every leg: an
        answered call whose phones both vanished is over (no BYE will come); tm's tracker
        ends it, so that ``ser-ctl calls`` and the page stop showing it."""
        if self.tracker is None:
            return
        dlg = self.tracker.find(session.call_id, session.from_tag)
        if dlg is not None:
            self.tracker.silence(dlg, self.core.now())

    # -- the work ---------------------------------------------------------------------------
    def _callee_ip(self, ctx):
        """The address of the listener the request leaves by (as tm will choose it).  A
        next hop named by a name not in the resolver's cache yet: None (the caller's; with
        a provider's domain, uac's REGISTERs keep it cached)."""
        core = self.core
        try:
            proto, host, _ = core.next_hop(ctx.msg, ctx.uri or ctx.ruri, ctx.dst_uri)
            ip = core.hop_ip(ctx.msg, ctx.uri or ctx.ruri, ctx.dst_uri)
        except ParseError:
            return None
        if ip is None:
            return None
        listener = core.listener_for(proto, ip)
        return listener.ip if listener is not None else None

    def _rewrite(self, ctx, flags, may_open, kind=None):
        """Learn the SDP of the side that sent ``ctx.msg`` and point it at the other side's
        legs.  1 done, -1 not (no SDP, no session, no room)."""
        if self.external is not None:
            return self._ext_rewrite(ctx, flags, may_open, kind)
        msg = ctx.msg
        body = _body(msg)
        if body is None:
            if may_open and ctx.route_type != ONREPLY_ROUTE:
                self._note_late_offer(ctx)
            return -1
        if "f" not in flags and NORTPPROXY in body.splitlines():
            return -1
        tags = _tags(msg)
        streams = media_sdp.streams(body)
        if tags is None or not any(s.port for s in streams):
            return -1       # no stream to relay (none, all refused, or malformed)
        call_id, from_tag = tags
        is_request = ctx.route_type != ONREPLY_ROUTE
        relay = self.relay
        session = relay.get(call_id)
        if session is None:
            late = self.late.pop(call_id, None) if not is_request else None
            if late is not None and late[0] == from_tag:
                caller_ip, callee_ip = late[1], late[2]     # the offer in a reply
            elif not may_open or not is_request or ctx.source is None \
                    or ctx.source.local is None:
                return -1
            else:
                caller_ip = ctx.source.local.ip
                callee_ip = self._callee_ip(ctx) or caller_ip
            if _unspecified(caller_ip) or _unspecified(callee_ip):
                log.limited(("rtpproxy-wildcard",), log.WARN,
                            "rtpproxy: call not relayed: a listener on a wildcard address "
                            "(0.0.0.0, ::) has no address to put in the SDP; listen on the "
                            "interfaces' addresses")
                return -1
            try:
                session = relay.open(call_id, from_tag, caller_ip, callee_ip,
                                     symmetric="a" not in flags)
            except RelayFull as exc:
                log.limited(("rtpproxy-full",), log.WARN, f"rtpproxy: call not relayed: {exc}")
                return -1
        side = session.side_of(from_tag, is_request)
        tag = session.fork_tag(from_tag, _to_tag(msg))
        if tag is None and side == CALLEE:
            tag = ""        # a reply without a To tag (RFC 3261 8.2.6.2 wants one)
        try:
            relay.add_streams(session, len(streams))
            if tag is not None and tag not in session.forks:
                if session.answered is not None and not is_request and msg.status < 200:
                    return -1       # a late 18x of a fork tm is cancelling: not relayed
                if len(tag) > ID_MAX:
                    raise RelayFull(f"a To tag of {len(tag)} characters")
                relay.add_fork(session, tag)
        except RelayFull as exc:
            log.limited(("rtpproxy-full",), log.WARN, f"rtpproxy: call not relayed: {exc}")
            if not session.streams:
                relay.close(call_id, "refused")
            return -1
        source_ip = None if "r" in flags or ctx.source is None else ctx.source.ip
        session.learn(side, tag, streams, source_ip)
        other = 1 - side
        ports = session.ports(other, tag)
        ports = [port if s.port else None for s, port in zip(streams, ports)]
        new = media_sdp.relay_body(body, session.local_ip[other], ports, origin="o" in flags)
        if new != body:
            msg.set_body(new)
        return 1

    def _note_late_offer(self, ctx):
        """An initial INVITE without SDP: note the addresses its reply's offer will need."""
        msg = ctx.msg
        tags = _tags(msg)
        try:
            initial = msg.method == "INVITE" and msg.to.tag is None
        except (ParseError, AttributeError):
            return
        if tags is None or not initial or ctx.source is None or ctx.source.local is None:
            return
        caller_ip = ctx.source.local.ip
        late = self.late
        late.pop(tags[0], None)
        while len(late) >= self.params["rtp_max_sessions"]:
            del late[next(iter(late))]              # the oldest goes first
        late[tags[0]] = (tags[1], caller_ip, caller_ip if self.external is not None
                         else self._callee_ip(ctx) or caller_ip)

    # -- the external relay (rtpproxy_sock) -------------------------------------------------
    def _ext_rewrite(self, ctx, flags, may_open, kind):
        """Ask the external relay for the ports of each stream (``U`` for an offer, ``L`` for
        an answer, media.rtpp) and hold the message (proxy/hold.py) until it answers; then
        its SDP is rewritten to them.  1 when asked (also if the answer fails later: the
        message then goes on unchanged, as Kamailio's script would), -1 when not relayed."""
        msg = ctx.msg
        body = _body(msg)
        is_request = ctx.route_type != ONREPLY_ROUTE
        if body is None:
            if may_open and is_request:
                self._note_late_offer(ctx)
            return -1
        if "f" not in flags and NORTPPROXY in body.splitlines():
            return -1
        tags = _tags(msg)
        streams = media_sdp.streams(body)
        if tags is None or not any(s.port for s in streams):
            return -1
        call_id, from_tag = tags
        try:
            to_tag = msg.to.tag
        except (ParseError, AttributeError):
            to_tag = None
        # the party whose SDP this is, and the other (RFC 3261 12: the tags name the sides)
        sender, other = (from_tag, to_tag) if is_request else (to_tag, from_tag)
        if not sender:
            return -1
        if kind is None:                # rtpproxy_manage, force_rtp_proxy: from the message
            if is_request:
                kind = "L" if msg.method == "ACK" else "U"
            else:
                late = self.late.get(call_id)
                kind = "U" if late is not None and late[0] == from_tag else "L"
        # a late offer (in a reply) or an initial INVITE's opens the relay's session
        opens = kind == "U" and (self.late.pop(call_id, None) is not None if not is_request
                                 else to_tag is None)
        if kind == "L" and not other:
            return -1                   # an answer names both parties
        external = self.external
        if not external.usable():
            self.unrelayed(msg, f"the relay at {external} is left alone after a failure")
            return -1
        if opens:
            self._remember(call_id, from_tag)
        rewrite = _Rewrite(self, ctx, body, len(streams), "o" in flags)
        source_ip = None if "r" in flags or ctx.source is None else ctx.source.ip
        for index, stream in enumerate(streams):
            if not stream.port:
                continue
            ip = stream.address or source_ip
            if source_ip is not None and ip is not None \
                    and not is_null_address(ip.encode("latin-1")):
                ip = source_ip      # a NATed phone's SDP names a private address
            if ip is None:
                continue
            mods = rtpp.modifiers(flags, ip)
            n = index + 1
            if kind == "U":
                def build(cookie, ip=ip, port=stream.port, mods=mods, n=n):
                    return rtpp.update(cookie, call_id, ip, port, sender, other, n, mods)
            else:
                def build(cookie, ip=ip, port=stream.port, mods=mods, n=n):
                    return rtpp.lookup(cookie, call_id, ip, port, sender, other, n, mods)
            try:
                build("x")
            except ValueError as exc:
                self.unrelayed(msg, str(exc))
                return -1
            rewrite.left += 1
            if not external.send(build, lambda tokens, i=index: rewrite.answer(i, tokens)):
                rewrite.left -= 1
                rewrite.failed = "too many commands in flight, or the relay left alone"
                break
        if rewrite.left == 0:           # nothing went: nothing to wait for
            if rewrite.failed is not None:
                self.unrelayed(msg, rewrite.failed)
            return -1
        rewrite.hold = hold(ctx)
        return 1

    def _remember(self, call_id, from_tag):
        calls = self.calls
        calls.pop(call_id, None)
        while len(calls) >= self.params["rtp_max_sessions"]:
            del calls[next(iter(calls))]        # the oldest goes first
        calls[call_id] = _ExtCall(from_tag)

    def _delete(self, call_id, from_tag, to_tag=None):
        """``D``: fire and forget (nothing waits for it); an error is worth a debug line only
        (a BYE after the dialog's end asks for a session deleted already)."""
        self.calls.pop(call_id, None)
        try:
            rtpp.delete("x", call_id, from_tag, to_tag)
        except ValueError:
            return -1

        def done(tokens):
            if tokens is not None and tokens[:1] != [b"0"]:
                log.debug(f"rtpproxy: delete of {call_id[:80]!r}: {tokens[:1]}")
        ok = self.external.send(lambda cookie: rtpp.delete(cookie, call_id, from_tag, to_tag),
                                done)
        return 1 if ok else -1

    def unrelayed(self, msg, why):
        """A message that goes on with its SDP unchanged: counted, logged (rate-limited)."""
        self.core.stats.counters["rtpp_unrelayed"] += 1
        log.limited(("rtpp-unrelayed",), log.WARN,
                    f"rtpproxy: media of {msg.call_id[:80]!r} not relayed ({why}): its SDP "
                    f"goes on unchanged")

    def rtpproxy_offer(self, ctx, flags=""):
        return self._rewrite(ctx, flags, True, "U")

    def rtpproxy_answer(self, ctx, flags=""):
        return self._rewrite(ctx, flags, False, "L")

    def force_rtp_proxy(self, ctx, flags=""):
        return self._rewrite(ctx, flags, ctx.route_type != ONREPLY_ROUTE)

    def unforce_rtp_proxy(self, ctx, flags=""):
        tags = _tags(ctx.msg)
        if tags is None:
            return -1
        if self.external is not None:
            self.late.pop(tags[0], None)
            # a reply's To tag may be a branch's the relay never heard of (a 486 without
            # SDP): rtpengine then deletes nothing (E8); the From tag alone ends the call
            to_tag = None
            if ctx.route_type != ONREPLY_ROUTE:
                try:
                    to_tag = ctx.msg.to.tag
                except (ParseError, AttributeError):
                    pass
            return self._delete(tags[0], tags[1], to_tag)
        return 1 if self.relay.close(tags[0], "unforced") is not None else -1

    def _entry(self, call_id):
        """What knows whether the call was answered: the relay's entry or the external
        call."""
        if self.external is not None:
            return self.calls.get(call_id)
        return self.relay.entry(call_id)

    def _end_fork(self, ctx, why):
        """A BYE: its fork's legs are closed, and the session with its last fork."""
        msg = ctx.msg
        tags = _tags(msg)
        session = self.relay.get(tags[0]) if tags else None
        if session is None:
            return -1
        tag = session.fork_tag(tags[1], _to_tag(msg))
        if tag in session.forks and len(session.forks) > 1:
            self.relay.drop_fork(session, tag, why)
            return 1
        if tag in session.forks or not session.forks:
            return self.unforce_rtp_proxy(ctx)
        return -1       # a dialog of this call whose media the relay does not carry

    def rtpproxy_manage(self, ctx, flags=""):
        msg = ctx.msg
        if ctx.route_type == FAILURE_ROUTE:
            return self.unforce_rtp_proxy(ctx)
        if ctx.route_type == ONREPLY_ROUTE:
            status = msg.status
            try:
                method = msg.cseq.method
            except (ParseError, AttributeError):
                return -1
            if method != "INVITE":
                return self._rewrite(ctx, flags, False) if method in ("UPDATE", "PRACK") \
                    else -1
            tags = _tags(msg)
            entry = self._entry(tags[0]) if tags else None
            if status >= 300:
                # a failed re-INVITE leaves the call (and its media) as it was; a failed
                # branch ends its own fork (the others may still answer: tm's final, the
                # tracker or failure_route end the call)
                if entry is not None and not entry.answered:
                    if self.tracker is None or self.external is not None:
                        return self.unforce_rtp_proxy(ctx)
                    session = entry.session
                    tag = session.fork_tag(tags[1], _to_tag(msg))
                    return 1 if self.relay.drop_fork(session, tag, f"failed ({status})") \
                        else -1
                return -1
            done = self._rewrite(ctx, flags, False)
            entry = self._entry(tags[0]) if tags else None      # a late offer opened it
            if 200 <= status < 300 and entry is not None:
                entry.answered = True
                if self.external is not None:
                    return done
                fork = entry.session.forks.get(entry.session.fork_tag(tags[1],
                                                                      _to_tag(msg)) or "")
                if fork is not None:
                    fork.answered = True    # kept when the call is confirmed (13.2.2.4)
            return done
        method = msg.method
        if method == "BYE":
            if self.external is not None:
                return self.unforce_rtp_proxy(ctx)
            return self._end_fork(ctx, "ended (bye)")
        if method == "CANCEL":
            return self.unforce_rtp_proxy(ctx)
        if method in ("INVITE", "UPDATE", "PRACK"):
            return self._rewrite(ctx, flags, method == "INVITE")
        if method == "ACK":
            return self._rewrite(ctx, flags, False)
        return -1

    def stats(self, now, legs=True):
        """The relayed calls, for the control socket: each session's numbers, a side silent
        ONE_WAY_AFTER seconds after the answer marked (the one-way audio the log hints at);
        ``legs``: each stream's legs too.  An external relay's calls: which they are (the
        packets are the relay's to count)."""
        if self.relay is None:
            where = str(self.external) if self.external is not None else ""
            return [{"call_id": call_id, "external": where} for call_id in self.calls]
        return [e.session.as_dict(now, ONE_WAY_AFTER, legs)
                for e in self.relay.entries.values()]

    def totals(self):
        """The relay's bounds and counters, for the control socket (serlite.relay.Relay)."""
        return self.relay.totals() if self.relay is not None else None


def _f(name, method, doc, nargs=(0, 1), fixup=_fix_flags):
    return Function(name, method, nargs, _ROUTES, fixup, doc)


EXPORTS = ModuleSpec(
    name="rtpproxy",
    doc="Media relay built into the loop, or an external one (rtpproxy protocol): calls "
        "heard across the router's NAT.  Ports of the built-in relay: a "
        "relayed stream takes an RTP/RTCP pair facing each side, so 4 ports per audio stream "
        "(a call with audio: 4, with video too: 8).  The module's defaults (10000-20000: "
        "ports for 2500 calls, rtp_max_sessions bounds them at 100 first) apply to a config "
        "that sets no range; the shipped ser.cfg and the UCI config (option rtp_ports) use "
        "16384-16483: 100 ports, 25 calls with audio at once, a small range to open in the "
        "firewall (the init script opens it on the WAN when wan_open is 1).  Past either "
        "bound a call goes unrelayed (ser-ctl rtpproxy and the status page say when it is "
        "nearly full).",
    factory=Rtpproxy,
    functions=(
        _f("rtpproxy_manage", "rtpproxy_manage",
           "offer, answer or close the call's relay session as the message says"),
        _f("rtpproxy_offer", "rtpproxy_offer",
           "relay the media of this SDP offer (opens the call's session on an INVITE)"),
        _f("rtpproxy_answer", "rtpproxy_answer", "relay the media of this SDP answer"),
        _f("force_rtp_proxy", "force_rtp_proxy",
           "SER 0.9: offer on a request, answer on a reply"),
        _f("unforce_rtp_proxy", "unforce_rtp_proxy", "close the call's relay session",
           nargs=(0,), fixup=None),
        _f("rtpproxy_destroy", "unforce_rtp_proxy", "close the call's relay session"),
    ),
    params={
        "rtpproxy_sock": Param(str, "", "an external relay (rtpproxy, rtpengine "
                                        "--listen-udp): udp:127.0.0.1:7722 or "
                                        "udp6:[::1]:7722; empty: the built-in relay"),
        "rtpproxy_tout": Param(int, 1, "seconds to wait for an external relay's answer, "
                                       "per try", min=1, max=60),
        "rtpproxy_retr": Param(int, 5, "tries of each command to an external relay",
                               min=1, max=20),
        "rtpproxy_disable_tout": Param(int, 60, "seconds an external relay that did not "
                                                "answer is left alone (0: never)",
                                       min=0, max=3600),
        "rtp_port_min": Param(int, 10000, "lowest RTP port of the built-in relay",
                              min=1024, max=65534),
        "rtp_port_max": Param(int, 20000, "highest RTP (RTCP) port of the built-in relay",
                              min=1025, max=65535),
        "rtp_max_sessions": Param(int, 100, "calls relayed at once at most",
                                  min=1, max=10000),
        "rtp_timeout": Param(int, 60, "close a call's relay after this many seconds of "
                                      "silence on every leg (rtpproxy's -T)", min=5, max=3600),
    },
)
