"""The resolver's bounded TTL cache: answers and negative answers per (name, type).

An entry holds the record data tuple of one RRset (A: address texts, SRV: (priority, weight,
port, target) tuples ...) until its TTL runs out, clamped to [``min_ttl``, ``max_ttl``].  A
negative answer (RFC 2308: NXDOMAIN, or NODATA: the name exists without records of the
type) is kept for the SOA's TTL, at most its MINIMUM field (RFC 2308 5), clamped to
``max_negative_ttl``; without a SOA for ``default_negative_ttl``.  A failure (every server
silent or failing) may be kept for ``failure_ttl`` s, so that a flood of requests for one dead
name does not start a lookup per request (RFC 2308 7.1 allows up to 5 minutes).

Bounded: ``max_entries``; past it the oldest entry (by insertion) goes out.  Times are handed
in (seconds, any monotonic origin).
"""

NXDOMAIN = "nxdomain"   # negative kinds, as the cache returns them
NODATA = "nodata"
FAILED = "failed"


class Negative:
    """A cached negative answer: ``kind`` (NXDOMAIN, NODATA, FAILED) and why."""

    __slots__ = ("kind", "reason")

    def __init__(self, kind, reason):
        self.kind = kind
        self.reason = reason

    def __repr__(self):
        return f"Negative({self.kind!r}, {self.reason!r})"


class Cache:
    def __init__(self, max_entries=512, min_ttl=5, max_ttl=3600, max_negative_ttl=300,
                 default_negative_ttl=30, failure_ttl=5):
        self.max_entries = max_entries
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.default_negative_ttl = default_negative_ttl
        self.failure_ttl = failure_ttl
        self._entries = {}      # (name, qtype) -> (expires, tuple of data | Negative)
        self.hits = self.misses = 0

    def __len__(self):
        return len(self._entries)

    def get(self, name, qtype, now):
        """The data tuple or a ``Negative`` cached for (name, qtype), or None."""
        key = (name, qtype)
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry[0] <= now:
            del self._entries[key]
            self.misses += 1
            return None
        self.hits += 1
        return entry[1]

    def _put(self, key, expires, value):
        entries = self._entries
        entries.pop(key, None)          # re-inserted at the end: its age is its new time
        while len(entries) >= self.max_entries:
            del entries[next(iter(entries))]
        entries[key] = (expires, value)

    def put(self, name, qtype, ttl, data, now):
        """Cache the RRset ``data`` (a tuple) for ``ttl`` s (clamped)."""
        if self.max_entries <= 0:
            return
        ttl = min(self.max_ttl, max(self.min_ttl, ttl))
        self._put((name, qtype), now + ttl, tuple(data))

    def put_negative(self, name, qtype, kind, reason, ttl, now):
        """Cache a negative answer; ``ttl`` None for the default (no SOA), 0 not at all."""
        if self.max_entries <= 0:
            return
        if ttl is None:
            ttl = self.failure_ttl if kind == FAILED else self.default_negative_ttl
        ttl = min(self.max_negative_ttl, ttl)
        if ttl <= 0:
            return
        self._put((name, qtype), now + ttl, Negative(kind, reason))

    def clear(self):
        self._entries.clear()
