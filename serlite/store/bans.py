"""secfilter's ban file: the bans, kept on flash across restarts, ``kill -9`` and power cuts.

A journal of JSON lines, one per ban or unban, appended and fsync'd when a ban is made or
lifted (never per message), folded into a fresh file (written atomically: ``files.py``) once it
holds more than twice the bans it describes (or at load, when a line was bad)::

    # serlite bans 1
    {"ip": "203.0.113.5", "until": 1765000900.0, "since": 1765000000.0, "reason": "failed logins", "failures": 5, "user": "100", "offences": 1}
    {"ip": "203.0.113.5", "del": 1}

Times are wall-clock seconds (the monotonic clock does not survive a reboot).  A line that is
not whole JSON (a write torn by a power cut) is skipped; the last line for an address wins.
"""

from __future__ import annotations

import json
import math
import os

from .files import fsync_dir, make_dirs, replace_atomically

HEADER = "# serlite bans 1\n"
FIELDS = ("until", "since", "reason", "failures", "user", "offences")


def _record_ok(r):
    return (isinstance(r, dict) and isinstance(r.get("ip"), str) and
            (r.get("del") == 1 or (isinstance(r.get("until"), (int, float)) and
                                   isinstance(r.get("since"), (int, float)) and
                                   math.isfinite(r["until"]) and math.isfinite(r["since"]) and
                                   isinstance(r.get("offences"), int) and
                                   isinstance(r.get("failures"), int) and
                                   isinstance(r.get("reason"), str) and
                                   isinstance(r.get("user"), str))))


class BanFile:
    """The file at ``path``; ``lines`` is how many records it holds now."""

    def __init__(self, path):
        self.path = path
        self.lines = 0

    def load(self, max_records):
        """``({ip: record}, bad_lines)``: the bans the file describes, in the order they were
        made, at most ``max_records`` (the newest).  A missing file is an empty table."""
        records = {}
        bad = 0
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return records, 0
        self.lines = 0
        for raw in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
            if not raw or raw.startswith(b"#"):
                continue
            self.lines += 1
            try:
                r = json.loads(raw.decode("utf-8"))
            except ValueError:
                bad += 1
                continue
            if not _record_ok(r):
                bad += 1
                continue
            ip = r.pop("ip")
            records.pop(ip, None)
            if r.get("del") != 1:
                records[ip] = r
        if data and not data.endswith(b"\n"):
            bad += 1    # a torn last line: rewrite, or the next append would join it
        while len(records) > max_records:
            del records[next(iter(records))]
        return records, bad

    def append(self, records):
        """Append ``records`` ([{"ip": ..., ...}]) and fsync.  OSError is the caller's."""
        text = "".join(json.dumps(r, separators=(", ", ": ")) + "\n" for r in records)
        new = not os.path.exists(self.path)
        if new:
            make_dirs(os.path.dirname(os.path.abspath(self.path)))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT |
                     getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            if new or os.fstat(fd).st_size == 0:
                text = HEADER + text
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        self.lines += len(records)

    def rewrite(self, records):
        """Replace the file with ``records`` ({ip: record}), atomically."""
        make_dirs(os.path.dirname(os.path.abspath(self.path)))

        def write(f):
            f.write(HEADER.encode())
            for ip, r in records.items():
                f.write((json.dumps(dict(ip=ip, **r), separators=(", ", ": ")) + "\n")
                        .encode("utf-8"))
        replace_atomically(self.path, write)
        self.lines = len(records)
