"""presence: a SIMPLE presence server, Kamailio's ``presence`` module (with presence_xml's PIDF
merging and presence_dialoginfo's ``dialog`` package built in).

``handle_publish()`` carries out a PUBLISH (RFC 3903): a new state gets ``200`` with its
``SIP-ETag`` and ``Expires``; ``SIP-If-Match`` refreshes it (no body), modifies it (a body) or,
with ``Expires: 0``, removes it; an unknown entity-tag gets ``412``.  ``handle_subscribe()``
carries out a SUBSCRIBE (RFC 6665): ``200`` (with our To tag and Contact: the subscription is a
dialog), then at once a NOTIFY with the current state; an in-dialog SUBSCRIBE refreshes, with
``Expires: 0`` ends it (the last NOTIFY says ``terminated``); a subscription not refreshed ends
with ``terminated;reason=timeout``.  NOTIFYs go by tm's ``t_uac`` (retransmitted, timed out by
tm); a ``481`` or a timeout (``408``) ends the subscription.

Event packages: ``presence`` (RFC 3856; the PIDF documents of every publisher of the user merged
into one, see serlite/presence/pidf.py; a user nobody published for, or who does not exist, is
``closed``, the same answer either way) and ``dialog`` (RFC 4235: the latest document published,
by a phone or by pua_dialoginfo through ``local_publish``, its ``version`` counted per
watcher; an empty full-state document when there is none).  Any other gets ``489 Bad Event``
with ``Allow-Events``.  Both functions answer statefully (tm), so a retransmitted PUBLISH is
absorbed, not taken for a second publisher.

Who may publish or subscribe is the config's to decide, as in Kamailio (the shipped config and
the UCI one: only logged-in users, a PUBLISH only for one's own address, SUBSCRIBE to the
house's users).  A presentity is the registrar's AOR of the Request-URI (user, or user@domain
with usrloc's use_domain).

State is the tables of serlite/presence/state.py; with ``db_url`` (``dbtext://DIR``) it is kept
in DIR/presentity and DIR/active_watchers (serlite/store/presence.py), written before the
answer, and read back at start.  SIGHUP keeps it.
"""

from __future__ import annotations

import heapq
import os
import sys

from .. import log
from ..presence import pidf
from ..presence.state import (OK, Publication, Publications, Subscription, Subscriptions)
from ..proxy import forward
from ..sip.errors import ParseError
from ..sip.grammar import unescape
from ..sip.uri import URI
from ..store.location import parse_db_url
from ..store.presence import JournalFile
from .export import REQUEST_ROUTE, Function, Module, ModuleSpec, Param

MAX_EXPIRES = 2 ** 32 - 1
EVENTS = {"presence": "application/pidf+xml", "dialog": "application/dialog-info+xml"}
ALLOW_EVENTS = ", ".join(EVENTS)
RESTART_CSEQ_STEP = 1000    # NOTIFYs not journalled: after a crash, CSeq goes on above them
END_ON = (481, 408, 478)    # a NOTIFY answered so ends its subscription (RFC 6665 4.2.2)


def event_package(value):
    """The package name of an Event header value (``presence;id=1`` -> ``presence``)."""
    if value is None:
        return None
    return value.partition(";")[0].strip().lower() or None



def _sub_record(sub, now, wall):
    """A subscription as its journal line holds it (the wall clock's expiry: a restart's
    monotonic clock starts again)."""
    return {"key": sub.key, "event": sub.event, "from_tag": sub.from_tag,
            "pres_uri": sub.pres_uri, "watcher_uri": sub.watcher_uri, "user": sub.user,
            "contact": sub.contact, "routes": list(sub.routes),
            "hop": list(sub.hop) if sub.hop else None, "remote_cseq": sub.remote_cseq,
            "cseq": sub.cseq, "local": sub.local, "until": round(wall + (sub.expires - now), 3)}


def _logged(journal, write):
    """``write()``, a failure to write ``journal`` logged (rate-limited) rather than raised:
    for writes no answer waits on (an expiry, a rewrite); the state in memory goes on."""
    try:
        write()
    except OSError as exc:
        log.limited(("presence-file",), log.ERR,
                    f"presence: cannot write {journal.path}: {exc.strerror}", interval=60)

class Presence(Module):
    name = "presence"

    def __init__(self, params):
        super().__init__(params)
        self.dir = parse_db_url(params["db_url"]) if params["db_url"] else None
        self.publications = Publications(params["max_publications"], 16)
        self.subscriptions = Subscriptions(params["max_subscriptions"],
                                           params["max_subscriptions_per_user"])
        self._heap = []             # (when, seq, Publication or Subscription, key, event)
        self._seq = 0
        self._timer = None
        self._timer_at = None
        self._etag_prefix = os.urandom(4).hex() + "."
        self._etags = 0
        self.pub_file = self.sub_file = None
        if self.dir is not None:
            self.pub_file = JournalFile(os.path.join(self.dir, "presentity"), "presentity")
            self.sub_file = JournalFile(os.path.join(self.dir, "active_watchers"),
                                        "active_watchers")
        self.notifies = 0           # NOTIFYs sent (status page, tests)

    # -- life --------------------------------------------------------------------------------
    def start(self, core, previous=None):
        super().start(core, previous)
        if previous is not None:
            # SIGHUP: the tables go on (under this config's limits)
            previous._stop_timer()
            self.publications.entries = previous.publications.entries
            self.publications.count = previous.publications.count
            self.subscriptions.by_dialog = previous.subscriptions.by_dialog
            self.subscriptions.watching = previous.subscriptions.watching
            self.subscriptions.per_user = previous.subscriptions.per_user
            self._heap, self._seq = previous._heap, previous._seq
            self._etag_prefix, self._etags = previous._etag_prefix, previous._etags
            previous._heap = []
            self.notifies = previous.notifies
        elif self.dir is not None:
            self._load()
        self._arm()

    def stop(self):
        self._stop_timer()
        if self.dir is not None:
            # exact NOTIFY CSeqs, and the journals folded
            self._rewrite_pubs()
            self._rewrite_subs()

    def _stop_timer(self):
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _retired(self):
        return self.core.module(self.name) is not self

    # -- the presentity -----------------------------------------------------------------------
    def key_of(self, uri):
        """The presentity key of a URI: the registrar's AOR (user, or user@host)."""
        registrar = self.core.module("registrar")
        if registrar is not None:
            return registrar.aor(uri)
        return unescape(uri.user or "") or uri.host

    def _new_etag(self):
        self._etags += 1
        return f"{self._etag_prefix}{self._etags:x}"

    # -- the interface for pua_dialoginfo -----------------------------------------------------
    def local_publish(self, presentity, event, body, content_type, expires, source):
        """State published by serlite itself (pua_dialoginfo), as if by a PUBLISH from
        ``source`` (a stable id, e.g. "pua_dialoginfo"): ``presentity`` an AOR string
        "sip:user@domain", ``event`` "dialog", ``body`` bytes (a whole
        application/dialog-info+xml document), ``expires`` seconds (0: removed).  Watchers of
        that presentity and event are NOTIFYed.  Returns True when the state changed; a body
        that is not a document of the event's kind is refused (ValueError)."""
        if event not in EVENTS:
            raise ValueError(f"presence: no event package {event!r}")
        key = self.key_of(URI.parse(presentity))
        text = None
        if expires and body:
            text = _document(event, body)
            if text is None:
                raise ValueError(f"presence: not a {EVENTS[event]} document")
        now = self.core.now()
        changed = self.publications.local(key, event, source, text or "",
                                          content_type or EVENTS[event],
                                          min(int(expires or 0), MAX_EXPIRES), now)
        if changed:
            etag = "L." + source
            pub = self._pub(key, event, etag)
            if pub is not None:
                self._due(pub.expires, pub, key, event)
            # not written to the file: serlite's own state (the calls of the dialog
            # tracker) does not survive a restart either, and a busy lamp must not come
            # back lit; nor is flash written at every ring and answer
            self._notify_watchers(key, event)
        return changed

    def _pub(self, key, event, etag):
        pubs = self.publications.entries.get((key, event))
        return pubs.get(etag) if pubs else None

    # -- PUBLISH ------------------------------------------------------------------------------
    def handle_publish(self, ctx):
        msg = ctx.msg
        if msg.method != "PUBLISH":
            return -1
        event = event_package(msg.get("Event"))
        if event not in EVENTS:
            return self._reply(ctx, 489, "Bad Event", (("Allow-Events", ALLOW_EVENTS),))
        try:
            uri = ctx.uri
            if uri is None:
                raise ParseError("bad Request-URI")
            expires = msg.expires
        except ParseError as exc:
            return self._reply(ctx, 400, f"Bad Request ({exc})")
        p = self.params
        expires = p["default_expires"] if expires is None else expires
        longest = p["max_expires_publish"] or p["max_expires"]
        if longest and expires > longest:
            expires = longest
        if 0 < expires < p["min_expires"]:
            if p["min_expires_action"] == 1:
                return self._reply(ctx, 423, "Interval Too Brief",
                                   (("Min-Expires", str(p["min_expires"])),))
            expires = p["min_expires"]
        text = None
        body = msg.body
        if body:
            if len(body) > p["max_body"]:
                return self._reply(ctx, 413, "Request Entity Too Large")
            ctype = (msg.get("Content-Type") or "").partition(";")[0].strip().lower()
            if ctype != EVENTS[event]:
                return self._reply(ctx, 415, "Unsupported Media Type",
                                   (("Accept", EVENTS[event]),))
            text = _document(event, body)
            if text is None:
                return self._reply(ctx, 400, f"Bad Request (not a {EVENTS[event]} document)")
        if_match = msg.get("SIP-If-Match")
        if if_match is not None:
            if_match = if_match.strip()
        key = self.key_of(uri)
        now = self.core.now()
        etag = self._new_etag()
        result = self.publications.publish(key, event, if_match, text, EVENTS[event],
                                           expires, now, etag)
        if result.status != OK:
            return self._reply(ctx, result.status, result.reason)
        records = []
        if if_match is not None:        # replaced (a new entity-tag) or removed
            records.append(self._pub_record(key, event, if_match, None))
        if result.evicted is not None and not result.evicted.startswith("L."):
            records.append(self._pub_record(key, event, result.evicted, None))
        if result.publication is not None:
            records.append(self._pub_record(key, event, etag, result.publication))
        try:
            self._write_pubs(records)
        except OSError as exc:
            return self._reply(ctx, 500, f"Server Internal Error ({exc.strerror})")
        if result.publication is not None:
            self._due(result.publication.expires, result.publication, key, event)
            self._reply(ctx, 200, "OK", (("SIP-ETag", etag), ("Expires", str(expires))))
        else:
            self._reply(ctx, 200, "OK", (("Expires", "0"),))
        if result.changed:
            self._notify_watchers(key, event)
        return 1

    # -- SUBSCRIBE ----------------------------------------------------------------------------
    def handle_subscribe(self, ctx):
        msg = ctx.msg
        if msg.method != "SUBSCRIBE":
            return -1
        event = event_package(msg.get("Event"))
        if event not in EVENTS:
            return self._reply(ctx, 489, "Bad Event", (("Allow-Events", ALLOW_EVENTS),))
        p = self.params
        try:
            expires = msg.expires
            uri = ctx.uri
            to, from_ = msg.to, msg.from_
            cseq = msg.cseq.number
            call_id = msg.call_id
            if uri is None or from_.tag is None:
                raise ParseError("no From tag" if uri is not None else "bad Request-URI")
            contacts = msg.contacts
            if contacts == "*" or len(contacts) != 1:
                raise ParseError("a SUBSCRIBE needs one Contact (RFC 6665 4.1.2.1)")
            contact = contacts[0].uri_text
            watcher_uri = from_.uri_text
            watcher_key = self.key_of(from_.uri)
        except ParseError as exc:
            return self._reply(ctx, 400, f"Bad Request ({exc})")
        expires = p["default_expires"] if expires is None else expires
        longest = p["max_expires_subscribe"] or p["max_expires"]
        if longest and expires > longest:
            expires = longest
        if 0 < expires < p["min_expires"]:
            if p["min_expires_action"] == 1:
                return self._reply(ctx, 423, "Interval Too Brief",
                                   (("Min-Expires", str(p["min_expires"])),))
            expires = p["min_expires"]
        now = self.core.now()
        subs = self.subscriptions
        if to.tag is not None:
            result = subs.refresh(call_id, to.tag, cseq, now + expires, now, event,
                                  from_.tag)
            if result.status == OK and not result.ended:
                # a target refresh (RFC 6665 4.1.2.2): the phone may have moved (a new NAT
                # mapping, a new address)
                sub = result.subscription
                sub.contact = contact
                sub.hop = self._hop_of(ctx)
        else:
            to_tag = self.core.local_to_tag(msg)
            sub = Subscription(self.key_of(uri), event, call_id, from_.tag, to_tag,
                               to.uri_text, watcher_uri, watcher_key, contact,
                               tuple(msg.values("Record-Route")), self._hop_of(ctx), cseq,
                               0, now + expires, _local_name(ctx))
            if expires == 0:
                # a fetch (RFC 6665 4.4.3): one NOTIFY, terminated, nothing kept
                self._reply(ctx, 200, "OK", (("Expires", "0"), ("Contact", self._contact(sub))))
                self._notify(sub, "terminated;reason=timeout")
                return 1
            result = subs.new(sub)
        if result.status != OK:
            headers = (("Retry-After", "60"),) if result.status == 503 else ()
            return self._reply(ctx, result.status, result.reason, headers)
        sub = result.subscription
        try:
            self._save_sub(sub, removed=result.ended)
        except OSError as exc:
            if not result.ended:
                subs.remove(sub)
            return self._reply(ctx, 500, f"Server Internal Error ({exc.strerror})")
        left = 0 if result.ended else max(0, int(sub.expires - now))
        self._reply(ctx, 200, "OK", (("Expires", str(left)), ("Contact", self._contact(sub))))
        if result.ended:
            # RFC 6665 4.2.1.4; reason=timeout as Kamailio says it
            self._notify(sub, "terminated;reason=timeout")
        else:
            self._due(sub.expires, sub, None, None)
            self._notify(sub)
        return 1

    def _hop_of(self, ctx):
        """Where the NOTIFYs go when the SUBSCRIBE came straight from the watcher (one Via):
        the address it came from (RFC 3581's symmetric answer: a phone behind NAT is reached
        there, whatever its Contact says).  None: by the route set, else the Contact."""
        if ctx.received:        # nathelper's fix_nated_register-like note
            try:
                return forward.uri_target(ctx.received)
            except ParseError:
                pass
        src = ctx.source
        if src is None:
            return None
        try:
            if len(ctx.msg.vias) != 1 or ctx.msg.record_routes:
                return None
        except ParseError:
            return None
        return (src.proto, sys.intern(src.ip), src.port)

    def _contact(self, sub):
        if self.params["server_address"]:
            return f"<{self.params['server_address']}>"
        name = sub.local or "udp:127.0.0.1:5060"
        proto, _, hostport = name.partition(":")
        return f"<sip:{hostport}{'' if proto == 'udp' else ';transport=' + proto}>"

    def _reply(self, ctx, status, reason, headers=()):
        tm = self.core.module("tm")
        if tm is not None:
            tm.reply(ctx, status, reason, headers)
        else:
            self.core.send_reply(ctx, status, reason, headers)
        return 1 if status < 300 else -1

    # -- NOTIFY -------------------------------------------------------------------------------
    def body_for(self, key, event, entity, version=0):
        """The document a watcher of ``key``'s ``event`` gets now (str)."""
        pubs = self.publications.get(key, event)
        now = self.core.now()
        pubs = [p for p in pubs if p.expires > now]
        if event == "presence":
            if not pubs:
                return pidf.closed_document(entity)
            docs = []
            for p in pubs:
                try:
                    docs.append(pidf.check(p.body, "presence", pidf.PIDF_NS))
                except pidf.DocumentError:
                    continue
            return pidf.merge(docs) if docs else pidf.closed_document(entity)
        if not pubs:
            return pidf.empty_dialog_info(entity, version)
        return pidf.with_version(pubs[0].body, version)

    def _notify_watchers(self, key, event):
        for sub in self.subscriptions.watchers(key, event):
            self._notify(sub)

    def _notify(self, sub, state=None):
        """Send ``sub`` a NOTIFY with the current state; ``state`` the Subscription-State
        when it ends (``terminated;reason=...``)."""
        now = self.core.now()
        sub.cseq += 1
        if state is None:
            state = f"active;expires={max(0, int(sub.expires - now))}"
        body = self.body_for(sub.key, sub.event, sub.pres_uri, sub.cseq - 1).encode("utf-8")
        lines = [f"To: <{sub.watcher_uri}>;tag={sub.from_tag}",
                 f"From: <{sub.pres_uri}>;tag={sub.to_tag}",
                 f"Call-ID: {sub.call_id}",
                 f"CSeq: {sub.cseq} NOTIFY",
                 "Max-Forwards: 70"]
        lines += [f"Route: {r}" for r in sub.routes]
        lines += [f"Contact: {self._contact(sub)}",
                  f"Event: {sub.event}",
                  f"Subscription-State: {state}",
                  f"Content-Type: {EVENTS[sub.event]}",
                  f"Content-Length: {len(body)}"]
        rest = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
        try:
            hop = sub.hop or forward.uri_target(_first_route(sub.routes) or sub.contact)
        except (ParseError, ValueError) as exc:
            log.limited(("presence-hop", sub.call_id), log.WARN,
                        f"presence: no way to NOTIFY {sub.watcher_uri}: {exc}")
            self._end(sub)
            return
        tm = self.core.module("tm")
        self.notifies += 1
        tm.t_uac("NOTIFY", sub.contact, rest, hop,
                 lambda status, msg, sub=sub: self._notify_answer(sub, status))

    def _notify_answer(self, sub, status):
        if status in END_ON and self.subscriptions.by_dialog.get(sub.dialog) is sub:
            log.info(f"presence: {sub.watcher_uri}'s subscription to {sub.pres_uri} "
                     f"({sub.event}) ended: its NOTIFY got {status}")
            self._end(sub)

    def _end(self, sub):
        if self.subscriptions.remove(sub):
            try:
                self._save_sub(sub, removed=True)
            except OSError:
                pass

    # -- expiry -------------------------------------------------------------------------------
    def _due(self, when, obj, key, event):
        self._seq += 1
        heap = self._heap
        heapq.heappush(heap, (when, self._seq, obj, key, event))
        if len(heap) > 2 * (len(self.subscriptions) + self.publications.count) + 256:
            # refreshes leave their old entries behind until these come due: rebuilt from
            # what is live, so that a phone refreshing in a loop cannot grow the heap
            live = {}
            for entry in heap:
                obj = entry[2]
                if id(obj) not in live and self._live(obj, entry[3], entry[4]):
                    self._seq += 1
                    live[id(obj)] = (obj.expires, self._seq, obj, entry[3], entry[4])
            self._heap = heap = list(live.values())
            heapq.heapify(heap)
            self._arm()
        if self._timer_at is None or when < self._timer_at:
            self._arm()

    def _live(self, obj, key, event):
        if isinstance(obj, Subscription):
            return self.subscriptions.by_dialog.get(obj.dialog) is obj
        pubs = self.publications.entries.get((key, event))
        return bool(pubs) and pubs.get(obj.etag) is obj

    def _arm(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        if self._heap and getattr(self, "core", None) is not None:
            self._timer_at = self._heap[0][0]
            self._timer = self.core.loop.call_at(self._timer_at, self._on_timer)

    def _on_timer(self):
        self._timer = self._timer_at = None
        if self._retired():
            return
        try:
            self.expire(self.core.now())
        finally:
            self._arm()

    def expire(self, now):
        """End what is due by ``now``: publications (their watchers NOTIFYed), subscriptions
        (a last NOTIFY, terminated;reason=timeout)."""
        heap = self._heap
        changed = set()
        while heap and heap[0][0] <= now:
            when, _, obj, key, event = heapq.heappop(heap)
            if obj.expires != when:
                continue        # refreshed since: a later entry stands for it
            if isinstance(obj, Subscription):
                if self.subscriptions.remove(obj):
                    self._save_sub_quietly(obj)
                    self._notify(obj, "terminated;reason=timeout")
            else:
                pubs = self.publications.entries.get((key, event))
                if pubs and pubs.get(obj.etag) is obj:
                    self.publications._remove(key, event, pubs, obj.etag)
                    if not obj.etag.startswith("L."):
                        try:
                            self._save_pub(key, event, obj.etag, None)
                        except OSError:
                            pass
                    changed.add((key, event))
        for key, event in changed:
            self._notify_watchers(key, event)

    # -- the files ----------------------------------------------------------------------------
    def _pub_record(self, key, event, etag, pub):
        k = f"{key}\t{event}\t{etag}"
        if pub is None:
            return {"k": k, "del": 1}
        return {"k": k, "body": pub.body, "type": pub.content_type,
                "until": round(self.core.wall() + (pub.expires - self.core.now()), 3)}

    def _save_pub(self, key, event, etag, pub):
        self._write_pubs([self._pub_record(key, event, etag, pub)])

    def _write_pubs(self, records):
        """Journal ``records`` (fsync'd: before the PUBLISH is answered); OSError is the
        caller's."""
        if self.pub_file is None or not records:
            return
        if self.pub_file.lines + len(records) > 2 * self.publications.count + 64:
            self._rewrite_pubs()
        else:
            self.pub_file.append(records)

    def _save_sub(self, sub, removed=False):
        if self.sub_file is None:
            return
        k = f"{sub.call_id}\t{sub.to_tag}"
        if removed:
            record = {"k": k, "del": 1}
        else:
            record = dict(k=k, **_sub_record(sub, self.core.now(), self.core.wall()))
        if self.sub_file.lines + 1 > 2 * len(self.subscriptions) + 64:
            self._rewrite_subs()
        else:
            self.sub_file.append([record])

    def _save_sub_quietly(self, sub):
        _logged(self.sub_file, lambda: self._save_sub(sub, removed=True))

    def _rewrite_pubs(self):
        now, wall = self.core.now(), self.core.wall()
        records = {}
        for (key, event), pubs in self.publications.entries.items():
            for etag, p in pubs.items():
                if etag.startswith("L."):
                    continue        # serlite's own (local_publish): not kept
                records[f"{key}\t{event}\t{etag}"] = {
                    "body": p.body, "type": p.content_type,
                    "until": round(wall + (p.expires - now), 3)}
        _logged(self.pub_file, lambda: self.pub_file.rewrite(records))

    def _rewrite_subs(self):
        now, wall = self.core.now(), self.core.wall()
        records = {}
        for sub in self.subscriptions.by_dialog.values():
            records[f"{sub.call_id}\t{sub.to_tag}"] = _sub_record(sub, now, wall)
        _logged(self.sub_file, lambda: self.sub_file.rewrite(records))

    def _load(self):
        now, wall = self.core.now(), self.core.wall()
        try:
            pubs, bad_p = self.pub_file.load()
            subs, bad_s = self.sub_file.load()
        except OSError as exc:
            log.error(f"presence: cannot read {self.dir}: {exc.strerror}; starting empty")
            return
        bad = bad_p + bad_s
        for k, r in pubs.items():
            try:
                key, event, etag = k.split("\t")
                until = float(r["until"])
                if until <= wall or event not in EVENTS:
                    continue
                pub = Publication(etag, str(r["body"]), str(r["type"]), now + (until - wall))
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            self.publications.restore(key, event, pub)
            self._due(pub.expires, pub, key, event)
        for k, r in subs.items():
            try:
                call_id, to_tag = k.split("\t")
                until = float(r["until"])
                if until <= wall or r["event"] not in EVENTS:
                    continue
                hop = r.get("hop")
                sub = Subscription(
                    str(r["key"]), r["event"], call_id, str(r["from_tag"]), to_tag,
                    str(r["pres_uri"]), str(r["watcher_uri"]), str(r["user"]),
                    str(r["contact"]), tuple(str(x) for x in r["routes"]),
                    (str(hop[0]), str(hop[1]), int(hop[2])) if hop else None,
                    int(r["remote_cseq"]), int(r["cseq"]) + RESTART_CSEQ_STEP,
                    now + (until - wall), str(r.get("local") or ""))
            except (ValueError, KeyError, TypeError, IndexError):
                bad += 1
                continue
            if len(self.subscriptions) < self.subscriptions.max_total:
                self.subscriptions.add(sub)
                self._due(sub.expires, sub, None, None)
        if bad:
            log.warn(f"presence: {self.dir}: {bad} bad record(s) skipped")
        # folded: what expired while we were down is gone from the files too
        self._rewrite_pubs()
        self._rewrite_subs()
        if self.publications.count or len(self.subscriptions):
            log.notice(f"presence: {self.publications.count} publication(s), "
                       f"{len(self.subscriptions)} subscription(s) kept from {self.dir}")

    # -- what people see ----------------------------------------------------------------------
    def status_of(self, key):
        """``{"presence": "open"|"closed"|"unknown", "dialog": None|"early"|"confirmed"...,
        "watchers": n}`` for the presentity ``key``."""
        now = self.core.now()
        pubs = [p for p in self.publications.get(key, "presence") if p.expires > now]
        state = "unknown"
        if pubs:
            states = {pidf.basic_status(p.body) for p in pubs}
            state = "open" if "open" in states else "closed"
        dialog = None
        for p in self.publications.get(key, "dialog"):
            if p.expires > now:
                dialog = pidf.dialog_activity(p.body)
                break
        return {"presence": state, "dialog": dialog,
                "watchers": self.subscriptions.count_of(key)}

    def rows(self, accounts=()):
        """The ``presence`` control command: each account's (and each other presentity's)
        state and watchers, and the totals."""
        keys = list(accounts)
        seen = set(keys)
        for (key, _) in self.publications.entries:
            if key not in seen:
                seen.add(key)
                keys.append(key)
        for (key, _) in self.subscriptions.watching:
            if key not in seen:
                seen.add(key)
                keys.append(key)
        return {"presentities": [dict(user=k, **self.status_of(k)) for k in keys],
                "subscriptions": len(self.subscriptions),
                "publications": self.publications.count,
                "notifies": self.notifies}


def _document(event, body):
    """The checked text of a published ``body`` (bytes) for ``event``, or None."""
    try:
        text = body.decode("utf-8")
        if event == "presence":
            pidf.check(text, "presence", pidf.PIDF_NS)
        else:
            pidf.check(text, "dialog-info", pidf.DIALOG_NS)
    except (UnicodeDecodeError, pidf.DocumentError):
        return None
    return text


def _first_route(routes):
    if not routes:
        return None
    value = routes[0].strip()
    if value.startswith("<"):
        value = value[1:value.find(">")]
    return value


def _local_name(ctx):
    local = ctx.source.local if ctx.source is not None else None
    return sys.intern(local.name) if local is not None else ""


EXPORTS = ModuleSpec(
    name="presence",
    doc="SIMPLE presence server: PUBLISH (RFC 3903) and SUBSCRIBE/NOTIFY (RFC 6665) for the "
        "presence (PIDF, merged) and dialog (RFC 4235) event packages.",
    factory=Presence,
    functions=(
        Function("handle_publish", "handle_publish", (0,), REQUEST_ROUTE, None,
                 "carry out a PUBLISH and answer it (200 with SIP-ETag, 412, 423, 489 ...)"),
        Function("handle_subscribe", "handle_subscribe", (0,), REQUEST_ROUTE, None,
                 "carry out a SUBSCRIBE, answer it and NOTIFY the current state"),
    ),
    params={
        "db_url": Param(str, "", "dbtext://DIR: keep presentities and subscriptions in DIR "
                        "(empty: memory only)"),
        "default_expires": Param(int, 3600, "expires of a PUBLISH or SUBSCRIBE without one",
                                 min=0, max=MAX_EXPIRES),
        "max_expires": Param(int, 3600, "longer expires are shortened to this (0: no limit)",
                             min=0, max=MAX_EXPIRES),
        "max_expires_subscribe": Param(int, 0, "the same for SUBSCRIBE (0: max_expires)",
                                       min=0, max=MAX_EXPIRES),
        "max_expires_publish": Param(int, 0, "the same for PUBLISH (0: max_expires)",
                                     min=0, max=MAX_EXPIRES),
        "min_expires": Param(int, 0, "shorter expires (but 0) are refused or raised",
                             min=0, max=MAX_EXPIRES),
        "min_expires_action": Param(int, 1, "1: refuse shorter with 423 and Min-Expires; "
                                    "2: raise to min_expires", min=1, max=2),
        "max_subscriptions": Param(int, 4096, "subscriptions in all (then 503)",
                                   min=1, max=1000000),
        "max_subscriptions_per_user": Param(int, 64, "subscriptions of one watcher (then 403)",
                                            min=1, max=100000),
        "max_publications": Param(int, 4096, "publications in all (then 503); 16 a "
                                  "presentity, the oldest pushed out", min=1, max=1000000),
        "max_body": Param(int, 8192, "largest published document, bytes (then 413)",
                          min=256, max=65536),
        "server_address": Param(str, "", "the Contact of our 200s and NOTIFYs (default: "
                                "the address the SUBSCRIBE came in on)"),
    },
    depends=("tm",),
)
