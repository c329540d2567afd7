"""The location table: SER's usrloc, in memory and on flash.

A ``LocationStore`` maps an address of record (``"alice@home.lan"``) to its bindings (one
``Binding`` per registered Contact).  The registrar writes it with ``save()``, ``lookup()`` reads
it, a timer calls ``expire()`` and ``flush()``.  The store reads no clock: every method that needs
the time takes ``now`` (epoch seconds, int or float).

``db_mode`` is usrloc's modparam of the same name:

* 0 -- memory only; nothing is read or written.
* 1 -- write-through: ``save()`` and ``delete_aor()`` append to ``<dir>/<table>.journal`` and
  fsync it before they return, so an acknowledged REGISTER survives ``kill -9`` and power loss.
  ``flush()`` folds the journal into the snapshot ``<dir>/<table>`` once it grows past
  ``max(journal_min, 2 * records in the snapshot)`` lines; ``load()`` and ``close()`` always do.
* 2 -- write-back: changes stay in memory; ``flush()`` (timer, exit) rewrites the snapshot when
  anything changed.  A crash loses what changed since the last flush.

Expiry is never written on its own: a record whose ``expires`` has passed is dropped when loaded,
and left out of the next snapshot.  The file format is in docs/usrloc-format.md.

The store owns the ``Binding`` objects it is given and returns them from ``lookup()``/``get()``:
treat them as read-only, and make a new ``Binding`` for each change.

Memory (a router may hold 100 000 bindings; ``python3 -m bench.memory``): per binding the store
keeps one ``Binding`` (8 slots; the NAT/Path fields only when set, see ``Binding``), its
contact and Call-ID strings, and one dict entry per AOR whose key is also ``Binding.aor``.  The
rest is shared: an AOR with one binding maps to it directly (no tuple), User-Agent, socket and
Path strings are interned, q and ``expires`` values are one int object each.
"""

from __future__ import annotations

import binascii
import os
import re
import sys

from .files import fsync_dir, make_dirs, replace_atomically

__all__ = ["Binding", "LocationStore", "parse_db_url", "FLAG_NAT",
           "DB_MEMORY", "DB_WRITE_THROUGH", "DB_WRITE_BACK"]

DB_MEMORY = 0
DB_WRITE_THROUGH = 1
DB_WRITE_BACK = 2

FLAG_NAT = 1            # Binding.flags: the UA is behind NAT; send to ``received``

FORMAT_VERSION = 1
FIELDS = ("aor", "contact", "expires", "q", "call_id", "cseq", "user_agent", "received",
          "socket", "path", "flags")
_SNAP_MAGIC = "# serlite usrloc "
_JOURNAL_MAGIC = "# serlite usrloc-journal "
SNAPSHOT_HEADER = f"{_SNAP_MAGIC}{FORMAT_VERSION}: {' '.join(FIELDS)}\n"
JOURNAL_HEADER = f"{_JOURNAL_MAGIC}{FORMAT_VERSION}\n"

_ENC = "utf-8"
_ERR = "surrogateescape"    # any str made from bytes round-trips
_CHUNK = 512                # snapshot records written per write() call


_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(//)?")


def parse_db_url(url: str) -> str:
    """The directory of usrloc's ``db_url``: ``dbtext:///var/lib/ser`` -> ``/var/lib/ser``.

    As in SER's dbtext, the path is what follows ``dbtext://`` (so ``dbtext://db`` is relative).
    A plain path is returned as it is; any other scheme raises ``ValueError``.
    """
    m = _SCHEME_RE.match(url)
    if not m:
        if not url:
            raise ValueError("db_url is empty")
        return url
    scheme, rest = m.group(1), url[m.end():]
    if scheme.lower() != "dbtext":
        raise ValueError(f"db_url {url!r}: scheme {scheme!r} is not supported, "
                         f"only dbtext:// (e.g. dbtext:///var/lib/ser)")
    if not m.group(2):
        raise ValueError(f"db_url {url!r}: write dbtext:///absolute/dir")
    if not rest:
        raise ValueError(f"db_url {url!r}: no directory after dbtext://")
    return rest


class Binding:
    """One Contact of one address of record.

    ``expires`` is absolute (epoch seconds); ``q`` is the q-value times 1000, or -1 when the
    Contact had none (it then sorts below q=0, as in SER); ``flags`` bit 1 (``FLAG_NAT``) means
    NATed.  Strings that were not given are ``''``.

    When ``received``, ``path`` and ``flags`` are all empty (a phone on the LAN, the usual case)
    the constructor makes a ``Binding``, whose three fields are this class's defaults: three
    slots fewer, 96 bytes instead of 120, and the table holds one object per binding.  Otherwise
    it makes a ``_FullBinding``.  Use ``isinstance(x, Binding)``, not ``type(x) is Binding``.
    """

    __slots__ = ("aor", "contact", "expires", "q", "call_id", "cseq", "user_agent", "socket")
    received = ""       # read-only on a plain Binding; a _FullBinding's slots shadow them
    path = ""
    flags = 0

    def __new__(cls, aor, contact, expires, q=-1, call_id="", cseq=0, user_agent="",
                received="", socket="", path="", flags=0):
        if received or path or flags:
            self = object.__new__(_FullBinding)
            self.received = received
            self.path = path
            self.flags = flags
        else:
            self = object.__new__(Binding)
        self.aor = aor
        self.contact = contact
        self.expires = expires
        self.q = q
        self.call_id = call_id
        self.cseq = cseq
        self.user_agent = user_agent
        self.socket = socket
        return self

    def __repr__(self):
        return (f"Binding({self.aor!r}, {self.contact!r}, expires={self.expires}, q={self.q}, "
                f"call_id={self.call_id!r}, cseq={self.cseq})")

    def __eq__(self, other):
        if not isinstance(other, Binding):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in FIELDS)

    __hash__ = None


class _FullBinding(Binding):
    """A binding with ``received``, ``path`` or ``flags`` set (made by ``Binding()``)."""

    __slots__ = ("received", "path", "flags")


class _Bad(Exception):
    """A record that cannot be read; the message is the reason."""


# --- record <-> text -------------------------------------------------------------------------

_ESC_TABLE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_UNESC = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
_ESC_RE = re.compile(r"\\(.?)", re.S)


def _unesc_one(m):
    try:
        return _UNESC[m.group(1)]
    except KeyError:
        raise _Bad(f"bad escape {m.group(0)!r}") from None


def _unesc(s):
    return _ESC_RE.sub(_unesc_one, s) if "\\" in s else s


def _record(b):
    """The record line of ``b`` (without newline): its fields tab-separated, escaped."""
    s = (f"{b.aor}\t{b.contact}\t{b.expires}\t{b.q}\t{b.call_id}\t{b.cseq}\t{b.user_agent}\t"
         f"{b.received}\t{b.socket}\t{b.path}\t{b.flags}")
    if s.count("\t") != 10 or "\\" in s or "\n" in s or "\r" in s:
        s = "\t".join(str(getattr(b, f)).translate(_ESC_TABLE) for f in FIELDS)
    return s


_Q = {}         # one int object per q value (0..1000 are not all small ints)


def _int(text, name, lo, hi):
    try:
        v = int(text)
    except ValueError:
        raise _Bad(f"{name} {text!r} is not a number") from None
    if not lo <= v <= hi:
        raise _Bad(f"{name} {v} out of range")
    return v


def _parse_record(f):
    """A Binding from the 11 (escaped) fields of a record; raises ``_Bad``."""
    if len(f) != 11:
        raise _Bad(f"{len(FIELDS)} fields expected, got {len(f)}")
    aor, contact, expires, q, call_id, cseq, ua, received, socket, path, flags = f
    if "\\" in aor or "\\" in contact or "\\" in call_id or "\\" in ua or "\\" in received \
            or "\\" in socket or "\\" in path:
        aor, contact, call_id, ua, received, socket, path = map(
            _unesc, (aor, contact, call_id, ua, received, socket, path))
    if not aor:
        raise _Bad("empty aor")
    if not contact:
        raise _Bad("empty contact")
    q = _int(q, "q", -1, 1000)
    return Binding(aor, contact, _int(expires, "expires", 0, 2**63), _Q.setdefault(q, q),
                   call_id, _int(cseq, "cseq", 0, 2**32 - 1), sys.intern(ua), received,
                   sys.intern(socket), sys.intern(path), _int(flags, "flags", 0, 2**32 - 1))


def _journal_line(op, text):
    """``op<TAB>text<TAB>crc32\\n`` as bytes; the checksum covers everything before its tab."""
    body = f"{op}\t{text}".encode(_ENC, _ERR)
    return b"%s\t%08x\n" % (body, binascii.crc32(body))


# --- the store -------------------------------------------------------------------------------

def _insert(lst, b):
    """Put ``b`` into ``lst`` (q descending, most recent first), replacing its contact."""
    contact = b.contact
    for i, old in enumerate(lst):
        if old.contact == contact:
            del lst[i]
            break
    q = b.q
    for i, old in enumerate(lst):
        if old.q <= q:
            lst.insert(i, b)
            return
    lst.append(b)


def _remove(lst, contact):
    for i, old in enumerate(lst):
        if old.contact == contact:
            del lst[i]
            return True
    return False


def _neg_q(b):
    return -b.q


class LocationStore:
    """The bindings of every address of record, and their files (see the module docstring).

    ``path`` is the directory (``parse_db_url(db_url)``); the files are ``<path>/<table>`` and
    ``<path>/<table>.journal``.  The constructor does no I/O; in db_mode 1 and 2 call ``load()``
    before anything else.
    """

    def __init__(self, path: str | None, db_mode: int, *, table: str = "location",
                 journal_min: int = 1000):
        if db_mode not in (DB_MEMORY, DB_WRITE_THROUGH, DB_WRITE_BACK):
            raise ValueError(f"usrloc db_mode {db_mode!r}: must be 0, 1 or 2")
        if db_mode and not path:
            raise ValueError(f"usrloc db_mode {db_mode} needs a db_url")
        if not table or "/" in table or table.startswith("."):
            raise ValueError(f"bad table name {table!r}")
        self.db_mode = db_mode
        self.dir = path
        self.table = table
        self.journal_min = journal_min
        self._snap = os.path.join(path, table) if path else ""
        self._journal = self._snap + ".journal"
        self._tmp = self._snap + ".tmp"
        # aor -> its Binding, or a tuple of them (q descending, most recent first) when several;
        # a lone Binding saves the 48-byte tuple for the usual one-phone AOR.  Read with _of().
        self._aors = {}
        self._count = 0
        self._min_expires = None    # no binding expires before this (None: empty)
        # expires value -> one int object for it: REGISTERs in the same second with the same
        # Expires (and the records of a snapshot) share it, 32 bytes less per binding.  Values
        # that have passed are dropped by expire().
        self._expiries = {}
        self._loaded = db_mode == DB_MEMORY
        self._closed = False
        self._dirty = False         # mode 2: changed since the last snapshot
        self._snap_records = 0      # records in the snapshot file
        self._jfd = -1              # mode 1: the journal, open for appending
        self._jsize = 0
        self._jlines = 0            # records in the journal
        self._jbroken = False       # a journal write failed: rewrite everything before the next

    # -- reading -------------------------------------------------------------------------------

    def __len__(self):
        return self._count

    def aor_count(self):
        return len(self._aors)

    def aors(self):
        """The addresses of record (a live view: don't change the store while iterating)."""
        return self._aors.keys()

    def bindings(self):
        """Every binding, expired ones not yet dropped by ``expire()`` included."""
        for bs in self._aors.values():
            if type(bs) is not tuple:
                yield bs
            else:
                yield from bs

    def lookup(self, aor, now):
        """The live bindings of ``aor``: highest q first, then the most recently saved."""
        bs = self._aors.get(aor)
        if bs is None:
            return []
        if type(bs) is not tuple:
            return [bs] if bs.expires > now else []
        return [b for b in bs if b.expires > now]

    def get(self, aor, contact):
        """The binding of ``aor`` whose Contact is exactly ``contact``, or None.  It may have
        expired if ``expire()`` has not run since: compare ``expires`` with now."""
        for b in self._of(aor):
            if b.contact == contact:
                return b
        return None

    # -- changing ------------------------------------------------------------------------------

    def save(self, aor, now, *, put=(), delete=()):
        """Apply one REGISTER's changes to ``aor`` atomically: first remove the bindings whose
        Contact is in ``delete`` (strings), then insert or replace (by Contact) each Binding of
        ``put``.  A put whose ``expires <= now`` removes that Contact.  In db_mode 1 the change
        is fsync'd to the journal when this returns; on OSError nothing has changed.
        """
        if self._closed or not self._loaded:
            self._check()
        if not delete and isinstance(put, (list, tuple)) and len(put) == 1:
            # The usual REGISTER: the one Contact of a phone, new or refreshed.  When the AOR
            # has no other binding, the result is that Binding alone: no list to build, sort
            # or search (the general path below gives the same table and journal).
            b = put[0]
            old = self._aors.get(aor)
            if old is None or (type(old) is not tuple and old.contact == b.contact):
                if b.aor != aor:
                    raise ValueError(f"binding of {b.aor!r} saved under {aor!r}")
                self._own(b, aor if old is None else old.aor)
                if b.expires > now:
                    if self.db_mode == DB_WRITE_THROUGH:
                        self._append([("put", _record(b))], now)
                    self._aors[aor] = b         # an existing key keeps its (shared) string
                    if old is None:
                        self._count += 1
                    low = self._min_expires
                    if low is None or b.expires < low:
                        self._min_expires = b.expires
                    self._dirty = True
                    if self.db_mode == DB_WRITE_THROUGH:
                        self._compact_if_huge(now)
                    return
        lst = list(self._of(aor))
        changed = False
        # journal lines are made only in db_mode 1: in 0 and 2 they would be garbage per save
        lines = [] if self.db_mode == DB_WRITE_THROUGH else None
        for contact in delete:
            if _remove(lst, contact):
                changed = True
                if lines is not None:
                    lines.append(("del", f"{_esc(aor)}\t{_esc(contact)}"))
        key = None
        for b in put:
            if b.aor != aor:
                raise ValueError(f"binding of {b.aor!r} saved under {aor!r}")
            if key is None:
                key = self._key(aor)
            self._own(b, key)
            if b.expires > now:
                _insert(lst, b)
                changed = True
                if lines is not None:
                    lines.append(("put", _record(b)))
            elif _remove(lst, b.contact):
                changed = True
                if lines is not None:
                    lines.append(("del", f"{_esc(aor)}\t{_esc(b.contact)}"))
        if not changed:
            return
        if lines is not None:
            self._append(lines, now)
        self._set(aor, lst)
        self._compact_if_huge(now)

    def delete_aor(self, aor, now):
        """Remove every binding of ``aor``; returns how many there were."""
        self._check()
        n = len(self._of(aor))
        if n:
            if self.db_mode == DB_WRITE_THROUGH:
                self._append([("delaor", _esc(aor))], now)
            self._set(aor, ())
            self._compact_if_huge(now)
        return n

    def expire(self, now):
        """Drop the bindings that expired by ``now``; returns how many.  Nothing is written: the
        loader drops expired records and the next snapshot leaves them out."""
        self._check()
        if self._min_expires is None or now < self._min_expires:
            return 0
        dropped = 0
        gone = []
        low = None
        aors = self._aors
        for aor, bs in aors.items():
            if type(bs) is not tuple:
                if bs.expires > now:
                    if low is None or bs.expires < low:
                        low = bs.expires
                else:
                    dropped += 1
                    gone.append(aor)
                continue
            live = [b for b in bs if b.expires > now]
            if len(live) != len(bs):
                dropped += len(bs) - len(live)
                if len(live) > 1:
                    aors[aor] = tuple(live)
                elif live:
                    aors[aor] = live[0]
                else:
                    gone.append(aor)
            for b in live:
                if low is None or b.expires < low:
                    low = b.expires
        for aor in gone:
            del aors[aor]
        self._count -= dropped
        self._min_expires = low
        self._expiries = {e: e for e in self._expiries if e > now}
        return dropped

    def flush(self, now):
        """db_mode 2: rewrite the snapshot if anything changed.  db_mode 1: fold the journal
        into the snapshot if it has grown past the threshold.  db_mode 0: nothing."""
        self._check()
        if self.db_mode == DB_WRITE_BACK:
            if self._dirty:
                self._compact(now)
        elif self.db_mode == DB_WRITE_THROUGH:
            if self._jbroken or self._jlines > self._journal_limit():
                self._compact(now)

    def close(self, now):
        """Write what is not yet in the snapshot (db_mode 1: the journal; 2: dirty changes) and
        close the files.  The store cannot be used afterwards."""
        if self._closed:
            return
        try:
            if self._loaded and self.db_mode == DB_WRITE_THROUGH:
                if self._jlines or self._jbroken:
                    self._compact(now)
            elif self._loaded and self.db_mode == DB_WRITE_BACK and self._dirty:
                self._compact(now)
        finally:
            self._close_journal()
            self._closed = True

    # -- loading -------------------------------------------------------------------------------

    def load(self, now):
        """Read the snapshot and replay the journal (db_mode 1 and 2; db_mode 0 reads nothing).

        Creates the directory (0700) if missing; a missing file is an empty table.  Expired
        records are dropped.  A bad record is skipped and reported in the returned warnings,
        ``"location:17: bad record (reason), skipped"``; every good record is kept.  If there
        was a journal or a bad record, the snapshot is rewritten at once (if that fails, a warning
        says so and the next write retries).  Raises ``ValueError`` for a file that is not ours
        (or of a newer format), rather than overwrite it; ``OSError`` if it cannot be read.
        """
        if self._closed:
            raise RuntimeError("location store is closed")
        if self.db_mode == DB_MEMORY:
            self._loaded = True
            return []
        if self._loaded:
            raise RuntimeError("location store already loaded")
        make_dirs(self.dir, 0o700)
        try:
            os.unlink(self._tmp)       # a snapshot rewrite that a crash interrupted
        except FileNotFoundError:
            pass
        warnings = []
        snap_bad = self._read_snapshot(now, warnings)
        jlines, jgood = self._read_journal(now, warnings)
        self._loaded = True
        if jlines or snap_bad:
            try:
                self._compact(now)
            except OSError as e:
                # Keep serving from memory (a full disk: the snapshot does not fit).
                warnings.append(f"{self._snap}: cannot rewrite ({e.strerror or e})")
                self._dirty = True
                if self.db_mode == DB_WRITE_THROUGH:
                    self._keep_journal(jlines, jgood)
        return warnings

    def _keep_journal(self, jlines, jgood):
        """Mode 1, the snapshot could not be rewritten at load: append to the journal as it
        is, cut after its last whole save (``jgood`` bytes: a torn line or an unfinished save
        must not glue onto the next one).  If even that fails, the next save() rewrites
        everything first (or fails)."""
        try:
            if self._jfd < 0:
                self._open_journal()
            if self._jsize != jgood:
                os.ftruncate(self._jfd, jgood)
                os.fsync(self._jfd)
                self._jsize = jgood
            self._jlines = jlines
            self._jbroken = False
        except OSError:
            self._close_journal()
            self._jbroken = True

    def _read_snapshot(self, now, warnings):
        """Load the snapshot into the (empty) table; returns the number of bad lines."""
        name = self.table
        try:
            f = open(self._snap, "rb")
        except FileNotFoundError:
            return 0
        # aor -> its Binding, or a list while it has several (sorted into a tuple at the end):
        # no list per one-binding AOR, whose freed memory would stay in the process
        aors = {}
        several = []
        expiries = self._expiries
        bad = 0
        records = 0
        count = 0
        low = None
        with f:
            for lineno, raw in enumerate(f, 1):
                line = raw.decode(_ENC, _ERR).rstrip("\r\n")
                if lineno == 1 and line.startswith("#"):
                    self._check_header(line, _SNAP_MAGIC, self._snap)
                    continue
                if not line:
                    continue
                try:
                    b = _parse_record(line.split("\t"))
                except _Bad as e:
                    if lineno == 1:
                        raise ValueError(f"{self._snap}: not a serlite usrloc file "
                                         f"(first line {line[:60]!r}); move it away") from None
                    warnings.append(f"{name}:{lineno}: bad record ({e}), skipped")
                    bad += 1
                    continue
                if lineno == 1:
                    warnings.append(f"{name}:1: no header line")
                    bad += 1
                records += 1
                expires = b.expires
                if expires <= now:
                    continue
                b.expires = expiries.setdefault(expires, expires)
                old = aors.get(b.aor)
                if old is None:
                    aors[b.aor] = b
                    count += 1
                else:
                    if type(old) is list:
                        lst = old
                    else:
                        lst = aors[old.aor] = [old]
                        several.append(old.aor)
                    b.aor = lst[0].aor
                    if _remove(lst, b.contact):
                        warnings.append(f"{name}:{lineno}: duplicate contact, replaces the "
                                        f"earlier record")
                        bad += 1
                        count -= 1
                    lst.append(b)
                    count += 1
                if low is None or expires < low:
                    low = expires
        for aor in several:
            lst = aors[aor]
            if len(lst) > 1:
                lst.sort(key=_neg_q)     # stable: keeps the file's order within one q
                aors[aor] = tuple(lst)
            else:
                aors[aor] = lst[0]
        self._aors = aors
        self._count = count
        self._min_expires = low
        self._snap_records = records
        return bad

    def _read_journal(self, now, warnings):
        """Replay the journal; returns the number of lines it had (header excluded) and the
        length of its good part: up to the end of the last whole save (or of the header)."""
        name = self.table + ".journal"
        try:
            f = open(self._journal, "rb")
        except FileNotFoundError:
            return 0, 0
        pending = []        # the ops of a save() whose last line has not been seen yet
        start = 0
        lines = 0
        offset = good = 0
        with f:
            for lineno, raw in enumerate(f, 1):
                offset += len(raw)
                if lineno == 1 and raw.startswith(b"# "):
                    if raw.endswith(b"\n"):
                        self._check_header(raw.decode(_ENC, _ERR).rstrip("\r\n"),
                                           _JOURNAL_MAGIC, self._journal)
                        good = offset
                    else:       # torn with the first save: must not be appended to
                        lines += 1
                        warnings.append(f"{name}:1: torn last line (interrupted write), "
                                        f"skipped")
                    continue
                lines += 1
                body, tab, crc = raw.rstrip(b"\n").rpartition(b"\t")
                ok = bool(tab) and len(crc) == 8
                if ok:
                    try:
                        ok = int(crc, 16) == binascii.crc32(body)
                    except ValueError:
                        ok = False
                if not ok:
                    if not raw.endswith(b"\n"):
                        warnings.append(f"{name}:{lineno}: torn last line (interrupted write), "
                                        f"skipped")
                    else:
                        warnings.append(f"{name}:{lineno}: bad record (checksum), skipped")
                    continue
                fields = body.decode(_ENC, _ERR).split("\t")
                op = fields[0]
                more = op.endswith("+")
                if more:
                    op = op[:-1]
                try:
                    pending.append(self._parse_op(op, fields[1:]))
                except _Bad as e:
                    warnings.append(f"{name}:{lineno}: bad record ({e}), skipped")
                if len(pending) == 1:
                    start = lineno
                if not more:
                    for change in pending:
                        self._replay(change, now)
                    pending = []
                    good = offset
        if pending:
            warnings.append(f"{name}:{start}: unfinished save ({len(pending)} of its changes "
                            f"at the end), discarded")
        return lines, good

    @staticmethod
    def _check_header(line, magic, path):
        if not line.startswith(magic):
            raise ValueError(f"{path}: not a serlite usrloc file (first line {line[:60]!r})")
        version = line[len(magic):].split(":", 1)[0].strip()
        if version != str(FORMAT_VERSION):
            raise ValueError(f"{path}: format version {version!r}, this serlite reads "
                             f"{FORMAT_VERSION}")

    @staticmethod
    def _parse_op(op, f):
        if op == "put":
            return ("put", _parse_record(f))
        if op == "del":
            if len(f) != 2:
                raise _Bad(f"del: 2 fields expected, got {len(f)}")
            return ("del", _unesc(f[0]), _unesc(f[1]))
        if op == "delaor":
            if len(f) != 1:
                raise _Bad(f"delaor: 1 field expected, got {len(f)}")
            return ("delaor", _unesc(f[0]))
        raise _Bad(f"unknown operation {op[:20]!r}")

    def _replay(self, change, now):
        op = change[0]
        if op == "put":
            b = change[1]
            aor = b.aor
            lst = list(self._of(aor))
            if b.expires > now:
                self._own(b, self._key(aor))
                _insert(lst, b)
            elif not _remove(lst, b.contact):
                return
        elif op == "del":
            aor = change[1]
            lst = list(self._of(aor))
            if not _remove(lst, change[2]):
                return
        else:
            aor, lst = change[1], ()
        self._set(aor, lst)

    # -- internals -----------------------------------------------------------------------------

    def _of(self, aor):
        bs = self._aors.get(aor, ())
        return (bs,) if type(bs) is not tuple else bs

    def _check(self):
        if self._closed:
            raise RuntimeError("location store is closed")
        if not self._loaded:
            raise RuntimeError("location store: call load() first")

    def _key(self, aor):
        """The string object that keys ``aor`` in the table (``aor`` itself when it has none):
        every binding of an AOR shares it."""
        bs = self._aors.get(aor)
        if bs is None:
            return aor
        return bs.aor if type(bs) is not tuple else bs[0].aor

    def _own(self, b, key):
        """Share strings and ints that repeat across bindings (``key`` is ``_key(b.aor)``); make
        ``expires`` and ``q`` plain ints."""
        b.aor = key
        expires = b.expires
        if type(expires) is not int:
            expires = int(expires)
        b.expires = self._expiries.setdefault(expires, expires)
        q = b.q
        if type(q) is not int:
            q = int(q)
        if not -1 <= q <= 1000:
            raise ValueError(f"q {q} out of range (-1 or 0..1000)")
        b.q = _Q.setdefault(q, q)
        b.user_agent = sys.intern(b.user_agent)
        b.socket = sys.intern(b.socket)
        if b.path:      # else a Binding without the slot: the class's ''
            b.path = sys.intern(b.path)

    def _set(self, aor, lst):
        old = self._of(aor)
        self._count += len(lst) - len(old)
        if lst:
            self._aors[aor] = lst[0] if len(lst) == 1 else tuple(lst)
            low = self._min_expires
            for b in lst:
                if low is None or b.expires < low:
                    low = b.expires
            self._min_expires = low
        elif old:
            del self._aors[aor]
        self._dirty = True

    def _journal_limit(self):
        return max(self.journal_min, 2 * self._snap_records)

    def _append(self, changes, now):
        """Write one save()'s journal lines and fsync them; on error truncate them away."""
        if self._jbroken:
            self._compact(now)
        n = len(changes)
        data = b"".join(_journal_line(op + ("+" if i < n - 1 else ""), text)
                        for i, (op, text) in enumerate(changes))
        if self._jfd < 0:
            self._open_journal()
        if self._jsize == 0:
            data = JOURNAL_HEADER.encode() + data
        fd = self._jfd
        syncing = False
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            syncing = True
            os.fsync(fd)
        except OSError:
            # Whatever reached the file must not glue onto the next line: cut it off.  A write
            # that failed (ENOSPC, EDQUOT) leaves the journal as good as before once that cut is
            # made, so the next save appends again as soon as its line fits (a full disk must
            # not need room for a whole snapshot to recover).  After a failed fsync the page
            # cache cannot be trusted: rewrite everything before the next save.
            try:
                os.ftruncate(fd, self._jsize)
            except OSError:
                syncing = True
            if syncing:
                self._jbroken = True
                self._close_journal()
            raise
        self._jsize += len(data)
        self._jlines += n

    def _compact_if_huge(self, now):
        """Mode 1 when flush() is not being called: compact after the change is applied.  The
        change is durable already, so a failure here is left for flush()/close() to report."""
        if self.db_mode == DB_WRITE_THROUGH and self._jlines > 8 * self._journal_limit():
            try:
                self._compact(now)
            except OSError:
                pass

    def _open_journal(self):
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self._journal, flags | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(self._journal, flags, 0o600)
            created = False
        try:
            if created:
                self._fsync_dir()       # the new name must survive too
            self._jsize = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        self._jfd = fd

    def _close_journal(self):
        if self._jfd >= 0:
            fd, self._jfd = self._jfd, -1
            os.close(fd)

    def _compact(self, now):
        """Write the snapshot atomically, then empty the journal (mode 1) or remove it."""
        self._write_snapshot(now)
        self._dirty = False
        if self.db_mode == DB_WRITE_THROUGH:
            # The snapshot now holds every journal line; replaying them again is harmless, so a
            # crash before the truncation is durable loses nothing.
            try:
                if self._jfd < 0:
                    self._open_journal()
                os.ftruncate(self._jfd, 0)
                os.fsync(self._jfd)
            except OSError:
                self._jbroken = True
                self._close_journal()
                raise
            self._jsize = 0
            self._jlines = 0
            self._jbroken = False
        else:
            try:
                os.unlink(self._journal)
            except FileNotFoundError:
                return
            self._fsync_dir()

    def _write_snapshot(self, now):
        def write(f):
            f.write(SNAPSHOT_HEADER.encode())
            records = 0
            chunk = []
            for b in self.bindings():
                if b.expires > now:
                    chunk.append(_record(b))
                    if len(chunk) >= _CHUNK:
                        chunk.append("")
                        f.write("\n".join(chunk).encode(_ENC, _ERR))
                        records += len(chunk) - 1
                        chunk = []
            if chunk:
                chunk.append("")
                f.write("\n".join(chunk).encode(_ENC, _ERR))
                records += len(chunk) - 1
            return records
        self._snap_records = replace_atomically(self._snap, write, 0o600, tmp=self._tmp)

    def _fsync_dir(self):
        fsync_dir(self.dir)


def _esc(s):
    return s.translate(_ESC_TABLE) if ("\\" in s or "\t" in s or "\n" in s or "\r" in s) else s
