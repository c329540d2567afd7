"""The call history: the last calls through the proxy, in a small flat file that survives
restarts, ``kill -9`` and power cuts (serlite's own; Kamailio keeps CDRs in a database).

One JSON object per line, one line per finished call, appended, flushed and fsync'd when the
call ends (a write to flash per call, nothing per message).  ``size`` calls are kept; when the
file holds twice that many lines it is rewritten atomically with the newest ``size`` (so it
never holds more than ``2 * size`` lines, about 250 bytes each).  A line a crash cut short (no
line feed, or no JSON) is skipped on load, and a torn tail is cut off before the next append so
that it cannot glue itself to the next call's line.

A record: ``start``, ``answer`` (or null), ``end`` (epoch seconds, one decimal), ``duration``
(seconds talked, one decimal), ``caller``, ``callee`` (URIs), ``result`` (answered, missed,
busy, failed), ``code`` and ``reason`` (the INVITE's final status), ``call_id``.  Errors of
the disk (full, read-only) are logged, rate-limited; the calls stay in memory.
"""

import collections
import json
import os

from .. import log
from .files import make_dirs, replace_atomically

FIELD_MAX = 200         # characters kept of a URI or Call-ID: a line stays small
RESULTS = ("answered", "missed", "busy", "failed")


def _clip(text):
    text = "" if text is None else str(text)
    return text if len(text) <= FIELD_MAX else text[:FIELD_MAX]


def make_record(start, answer, end, caller, callee, result, code, reason, call_id):
    """A history record (see the module docstring); times in epoch seconds."""
    return {"start": round(start, 1), "answer": None if answer is None else round(answer, 1),
            "end": round(end, 1),
            "duration": round(end - answer, 1) if answer is not None else 0.0,
            "caller": _clip(caller), "callee": _clip(callee), "result": result,
            "code": int(code), "reason": _clip(reason), "call_id": _clip(call_id)}


def _line(record):
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


def parse_lines(data):
    """The records in ``data`` (bytes of the file), and the offset where its last complete
    line ends.  Lines that are no JSON object are skipped."""
    records = []
    end = data.rfind(b"\n") + 1
    for raw in data[:end].split(b"\n"):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except ValueError:
            continue
        if isinstance(rec, dict) and "end" in rec:
            records.append(rec)
    return records, end


class CallHistory:
    """The last ``size`` calls, newest last; ``path`` None keeps them in memory only."""

    def __init__(self, path, size=500):
        self.path = path
        self.size = max(1, int(size))
        self.calls = collections.deque(maxlen=self.size)
        self.lines = 0          # lines in the file (compacted at 2 * size)
        self._fd = None

    def load(self):
        """Read the file (missing: empty); cuts a torn last line off."""
        if not self.path:
            return
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            log.error(f"acc: cannot read the call history {self.path}: {exc.strerror}")
            data = b""
        records, end = parse_lines(data)
        self.calls.extend(records)
        self.lines = len(records)
        if end < len(data):
            log.notice(f"acc: {self.path}: a torn last line ({len(data) - end} bytes) cut off")
            try:
                os.truncate(self.path, end)
            except OSError as exc:
                log.error(f"acc: cannot repair {self.path}: {exc.strerror}")
        if self.lines > self.size:
            self._compact()

    def add(self, record):
        """Keep ``record`` and append it to the file (fsync'd when this returns, unless the
        disk refused: then logged, and kept in memory)."""
        self.calls.append(record)
        if not self.path:
            return
        if self.lines + 1 >= 2 * self.size:
            self._compact()
            return
        data = _line(record)
        try:
            if self._fd is None:
                directory = os.path.dirname(os.path.abspath(self.path))
                make_dirs(directory, 0o755)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                   | getattr(os, "O_CLOEXEC", 0), 0o600)
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, "short write")
            os.fsync(self._fd)
            self.lines += 1
        except OSError as exc:
            log.limited(("acc-history", self.path), log.ERR,
                        f"acc: cannot write the call history {self.path}: "
                        f"{exc.strerror or exc}")
            self._close()
            self._cut_torn()

    def _cut_torn(self):
        """After a failed append: cut what part of a line went out (a full disk)."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                os.truncate(self.path, end)
        except OSError:
            pass

    def _compact(self):
        """Rewrite the file with the newest ``size`` calls (atomically)."""
        self._close()
        calls = list(self.calls)

        def write(f):
            for rec in calls:
                f.write(_line(rec))
        try:
            replace_atomically(self.path, write, mode=0o600)
            self.lines = len(calls)
        except OSError as exc:
            log.limited(("acc-history", self.path), log.ERR,
                        f"acc: cannot rewrite the call history {self.path}: "
                        f"{exc.strerror or exc}")

    def _close(self):
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def close(self):
        self._close()

    def last(self, n):
        """The newest ``n`` calls, newest first."""
        calls = self.calls
        n = max(0, min(int(n), len(calls)))
        return [calls[-1 - i] for i in range(n)]
