"""The presence module's tables on flash: ``presentity`` (what each publisher said) and
``active_watchers`` (the subscriptions), Kamailio's table names, in the directory of its
``db_url`` (``dbtext://DIR``), so that state survives a restart, ``kill -9`` and a power cut.

Each table is a journal of JSON lines, one per change, appended and fsync'd before the
request that made it is answered (as the location journal is before a REGISTER's 200), and
rewritten atomically (``files.py``) once it holds more than twice the records it describes::

    # serlite presentity 1
    {"k": "100\\tpresence\\ta.1", "body": "<?xml ...", "type": "application/pidf+xml", "until": 1765000900.0}
    {"k": "100\\tpresence\\ta.1", "del": 1}

``k`` is the record's key (fields joined with a tab), times are wall-clock seconds.  A line
that is not whole JSON (a write torn by a power cut) is skipped; the last line of a key wins.
"""

from __future__ import annotations

import json
import os

from .files import fsync_dir, make_dirs, replace_atomically


class JournalFile:
    """One table's file at ``path``; ``lines`` counts the records it holds now."""

    def __init__(self, path, kind):
        self.path = path
        self.header = f"# serlite {kind} 1\n"
        self.lines = 0

    def load(self):
        """``({key: record}, bad_lines)`` in the order of their last change; a missing file is
        an empty table."""
        records = {}
        bad = 0
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return records, 0
        self.lines = 0
        lines = data.split(b"\n")
        if data.endswith(b"\n"):
            lines.pop()
        elif data:
            bad += 1        # a torn last line: skipped (it is not whole JSON, or it is and counts)
        for raw in lines:
            if not raw or raw.startswith(b"#"):
                continue
            self.lines += 1
            try:
                r = json.loads(raw.decode("utf-8"))
            except ValueError:
                bad += 1
                continue
            if not isinstance(r, dict) or not isinstance(r.get("k"), str):
                bad += 1
                continue
            key = r.pop("k")
            records.pop(key, None)
            if r.get("del") != 1:
                records[key] = r
        return records, bad

    def append(self, records):
        """Append ``records`` ([{"k": ..., ...}]) and fsync.  OSError is the caller's."""
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        directory = os.path.dirname(os.path.abspath(self.path))
        new = not os.path.exists(self.path)
        if new:
            make_dirs(directory)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT |
                     getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            if new or os.fstat(fd).st_size == 0:
                text = self.header + text
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(directory)
        self.lines += len(records)

    def rewrite(self, records):
        """Replace the file with ``records`` ({key: record}), atomically."""
        make_dirs(os.path.dirname(os.path.abspath(self.path)))

        def write(f):
            f.write(self.header.encode())
            for key, r in records.items():
                f.write((json.dumps(dict(k=key, **r), separators=(",", ":")) + "\n")
                        .encode("utf-8"))
        replace_atomically(self.path, write)
        self.lines = len(records)
