"""pike: flood protection per source address (SER's pike module).

``pike_check_req()`` counts the request against its source IP address and is false (-1) when
that address sent more than ``reqs_density_per_unit`` requests within the last
``sampling_time_unit`` seconds.  Only the requests that go through the call are counted: the
config decides which sources are trusted, e.g.::

    if (!(src_ip == 192.168.0.0/16)) { if (!pike_check_req()) { drop; } }

Once an address is blocked its further packets are dropped by a core source filter before they
are parsed, so a SIP scanner on the WAN costs a dict lookup per packet.  It stays blocked while
it keeps sending: it is let through again once one whole sampling unit has passed in which it
sent no more than the density (SER: the node stops being "hot" at the next timer swap).  The
block is logged once per sampling unit while it lasts.

The count is a sliding window over two fixed windows (SER keeps the same two counters, previous
and current): the current window's count plus the previous one's weighted by how much of it
still overlaps the last ``sampling_time_unit`` seconds.  A fresh source is blocked at request
``density + 1`` within one unit; a steady rate below ``density`` per unit passes.

Memory is bounded: at most ``MAX_SOURCES`` addresses are tracked (the oldest is forgotten when
a new one comes), and an address not seen for ``remove_latency`` seconds is forgotten (SER's
meaning of remove_latency: how long an idle address is remembered, not a block duration).
"""

from .. import log
from .export import REQUEST_ROUTE, Function, Module, ModuleSpec, Param

MAX_SOURCES = 4096


class Source:
    """The counters of one address.  ``start`` is when the current window began."""

    __slots__ = ("start", "prev", "curr", "blocked", "last", "dropped")

    def __init__(self, now):
        self.start = now
        self.prev = 0
        self.curr = 0
        self.blocked = False
        self.last = now
        self.dropped = 0


class FloodTable:
    """Request rates per source address, over a sliding window.  No I/O and no clock: every
    method takes ``now`` (monotonic seconds)."""

    def __init__(self, unit, density, latency, max_sources=MAX_SOURCES):
        self.unit = float(unit)
        self.density = density
        self.latency = latency
        self.max_sources = max_sources
        self.sources = {}       # ip -> Source (insertion order: the oldest first)
        self.blocked = {}       # ip -> Source, those blocked now

    def _roll(self, s, now):
        """Move ``s``'s windows up to ``now``; a blocked source whose last whole window stayed
        within the density is unblocked.  Returns True if it was unblocked."""
        elapsed = now - s.start
        if elapsed < self.unit:
            return False
        if elapsed < 2 * self.unit:
            s.prev = s.curr
            s.start += self.unit
        else:                       # a whole window or more without a request
            s.prev = 0
            s.start = now
        s.curr = 0
        if s.blocked and s.prev <= self.density:
            s.blocked = False
            return True
        return False

    def check(self, ip, now):
        """Count one request from ``ip``; False if ``ip`` is (now) over the limit.  A newly
        blocked address is put into ``blocked``."""
        s = self.sources.get(ip)
        if s is None:
            s = self.blocked.get(ip) or Source(now)     # forgotten, but maybe still blocked
            sources = self.sources
            if len(sources) >= self.max_sources:
                del sources[next(iter(sources))]
            sources[ip] = s
        if now - s.start >= self.unit and self._roll(s, now):
            self.blocked.pop(ip, None)
        s.last = now
        s.curr += 1
        if s.blocked:
            s.dropped += 1
            return False
        count = s.curr
        if s.prev:
            count += s.prev * (self.unit - (now - s.start)) / self.unit
        if count > self.density:
            s.blocked = True
            s.dropped = 1
            blocked = self.blocked
            if len(blocked) >= self.max_sources:
                old = blocked.pop(next(iter(blocked)))
                old.blocked = False
            blocked[ip] = s
            return False
        return True

    def drop(self, ip, now):
        """For the source filter: True if a packet from ``ip`` is to be dropped (it is blocked);
        the packet is counted then.  A blocked address whose window has calmed down is unblocked
        here, and its packet not counted (``check`` will)."""
        s = self.blocked.get(ip)
        if s is None:
            return False
        if now - s.start >= self.unit and self._roll(s, now):
            del self.blocked[ip]
            return False
        s.last = now
        s.curr += 1
        s.dropped += 1
        return True

    def prune(self, now):
        """Forget addresses idle for ``latency`` seconds; unblock the blocked ones that have
        calmed down.  Returns the addresses unblocked."""
        unblocked = []
        for ip, s in list(self.blocked.items()):
            if self._roll(s, now) or not s.blocked:
                del self.blocked[ip]
                unblocked.append(ip)
        horizon = now - max(self.latency, 2 * self.unit)
        stale = [ip for ip, s in self.sources.items() if s.last < horizon and not s.blocked]
        for ip in stale:
            del self.sources[ip]
        return unblocked


def _positive(params, name):
    value = params[name]
    if value <= 0:
        raise ValueError(f"{name} must be a positive number, not {value}")
    return value


class Pike(Module):
    name = "pike"

    def __init__(self, params):
        super().__init__(params)
        self.table = FloodTable(_positive(params, "sampling_time_unit"),
                                _positive(params, "reqs_density_per_unit"),
                                _positive(params, "remove_latency"))
        self._timer = None
        self._filtering = False

    def start(self, core, previous=None):
        super().start(core, previous)
        if previous is not None:
            # SIGHUP: the counts go on (under the new limits); the previous timer ends by
            # itself once this config runs (and goes on if the reload fails)
            old = previous.table
            self.table.sources, self.table.blocked = old.sources, old.blocked
        if self.table.blocked:
            self._filter_on()
        self._arm()

    def stop(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _filter_on(self):
        if not self._filtering:
            self.core.add_source_filter(self._filter)
            self._filtering = True

    def _arm(self):
        self._timer = self.core.loop.call_later(
            max(self.table.unit, min(self.table.latency, 60)), self._tick)

    def _tick(self):
        self._timer = None
        if self.core.module(self.name) is not self:
            return
        try:
            for ip in self.table.prune(self.core.now()):
                log.log(self.params["pike_log_level"], f"pike: {ip} unblocked")
        finally:
            self._arm()

    def _filter(self, source):
        """The core's source filter: drop a blocked address's packets before parsing."""
        table = self.table
        if not table.blocked:
            return False
        s = table.blocked.get(source.ip)
        if s is None:
            return False
        start = s.start
        if table.drop(source.ip, self.core.now()):
            if s.start != start:    # a new window began: one line per window while blocked
                self._log_blocked(source.ip, s, still=True)
            return True
        log.log(self.params["pike_log_level"], f"pike: {source.ip} unblocked")
        return False

    def _log_blocked(self, ip, s, still=False):
        unit = self.params["sampling_time_unit"]
        what = (f"still flooding ({s.prev} requests in the last {unit} s)" if still
                else f"over {self.table.density} requests in {unit} s")
        log.limited(("pike", ip), self.params["pike_log_level"],
                    f"pike: {ip} {what}: blocked", interval=unit)

    def pike_check_req(self, ctx):
        ip = ctx.source.ip if ctx.source is not None else None
        if ip is None:
            return 1
        table = self.table
        was = ip in table.blocked
        if table.check(ip, self.core.now()):
            return 1
        if not was:
            self._log_blocked(ip, table.sources[ip])
            self._filter_on()
        return -1


EXPORTS = ModuleSpec(
    name="pike",
    doc="Flood protection per source address.",
    factory=Pike,
    functions=(
        Function("pike_check_req", "pike_check_req", (0,), REQUEST_ROUTE, None,
                 "count the request against its source address; false if it is flooding"),
    ),
    params={
        "sampling_time_unit": Param(int, 2, "seconds of the sliding window",
                                    min=1, max=3600),
        "reqs_density_per_unit": Param(int, 30, "requests a source may send per window",
                                       min=1, max=1000000),
        "remove_latency": Param(int, 120, "seconds an idle address is remembered",
                                min=1, max=86400),
        "pike_log_level": Param(int, log.WARN,
                                "log level of block/unblock lines (-1 error, 1 warn, 3 info)",
                                min=log.ALERT, max=log.DBG),
    },
)
