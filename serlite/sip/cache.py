"""``BoundedCache``: the one kind of memo the parser keeps of parts it parsed before.

A home router's few phones send the same start lines, header lines, Vias, URIs and CSeqs on
every message of a dialog: remembering what each text parsed to saves most of the parsing.
Every such memo is a ``BoundedCache``: a dict (so that a lookup is ``cache.get(text)`` at C
speed) that is emptied when full, so that a flood of distinct texts costs a bounded amount of
memory and no bookkeeping per hit (no LRU order to keep); the parts kept must be immutable.
"""

__all__ = ["BoundedCache"]


class BoundedCache(dict):
    """A dict of at most ``limit`` entries: ``put`` empties it first when it is full."""

    __slots__ = ("limit",)

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def make_room(self, n):
        """Empty the cache unless ``n`` more entries fit: then ``n`` items may be set directly
        (``cache[key] = value``), one call for a batch."""
        if len(self) + n > self.limit:
            self.clear()

    def put(self, key, value):
        """Remember ``value`` under ``key``; returns ``value``."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
