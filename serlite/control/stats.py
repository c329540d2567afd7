"""Counters the server keeps at negligible cost: a few dict increments per message.

Keys are plain strings so the control socket can dump them as they are.
"""


class Stats:
    __slots__ = ("requests_in", "requests_out", "replies_in", "replies_out", "bytes",
                 "counters", "started")

    def __init__(self, started):
        self.started = started
        self.requests_in = {}    # method -> [count, bytes]
        self.requests_out = {}
        self.replies_in = {}     # status code -> [count, bytes]
        self.replies_out = {}
        self.counters = {}       # other named counters: "drop_invalid", "drop_not_ours" ...

    @staticmethod
    def _add(table, key, size):
        entry = table.get(key)
        if entry is None:
            table[key] = [1, size]
        else:
            entry[0] += 1
            entry[1] += size

    def request_in(self, method, size):
        self._add(self.requests_in, method, size)

    def request_out(self, method, size):
        self._add(self.requests_out, method, size)

    def reply_in(self, status, size):
        self._add(self.replies_in, status, size)

    def reply_out(self, status, size):
        self._add(self.replies_out, status, size)

    def incr(self, name, n=1):
        self.counters[name] = self.counters.get(name, 0) + n
