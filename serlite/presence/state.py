"""The presence server's state, pure: what each publisher said (RFC 3903) and who watches
whom (RFC 6665), with the rules that decide each request's answer.  Times (``now``) are
handed in, seconds of the loop's monotonic clock; nothing here reads a clock or a file.

A presentity is a key (the registrar's AOR of the user: ``"100"``, or ``"100@domain"`` with
usrloc's use_domain) and an event package (``presence``, ``dialog``).  Each publisher's state
is a ``Publication`` under its entity-tag; a PUBLISH names it with SIP-If-Match to refresh,
modify or remove it, and each successful PUBLISH gets a new entity-tag (RFC 3903 4.1).
serlite's own publisher (pua_dialoginfo) publishes under a fixed tag of its ``source``.
"""

from __future__ import annotations

import sys

# RFC 3903 / RFC 6665 answers the tables decide
OK = 200
BAD_REQUEST = 400
CONDITIONAL_FAILED = 412
NO_SUCH_SUBSCRIPTION = 481
FULL = 503


class Publication:
    """One publisher's state of a presentity: its document, type and when it expires."""

    __slots__ = ("etag", "body", "content_type", "expires")

    def __init__(self, etag, body, content_type, expires):
        self.etag = etag
        self.body = body
        self.content_type = content_type
        self.expires = expires

    def __repr__(self):
        return f"Publication({self.etag!r}, {len(self.body)} bytes, expires {self.expires})"


class PublishResult:
    """What a PUBLISH did: ``status`` (200, 400, 412, 503), the ``publication`` (None when
    removed or refused), and ``changed``: whether the presentity's state changed (its watchers
    are then notified; a refresh changes nothing)."""

    __slots__ = ("status", "reason", "publication", "changed")

    def __init__(self, status, reason="", publication=None, changed=False):
        self.status = status
        self.reason = reason
        self.publication = publication
        self.changed = changed


class Publications:
    """Every presentity's publications: {(key, event): {etag: Publication}}, each inner dict in
    the order of the last change (the least recently changed first).  Bounded: at most
    ``max_per_presentity`` publishers of one presentity (a new one pushes out the least
    recently changed: a phone that lost its entity-tag in a restart publishes anew), at most
    ``max_total`` publications in all (then 503)."""

    def __init__(self, max_total=4096, max_per_presentity=16):
        self.max_total = max_total
        self.max_per_presentity = max_per_presentity
        self.entries = {}
        self.count = 0

    def get(self, key, event):
        """The live publications of a presentity, newest first."""
        pubs = self.entries.get((key, event))
        return list(reversed(pubs.values())) if pubs else []

    def publish(self, key, event, if_match, body, content_type, expires, now, new_etag):
        """Carry out one PUBLISH (RFC 3903 6): ``if_match`` the SIP-If-Match entity-tag or
        None, ``body`` bytes or None, ``expires`` seconds already bounded by the caller (0:
        remove), ``new_etag`` the entity-tag to give."""
        pubs = self.entries.get((key, event))
        if if_match is None:
            if not body:
                # 6 step 5: an initial PUBLISH must carry a state
                return PublishResult(BAD_REQUEST, "Bad Request (no body and no SIP-If-Match)")
            if expires == 0:
                return PublishResult(BAD_REQUEST, "Bad Request (Expires: 0 without "
                                                  "SIP-If-Match)")
            return self._put(key, event, pubs, None, body, content_type, expires, now,
                             new_etag)
        old = pubs.get(if_match) if pubs else None
        if old is None or old.expires <= now:
            # 6 step 4: no such entity-tag (or expired): 412 Conditional Request Failed
            return PublishResult(CONDITIONAL_FAILED, "Conditional Request Failed")
        if expires == 0:
            self._remove(key, event, pubs, if_match)
            return PublishResult(OK, "OK", None, changed=True)
        if not body:
            # a refresh: the same state, a new entity-tag and expiry (6 step 7)
            del pubs[if_match]
            old.etag = new_etag
            old.expires = now + expires
            pubs[new_etag] = old
            return PublishResult(OK, "OK", old, changed=False)
        return self._put(key, event, pubs, if_match, body, content_type, expires, now,
                         new_etag)

    def local(self, key, event, source, body, content_type, expires, now):
        """serlite's own publisher ``source`` sets (``expires`` > 0) or removes its state of
        the presentity; True when something changed."""
        etag = "L." + source
        pubs = self.entries.get((key, event))
        if not expires or not body:
            if pubs and etag in pubs:
                self._remove(key, event, pubs, etag)
                return True
            return False
        return self._put(key, event, pubs, etag, body, content_type, expires, now,
                         etag).status == OK

    def _put(self, key, event, pubs, replaces, body, content_type, expires, now, etag):
        if pubs is None:
            if self.count >= self.max_total:
                return PublishResult(FULL, "Service Unavailable (too many publications)")
            pubs = self.entries[(sys.intern(key), sys.intern(event))] = {}
        if replaces is not None and replaces in pubs:
            del pubs[replaces]
            self.count -= 1
        elif len(pubs) >= self.max_per_presentity:
            del pubs[next(iter(pubs))]
            self.count -= 1
        elif self.count >= self.max_total:
            if not pubs:
                del self.entries[(key, event)]
            return PublishResult(FULL, "Service Unavailable (too many publications)")
        pub = Publication(etag, body, sys.intern(content_type), now + expires)
        pubs[etag] = pub
        self.count += 1
        return PublishResult(OK, "OK", pub, changed=True)

    def restore(self, key, event, pub):
        """A publication read back from the file (its expiry already in ``now``'s clock)."""
        pubs = self.entries.setdefault((sys.intern(key), sys.intern(event)), {})
        if pub.etag not in pubs:
            self.count += 1
        pubs[pub.etag] = pub

    def _remove(self, key, event, pubs, etag):
        del pubs[etag]
        self.count -= 1
        if not pubs:
            del self.entries[(key, event)]

    def expire(self, now):
        """Drop the publications past their expiry; the (key, event) pairs that changed."""
        changed = []
        for (key, event), pubs in list(self.entries.items()):
            gone = [etag for etag, p in pubs.items() if p.expires <= now]
            for etag in gone:
                self._remove(key, event, pubs, etag)
            if gone:
                changed.append((key, event))
        return changed

    def next_expiry(self):
        return min((p.expires for pubs in self.entries.values() for p in pubs.values()),
                   default=None)


class Subscription:
    """One subscription: a dialog between a watcher and us (RFC 6665 4.1.2, RFC 3261 12).

    ``key``/``event`` what is watched; ``pres_uri`` the SUBSCRIBE's To URI (our From in the
    NOTIFYs), ``watcher_uri`` its From URI and ``from_tag``; ``to_tag`` ours; ``user`` the
    watcher's key (for the per-user limit); ``contact`` the remote target; ``routes`` the route
    set (Record-Route values, in the order the NOTIFY's Route headers take); ``hop`` where the
    NOTIFY goes ((proto, host, port), None: from the route set or the contact); ``remote_cseq``
    the last SUBSCRIBE's CSeq; ``cseq`` the last NOTIFY's (the next one is one more; a
    dialog-info document's version is ``cseq - 1``: one document per NOTIFY); ``expires`` when
    it ends; ``local`` the name of the listener it came in on, the NOTIFY's Contact."""

    __slots__ = ("key", "event", "call_id", "from_tag", "to_tag", "pres_uri", "watcher_uri",
                 "user", "contact", "routes", "hop", "remote_cseq", "cseq", "expires",
                 "local")

    def __init__(self, key, event, call_id, from_tag, to_tag, pres_uri, watcher_uri, user,
                 contact, routes, hop, remote_cseq, cseq, expires, local=""):
        self.key = key
        self.event = event
        self.call_id = call_id
        self.from_tag = from_tag
        self.to_tag = to_tag
        self.pres_uri = pres_uri
        self.watcher_uri = watcher_uri
        self.user = user
        self.contact = contact
        self.routes = routes
        self.hop = hop
        self.remote_cseq = remote_cseq
        self.cseq = cseq
        self.expires = expires
        self.local = local

    @property
    def dialog(self):
        return (self.call_id, self.to_tag)

    def __repr__(self):
        return (f"Subscription({self.key!r}, {self.event!r}, watcher={self.watcher_uri!r}, "
                f"expires={self.expires})")


class SubscribeResult:
    """What a SUBSCRIBE did: ``status``; the ``subscription`` (when 200: to NOTIFY);
    ``ended`` True when it ended it (Expires: 0: the NOTIFY says terminated)."""

    __slots__ = ("status", "reason", "subscription", "ended")

    def __init__(self, status, reason="", subscription=None, ended=False):
        self.status = status
        self.reason = reason
        self.subscription = subscription
        self.ended = ended


class Subscriptions:
    """Every subscription, by dialog (Call-ID, our To tag), and by what it watches.  Bounded:
    ``max_total`` in all (then 503), ``max_per_user`` of one watcher (then 403)."""

    def __init__(self, max_total=4096, max_per_user=64):
        self.max_total = max_total
        self.max_per_user = max_per_user
        self.by_dialog = {}
        self.watching = {}          # (key, event) -> {dialog: Subscription}
        self.per_user = {}          # watcher key -> count

    def __len__(self):
        return len(self.by_dialog)

    def watchers(self, key, event):
        subs = self.watching.get((key, event))
        return list(subs.values()) if subs else []

    def count_of(self, key):
        """How many subscriptions watch ``key`` (any event)."""
        return sum(len(subs) for (k, _), subs in self.watching.items() if k == key)

    def new(self, sub):
        """An initial SUBSCRIBE's subscription (``sub`` built by the caller, not yet kept)."""
        old = self.by_dialog.get(sub.dialog)
        if old is not None:
            # the same dialog again (a retransmission tm did not absorb): the same answer
            old.expires = max(old.expires, sub.expires)
            return SubscribeResult(OK, "OK", old)
        if sub.expires is None:
            return SubscribeResult(BAD_REQUEST, "Bad Request")
        if len(self.by_dialog) >= self.max_total:
            return SubscribeResult(FULL, "Service Unavailable (too many subscriptions)")
        if self.per_user.get(sub.user, 0) >= self.max_per_user:
            return SubscribeResult(403, "Forbidden (too many subscriptions)")
        self.add(sub)
        return SubscribeResult(OK, "OK", sub)

    def add(self, sub):
        sub.key = sys.intern(sub.key)
        sub.event = sys.intern(sub.event)
        sub.user = sys.intern(sub.user)
        self.by_dialog[sub.dialog] = sub
        self.watching.setdefault((sub.key, sub.event), {})[sub.dialog] = sub
        self.per_user[sub.user] = self.per_user.get(sub.user, 0) + 1

    def refresh(self, call_id, to_tag, cseq, expires_at, now, event):
        """An in-dialog SUBSCRIBE (RFC 6665 4.2.1.2): ``expires_at`` the new end (``now``: an
        unsubscribe).  481 for an unknown dialog or another event package (4.1.2.2), 400 for a
        CSeq not higher (RFC 3261 12.2.2: 500; a SUBSCRIBE is not worth a retry loop)."""
        sub = self.by_dialog.get((call_id, to_tag))
        if sub is None or sub.event != event:
            return SubscribeResult(NO_SUCH_SUBSCRIPTION, "Subscription Does Not Exist")
        if cseq <= sub.remote_cseq:
            return SubscribeResult(500, "Server Internal Error (CSeq out of order)")
        sub.remote_cseq = cseq
        if expires_at <= now:
            self.remove(sub)
            return SubscribeResult(OK, "OK", sub, ended=True)
        sub.expires = expires_at
        return SubscribeResult(OK, "OK", sub)

    def remove(self, sub):
        """Forget ``sub`` (unsubscribed, timed out, its NOTIFY got 481/408); False if gone."""
        if self.by_dialog.get(sub.dialog) is not sub:
            return False
        del self.by_dialog[sub.dialog]
        watching = self.watching.get((sub.key, sub.event))
        if watching is not None:
            watching.pop(sub.dialog, None)
            if not watching:
                del self.watching[(sub.key, sub.event)]
        n = self.per_user.get(sub.user, 1) - 1
        if n:
            self.per_user[sub.user] = n
        else:
            self.per_user.pop(sub.user, None)
        return True

    def expire(self, now):
        """Remove and return the subscriptions past their end (each gets its final NOTIFY)."""
        gone = [s for s in self.by_dialog.values() if s.expires <= now]
        for sub in gone:
            self.remove(sub)
        return gone

    def next_expiry(self):
        return min((s.expires for s in self.by_dialog.values()), default=None)
