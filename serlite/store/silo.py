"""msilo's message store: MESSAGEs kept for users who are offline, in memory and on flash.

Pure: no clock (every method that needs the time takes ``now``, wall-clock epoch seconds),
no socket; the file I/O is the journal's, and only when a path is given.

The file ``<dir>/silo`` is an append-only journal of JSON lines, one per stored message and one
per deleted message, fsync'd before ``store()``/``delete()`` return (so a MESSAGE answered
202 survives ``kill -9`` and a power cut, and one delivered is not delivered again)::

    # serlite silo 1
    {"mid": 7, "owner": "alice", "from": "sip:bob@home.lan", "to": "sip:alice@home.lan", "ctype": "text/plain", "inc": 1765000000, "exp": 1765259200, "body": "hello"}
    {"del": 7}

``compact()`` folds it into a fresh file holding only the live messages (written to a
temporary file and renamed: ``files.py``) once it has more than twice as many lines as live
messages (and at least ``COMPACT_MIN``); ``load()`` always does when it found anything to drop.
A line that is not whole JSON (a write torn by a power cut) is skipped.  Expiry is not
written: an expired message is dropped when loaded and left out of the next compaction.

Bodies are bytes; in the file they are text (UTF-8, other bytes as surrogate escapes, which
JSON writes as ``\\udcXX``), so any body round-trips.

Memory: one ``Message`` (8 slots) per stored message, its two URI strings and its body; the
owner and Content-Type strings are interned (shared by every message of one user, type).
"""

from __future__ import annotations

import json
import math
import os
import sys

from .files import fsync_dir, make_dirs, replace_atomically

HEADER = "# serlite silo 1\n"
COMPACT_MIN = 64        # journal lines before a compaction is worth its rewrite
_ENC = "utf-8"
_ERR = "surrogateescape"


class StoreFull(Exception):
    """The owner's inbox (``per_user``) or the whole store (``total``) is full."""

    def __init__(self, what, limit):
        super().__init__(f"{what} limit of {limit} messages reached")
        self.what = what
        self.limit = limit


class Message:
    """One stored MESSAGE.  ``mid`` orders them (arrival order); ``inc`` is when it arrived
    and ``exp`` when it is dropped (epoch seconds); ``sending`` is True while a delivery is
    in flight (no second copy is sent meanwhile)."""

    __slots__ = ("mid", "owner", "from_uri", "to_uri", "ctype", "inc", "exp", "body",
                 "sending")

    def __init__(self, mid, owner, from_uri, to_uri, ctype, inc, exp, body):
        self.mid = mid
        self.owner = owner
        self.from_uri = from_uri
        self.to_uri = to_uri
        self.ctype = ctype
        self.inc = inc
        self.exp = exp
        self.body = body
        self.sending = False

    def record(self):
        return {"mid": self.mid, "owner": self.owner, "from": self.from_uri, "to": self.to_uri,
                "ctype": self.ctype, "inc": self.inc, "exp": self.exp,
                "body": self.body.decode(_ENC, _ERR)}

    @classmethod
    def from_record(cls, r):
        """The Message of a journal line's dict; ValueError if it is not one."""
        try:
            mid, inc, exp = r["mid"], r["inc"], r["exp"]
            owner, from_uri, to_uri, ctype, body = (r["owner"], r["from"], r["to"], r["ctype"],
                                                    r["body"])
        except (KeyError, TypeError):
            raise ValueError("not a message record")
        if not (isinstance(mid, int) and mid > 0 and
                all(isinstance(t, (int, float)) and math.isfinite(t) for t in (inc, exp)) and
                all(isinstance(s, str) for s in (owner, from_uri, to_uri, ctype, body))):
            raise ValueError("bad field in a message record")
        return cls(mid, sys.intern(owner), from_uri, to_uri, sys.intern(ctype), inc, exp,
                   body.encode(_ENC, _ERR))


class SiloStore:
    """The stored messages, by owner in arrival order; written through to ``path`` (None:
    memory only).  ``per_user`` (0: no limit) and ``total`` bound what ``store()`` accepts."""

    def __init__(self, path=None, per_user=0, total=0):
        self.path = path
        self.per_user = per_user
        self.total = total
        self.inboxes = {}       # owner -> [Message, ...] by mid
        self.count = 0
        self.next_mid = 1
        self.lines = 0          # records in the file now

    def __len__(self):
        return self.count

    def messages(self, owner):
        """The owner's messages, oldest first (the store's list: do not change it)."""
        return self.inboxes.get(owner, ())

    def counts(self):
        """{owner: messages stored}."""
        return {owner: len(box) for owner, box in self.inboxes.items()}

    # -- changes -------------------------------------------------------------------------
    def store(self, owner, from_uri, to_uri, ctype, body, now, expire_time):
        """Keep a message for ``owner``; returns its Message once it is on flash.  StoreFull
        when a limit is reached; OSError when it could not be written (nothing kept)."""
        box = self.inboxes.get(owner)
        if self.per_user and box is not None and len(box) >= self.per_user:
            raise StoreFull("per-user", self.per_user)
        if self.total and self.count >= self.total:
            raise StoreFull("total", self.total)
        owner = sys.intern(owner)
        msg = Message(self.next_mid, owner, from_uri, to_uri, sys.intern(ctype), int(now),
                      int(now) + expire_time, bytes(body))
        self._append([msg.record()])
        self.next_mid += 1
        if box is None:
            box = self.inboxes[owner] = []
        box.append(msg)
        self.count += 1
        return msg

    def delete(self, msg):
        """Drop a message (delivered); written through.  False if it was not stored (expired
        meanwhile).  OSError when the delete could not be written (it is dropped anyway: a
        restart may deliver it a second time, the lesser harm)."""
        if not self._forget(msg):
            return False
        self._append([{"del": msg.mid}])
        return True

    def _forget(self, msg):
        box = self.inboxes.get(msg.owner)
        if box is None or msg not in box:
            return False
        box.remove(msg)
        if not box:
            del self.inboxes[msg.owner]
        self.count -= 1
        return True

    def expire(self, now):
        """Drop the messages whose time is up; returns how many.  Not written: a compaction
        or the next load leaves them out."""
        gone = 0
        for owner in list(self.inboxes):
            box = self.inboxes[owner]
            keep = [m for m in box if m.exp > now or m.sending]
            if len(keep) != len(box):
                gone += len(box) - len(keep)
                if keep:
                    self.inboxes[owner] = keep
                else:
                    del self.inboxes[owner]
        self.count -= gone
        return gone

    # -- the file ------------------------------------------------------------------------
    def load(self, now):
        """Read the file (a missing one is an empty store); returns warnings (strings).
        Expired messages are left out; the file is compacted when it held anything to drop."""
        self.inboxes, self.count, self.lines = {}, 0, 0
        if self.path is None:
            return []
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        warnings = []
        live = {}           # mid -> Message, in file order
        bad = 0
        torn = bool(data) and not data.endswith(b"\n")
        lines = data.split(b"\n")
        if not torn:
            lines.pop()
        for number, raw in enumerate(lines, 1):
            if not raw or raw.startswith(b"#"):
                continue
            self.lines += 1
            try:
                r = json.loads(raw.decode(_ENC))
                if isinstance(r, dict) and "del" in r and isinstance(r["del"], int):
                    live.pop(r["del"], None)
                    self.next_mid = max(self.next_mid, r["del"] + 1)
                    continue
                msg = Message.from_record(r)
            except ValueError:      # json's errors and a bad record alike
                bad += 1
                if not (torn and number == len(lines)):
                    warnings.append(f"{self.path}:{number}: not a message record, skipped")
                continue
            live[msg.mid] = msg
            self.next_mid = max(self.next_mid, msg.mid + 1)
        if torn:
            warnings.append(f"{self.path}: last line torn (a write cut short), skipped")
        for msg in sorted(live.values(), key=lambda m: m.mid):
            if msg.exp <= now:
                continue
            self.inboxes.setdefault(msg.owner, []).append(msg)
            self.count += 1
        if bad or self.lines > self.count + 1:     # + 1: the last mid's delete, kept
            self.compact()
        return warnings

    def compact_due(self):
        return self.path is not None and self.lines > max(COMPACT_MIN, 2 * self.count)

    def compact(self):
        """Rewrite the file with the live messages only (atomically).  OSError is the
        caller's; the old file is then still whole."""
        if self.path is None:
            return
        make_dirs(os.path.dirname(os.path.abspath(self.path)))
        msgs = sorted((m for box in self.inboxes.values() for m in box), key=lambda m: m.mid)
        # the highest mid is kept even when it was deleted: mids are never reused
        last = self.next_mid - 1
        tail = [{"del": last}] if last and (not msgs or msgs[-1].mid != last) else []

        def write(f):
            f.write(HEADER.encode())
            for r in [m.record() for m in msgs] + tail:
                f.write(_line(r))
        replace_atomically(self.path, write)
        self.lines = len(msgs) + len(tail)

    def _append(self, records):
        if self.path is None:
            return
        data = b"".join(_line(r) for r in records)
        new = not os.path.exists(self.path)
        directory = os.path.dirname(os.path.abspath(self.path))
        if new:
            make_dirs(directory)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT |
                     getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                data = HEADER.encode() + data
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(28, "short write (disk full?)")
                os.fsync(fd)
            except OSError:
                # a part of a line left behind would join the next one: cut it off
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)
        if new:
            fsync_dir(directory)
        self.lines += len(records)


def _line(record):
    return (json.dumps(record, separators=(", ", ": ")) + "\n").encode(_ENC, _ERR)
