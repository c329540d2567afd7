"""msilo: MESSAGEs kept for users who are offline (Kamailio's msilo module).

``m_store([owner])`` keeps the MESSAGE (From, To, body, Content-Type, arrival time) for the
owner (default: the Request-URI's AOR; in failure_route the R-URI the request came with, as
the one lookup() rewrote names a contact, not the user) in a ``serlite.store.silo.SiloStore``, on flash before
it returns, so that the config can answer ``202 Accepted`` (RFC 3428 7: the message was
accepted, not yet delivered).  It returns -1 (the config answers 480) when the owner's inbox
holds ``max_messages``, the store ``max_stored``, or the body is over ``max_body`` bytes.

``m_dump([owner])``, after ``save("location")`` of a REGISTER, sends the owner's messages to
the binding that REGISTER made (to its ``received`` address when the phone is behind NAT),
one at a time in arrival order (the next only once the phone took the previous: order kept
even over a lossy UDP link), each with a ``Date`` header of its arrival (RFC 3261 20.17), by
tm's ``t_uac``.  A message is deleted only on a 2xx; while one is in flight it is not sent
again (a second REGISTER meanwhile sends nothing).  Any other answer stops the run: the rest
wait for the next ``m_dump``; a timeout (408) or a 503 is tried again ``check_time`` s later,
at most ``RETRIES`` times, while the binding is still there.

A timer every ``check_time`` s drives those retries, and every ``clean_period``-th run drops
the messages older than ``expire_time`` and compacts the journal when it has grown.
"""

from __future__ import annotations

import os
import time

from .. import log
from ..proxy import forward
from ..sip.errors import ParseError
from ..sip.grammar import unescape
from ..sip.uri import URI
from ..store.location import parse_db_url
from ..store.silo import SiloStore, StoreFull
from .export import FAILURE_ROUTE, REQUEST_ROUTE, Function, Module, ModuleSpec, Param

RETRIES = 3             # retries of a delivery that timed out, per m_dump
_WKDAY = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def sip_date(epoch):
    """RFC 3261 20.17's rfc1123-date in GMT: ``Sat, 13 Nov 2010 23:29:00 GMT``."""
    t = time.gmtime(epoch)
    return (f"{_WKDAY[t.tm_wday]}, {t.tm_mday:02d} {_MONTH[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def header_lines(value):
    """Kamailio's header parameters (``contact_hdr``, ``content_type_hdr``) hold whole lines
    ending with ``\\r\\n``; the escapes may come through the config as written: one line each."""
    value = value.replace("\\r", "\r").replace("\\n", "\n")
    return [line.strip() for line in value.replace("\r", "\n").split("\n") if line.strip()]


def _fix_owner(module, args, script):
    if not args:
        return ()
    text = str(args[0])
    if not text:
        raise ValueError("m_store/m_dump: owner is empty")
    return (text,)


class Dump:
    """One run of deliveries to a binding: where they go and how often it timed out."""

    __slots__ = ("owner", "ruri", "hop", "tries", "due")

    def __init__(self, owner, ruri, hop):
        self.owner = owner
        self.ruri = ruri
        self.hop = hop
        self.tries = 0
        self.due = None         # wall-clock time of a retry, None: not waiting for one


class Msilo(Module):
    name = "msilo"

    def __init__(self, params):
        super().__init__(params)
        directory = parse_db_url(params["db_url"])      # ValueError: the compiler says so
        table = params["db_table"]
        if not table or "/" in table:
            raise ValueError(f"msilo db_table {table!r} is not a file name")
        self.path = os.path.join(directory, table)
        self.store = SiloStore(self.path, params["max_messages"], params["max_stored"])
        self.dumps = {}             # owner -> Dump in progress
        self.contact_lines = header_lines(params["contact_hdr"])
        self.ctype_lines = header_lines(params["content_type_hdr"]) or \
            ["Content-Type: text/plain"]
        self.successor = None
        self.core = None
        self._timer = None
        self._ticks = 0
        self._seq = 0

    # -- life ----------------------------------------------------------------------------
    def start(self, core, previous=None):
        super().start(core, previous)
        if previous is not None and previous.path == self.path:
            # SIGHUP: the same store and the runs in flight (their answers come to us)
            self.store = previous.store
            self.store.per_user = self.params["max_messages"]
            self.store.total = self.params["max_stored"]
            self.dumps = previous.dumps
            previous.successor = self
        else:
            for warning in self.store.load(core.wall()):
                log.warn(f"msilo: {warning}")
            log.info(f"msilo: {len(self.store)} stored messages for "
                     f"{len(self.store.inboxes)} users")
        if previous is not None and previous._timer is not None:
            previous._timer.cancel()
            previous._timer = None
        self._arm()

    def stop(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self):
        self._timer = self.core.loop.call_later(self.params["check_time"], self._tick)

    def _tick(self):
        self._timer = None
        if self.successor is not None:
            return
        now = self.core.wall()
        for dump in [d for d in self.dumps.values() if d.due is not None and d.due <= now]:
            dump.due = None
            if self._still_bound(dump):
                self._next(dump)
            else:
                self.dumps.pop(dump.owner, None)
        self._ticks += 1
        if self._ticks >= self.params["clean_period"]:
            self._ticks = 0
            gone = self.store.expire(now)
            if gone:
                log.info(f"msilo: {gone} message{'s' if gone != 1 else ''} expired")
            if self.store.compact_due():
                try:
                    self.store.compact()
                except OSError as exc:
                    log.limited("msilo-compact", log.ERR,
                                f"msilo: cannot compact {self.path}: {exc}")
        self._arm()

    # -- owners --------------------------------------------------------------------------
    def _aor(self, uri):
        """The owner key of a URI: the AOR as the registrar keys bindings (the user, or
        user@domain with usrloc's use_domain), so that an inbox and its bindings meet."""
        registrar = self.core.module("registrar")
        if registrar is not None:
            return registrar.aor(uri)
        user = unescape(uri.user or "")
        return f"{user}@{uri.host}" if user else uri.host

    def _owner(self, ctx, args, default):
        try:
            if args:
                uri = URI.parse(args[0])
            elif default == "ruri":
                # in failure_route the R-URI is the contact lookup() put there: the request's
                # own R-URI names the owner
                uri = ctx.msg.uri if ctx.route_type == FAILURE_ROUTE else ctx.uri
                if uri is None or not uri.user:     # not an AOR: Kamailio takes the To URI
                    uri = ctx.msg.to.uri
            else:
                uri = ctx.msg.to.uri
        except ParseError:
            return None
        return None if uri is None else self._aor(uri)

    # -- m_store -------------------------------------------------------------------------
    def m_store(self, ctx, *args):
        msg = ctx.msg
        if msg.method != "MESSAGE":
            return -1
        owner = self._owner(ctx, args, "ruri")
        if owner is None:
            return -1
        body = msg.body
        if len(body) > self.params["max_body"]:
            log.limited("msilo-body", log.NOTICE,
                        f"msilo: a {len(body)}-byte MESSAGE for {owner!r} not stored "
                        f"(max_body {self.params['max_body']})")
            return -1
        try:
            from_uri = msg.from_.uri_text
            to_uri = msg.to.uri_text
        except (ParseError, AttributeError):
            return -1
        # one line in the MESSAGE m_dump sends, whatever folding it came with
        ctype = " ".join((msg.get("Content-Type") or "text/plain").split())[:200]
        try:
            self.store.store(owner, from_uri, to_uri, ctype, body, self.core.wall(),
                             self.params["expire_time"])
        except StoreFull as exc:
            log.limited(("msilo-full", exc.what), log.NOTICE,
                        f"msilo: MESSAGE for {owner!r} not stored: {exc}")
            return -1
        except OSError as exc:
            log.limited("msilo-write", log.ERR, f"msilo: cannot write {self.path}: {exc}")
            return -1
        self.core.stats.incr("msilo_stored")
        if self.params["from_address"] and self.params["offline_message"]:
            self._notify_sender(ctx, from_uri)
        return 1

    def _notify_sender(self, ctx, from_uri):
        """``offline_message`` back to the sender (to its Contact when it gave one and
        ``use_contact``), where its MESSAGE came from."""
        msg = ctx.msg
        ruri = from_uri
        if self.params["use_contact"]:
            try:
                contacts = msg.contacts
                if contacts and contacts != "*":
                    ruri = contacts[0].uri_text
            except ParseError:
                pass
        body = self.params["offline_message"].encode("utf-8", "surrogateescape")
        lines = [f"To: <{from_uri}>",
                 f"From: <{self.params['from_address']}>;tag={os.urandom(4).hex()}",
                 *self._dialog_lines(),
                 *self.contact_lines, *self.ctype_lines,
                 f"Content-Length: {len(body)}"]
        src = ctx.source
        self.core.module("tm").t_uac("MESSAGE", ruri, _rest(lines, body),
                                      (src.proto, src.ip, src.port), _ignore)

    def _dialog_lines(self):
        self._seq += 1
        return (f"Call-ID: {os.urandom(8).hex()}@serlite", f"CSeq: {self._seq} MESSAGE",
                "Max-Forwards: 70")

    # -- m_dump --------------------------------------------------------------------------
    def m_dump(self, ctx, *args):
        msg = ctx.msg
        if msg.method != "REGISTER":
            return -1
        owner = self._owner(ctx, args, "to")
        if owner is None:
            return -1
        running = self.dumps.get(owner)
        if running is not None and running.due is None:
            return 1            # a run is going: what it has in flight is not sent twice
        if not self.store.messages(owner):
            return -1
        target = self._target(ctx, owner)
        if target is None:
            return -1
        ruri, via = target
        try:
            hop = forward.uri_target(via)
        except ParseError:
            return -1
        # a run waiting to retry starts again at once, to the binding just made
        dump = self.dumps[owner] = Dump(owner, ruri, hop)
        self._next(dump)
        return 1

    def _target(self, ctx, owner):
        """(Request-URI, where to send) of the binding this REGISTER made: the location
        table's (its received address when NATed), else the REGISTER's own Contact."""
        msg = ctx.msg
        usrloc = self.core.module("usrloc")
        if usrloc is not None and "location" in usrloc.tables:
            now = self.core.wall()
            mine = [b for b in usrloc.table("location").lookup(owner, now)
                    if b.call_id == msg.call_id]
            if not mine:
                return None         # a de-registration, or save() refused it
            b = max(mine, key=lambda b: b.expires)
            return b.contact, b.received or b.contact
        try:
            contacts = msg.contacts
            if not contacts or contacts == "*" or msg.expires == 0:
                return None
            uri = contacts[0].uri_text
        except ParseError:
            return None
        return uri, ctx.received or uri

    def _still_bound(self, dump):
        usrloc = self.core.module("usrloc")
        if usrloc is None or "location" not in usrloc.tables:
            return True
        return any(b.contact == dump.ruri for b in
                   usrloc.table("location").lookup(dump.owner, self.core.wall()))

    def _next(self, dump):
        """Send the owner's oldest message not in flight; the run ends when none is left."""
        message = next((m for m in self.store.messages(dump.owner) if not m.sending), None)
        if message is None or self.dumps.get(dump.owner) is not dump:
            if self.dumps.get(dump.owner) is dump:
                del self.dumps[dump.owner]
            return
        message.sending = True
        body = message.body
        lines = [f"To: <{message.to_uri}>",
                 f"From: <{message.from_uri}>;tag={os.urandom(4).hex()}",
                 *self._dialog_lines(),
                 f"Date: {sip_date(message.inc)}",
                 f"Content-Type: {message.ctype}",
                 f"Content-Length: {len(body)}"]
        self.core.module("tm").t_uac(
            "MESSAGE", dump.ruri, _rest(lines, body), dump.hop,
            lambda status, reply, d=dump, m=message: self._answer(d, m, status))

    def _answer(self, dump, message, status):
        if self.successor is not None:          # a reload since: the new module carries on
            self.successor._answer(dump, message, status)
            return
        if status < 200:
            return
        message.sending = False
        if 200 <= status < 300:
            self.core.stats.incr("msilo_dumped")
            try:
                self.store.delete(message)
            except OSError as exc:
                log.limited("msilo-write", log.ERR, f"msilo: cannot write {self.path}: {exc}")
            dump.tries = 0
            self._next(dump)
            return
        self.core.stats.incr("msilo_failed")
        if status in (408, 503) and dump.tries < RETRIES:
            dump.tries += 1
            dump.due = self.core.wall() + self.params["check_time"]
            log.limited(("msilo-retry", dump.owner), log.INFO,
                        f"msilo: delivery to {dump.ruri} got {status}, again in "
                        f"{self.params['check_time']} s")
            return
        log.limited(("msilo-fail", dump.owner), log.NOTICE,
                    f"msilo: delivery to {dump.ruri} got {status}; "
                    f"{len(self.store.messages(dump.owner))} kept for the next registration")
        if self.dumps.get(dump.owner) is dump:
            del self.dumps[dump.owner]

    # -- what the control socket shows ---------------------------------------------------
    def summary(self):
        """{"stored", "max_messages", "max_stored", "users": [{user, messages, oldest,
        sending}]}: the control command ``msilo``."""
        users = []
        for owner, box in sorted(self.store.inboxes.items()):
            users.append({"user": owner, "messages": len(box), "oldest": box[0].inc,
                          "sending": owner in self.dumps})
        return {"stored": len(self.store), "max_messages": self.params["max_messages"],
                "max_stored": self.params["max_stored"], "users": users}


def _rest(lines, body):
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


def _ignore(status, msg):
    pass


EXPORTS = ModuleSpec(
    name="msilo",
    doc="MESSAGEs kept for offline users, delivered when they register (Kamailio's msilo).",
    factory=Msilo,
    functions=(
        Function("m_store", "m_store", (0, 1), REQUEST_ROUTE | FAILURE_ROUTE, _fix_owner,
                 "keep the MESSAGE for the R-URI's user (or owner); false when full",
                 dynamic=True),
        Function("m_dump", "m_dump", (0, 1), REQUEST_ROUTE, _fix_owner,
                 "after save(): send the To user's (or owner's) stored messages to the binding",
                 dynamic=True),
    ),
    params={
        "db_url": Param(str, "dbtext:///var/lib/ser", "directory of the message journal"),
        "db_table": Param(str, "silo", "the journal's file name in db_url"),
        "expire_time": Param(int, 259200, "seconds a message is kept (3 days)",
                             min=1, max=365 * 86400),
        "check_time": Param(int, 60, "seconds between runs of the timer (retries)",
                            min=1, max=3600),
        "clean_period": Param(int, 10, "timer runs between expiry checks", min=1, max=1000),
        "max_messages": Param(int, 50, "messages kept per user (0: no limit)",
                              min=0, max=100000),
        "max_stored": Param(int, 1000, "messages kept in all (0: no limit)",
                            min=0, max=1000000),
        "max_body": Param(int, 1300, "largest body stored, bytes (RFC 3428: 1300 over UDP)",
                          min=0, max=65535),
        "from_address": Param(str, "", "From of the offline notice (empty: none sent)"),
        "offline_message": Param(str, "", "body of the offline notice (empty: none sent)"),
        "contact_hdr": Param(str, "", "Contact header line of the offline notice"),
        "content_type_hdr": Param(str, "", "Content-Type header line of the offline notice "
                                           "(default text/plain)"),
        "use_contact": Param(int, 1, "send the notice to the sender's Contact",
                             min=0, max=1),
    },
    depends=("tm",),
)
