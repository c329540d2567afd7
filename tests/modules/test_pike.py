"""pike: the sliding window per source (fake time), blocking and unblocking, the source filter,
bounded memory, and the module with a fake core."""

import pytest

from serlite import log
from serlite.modules.pike import FloodTable, Pike
from serlite.proxy.context import Context, Source
from serlite.script.compiler import compile_config
from serlite.script.errors import ConfigError

IP = "198.51.100.7"


def table(unit=2, density=30, latency=120, max_sources=4096):
    return FloodTable(unit, density, latency, max_sources)


def burst(t, n, now, ip=IP, spacing=0.0):
    return [t.check(ip, now + i * spacing) for i in range(n)]


def test_30_per_2_s_pass_the_31st_is_blocked():
    t = table()
    assert burst(t, 30, 0.0, spacing=0.05) == [True] * 30
    assert t.check(IP, 1.6) is False
    assert IP in t.blocked
    assert t.check("198.51.100.8", 1.6) is True        # others are not affected


def test_steady_rate_under_the_limit_passes():
    t = table()
    # 14 per second = 28 per 2 s, for a minute: never over the limit (the weighted previous
    # window counts in full right at a window's start, so exactly 30 per 2 s can touch 31)
    assert all(t.check(IP, i / 14) for i in range(14 * 60))
    assert not t.blocked


def test_a_burst_straddling_two_windows_is_caught():
    t = table()
    assert burst(t, 1, 0.0) == [True]
    assert burst(t, 29, 1.9, spacing=0.001) == [True] * 29      # 30 in the first window
    # 1 s into the second window half of the first still counts: 15 + the new ones
    results = burst(t, 20, 3.0, spacing=0.001)
    assert results.index(False) == 15


def test_blocked_while_flooding_unblocked_after_a_calm_window():
    t = table()
    burst(t, 31, 0.0, spacing=0.01)
    assert IP in t.blocked
    # still flooding (through the source filter): stays blocked window after window
    now = 0.31
    while now < 10.0:
        assert t.drop(IP, now) is True
        now += 0.01
    # calm: a whole window passes with nothing from it, the next packet goes through
    assert t.drop(IP, 11.0) is True             # the window 10..12 is not over yet
    assert t.drop(IP, 12.5) is False            # 10..12 held 1 packet: unblocked
    assert IP not in t.blocked
    assert t.check(IP, 12.5) is True


def test_unblocked_when_the_last_window_stayed_within_the_density():
    t = table()
    burst(t, 31, 0.0, spacing=0.01)
    # blocked at 0.3; it slows down to 10 per second (20 per window): one calm window suffices
    now, dropped = 0.4, []
    while now < 6.0:
        dropped.append((now, t.drop(IP, now)))
        now += 0.1
    first_pass = next(when for when, d in dropped if not d)
    assert 4.0 <= first_pass < 4.11             # window 0..2 busy, 2..4 calm: free at 4


def test_a_quiet_blocked_source_is_unblocked_by_prune():
    t = table()
    burst(t, 31, 0.0)
    assert t.prune(1.0) == [] and IP in t.blocked
    assert t.prune(3.0) == []                   # the window 0..2 was the busy one
    assert t.prune(5.0) == [IP]
    assert t.blocked == {}


def test_prune_forgets_idle_sources_after_remove_latency():
    t = table(latency=120)
    t.check("192.0.2.1", 0.0)
    t.check("192.0.2.2", 100.0)
    t.prune(119.0)
    assert set(t.sources) == {"192.0.2.1", "192.0.2.2"}
    t.prune(121.0)
    assert set(t.sources) == {"192.0.2.2"}


def test_memory_is_bounded_the_oldest_source_goes_first():
    t = table(max_sources=100)
    for i in range(1000):
        assert t.check(f"10.0.{i // 256}.{i % 256}", i * 0.001)
    assert len(t.sources) == 100
    assert next(iter(t.sources)) == "10.0.3.132"        # source 900, the oldest kept


def test_a_blocked_source_evicted_from_the_table_stays_blocked():
    t = table(max_sources=10)
    burst(t, 31, 0.0)
    for i in range(20):
        t.check(f"10.0.0.{i}", 0.5)
    assert IP not in t.sources and IP in t.blocked
    assert t.drop(IP, 0.6) is True
    assert t.check(IP, 0.7) is False            # still blocked if it comes through check


def test_blocked_table_is_bounded_too():
    t = table(density=1, max_sources=8)
    for i in range(50):
        ip = f"10.0.0.{i}"
        t.check(ip, 0.0)
        assert t.check(ip, 0.0) is False
    assert len(t.blocked) == 8


# --- the module ---------------------------------------------------------------------------------

class FakeLoop:
    def __init__(self):
        self.timers = []

    def call_later(self, delay, fn):
        class T:
            cancelled = False

            def cancel(self):
                self.cancelled = True
        timer = T()
        self.timers.append((delay, fn, timer))
        return timer


class FakeCore:
    def __init__(self):
        self.t = 0.0
        self.loop = FakeLoop()
        self.filters = []
        self.active = None      # the running config's pike (Core.use_script)

    def now(self):
        return self.t

    def module(self, name):
        return self.active if name == "pike" else None

    def add_source_filter(self, check):
        if check not in self.filters:
            self.filters.append(check)


def pike(**params):
    p = {"sampling_time_unit": 2, "reqs_density_per_unit": 30, "remove_latency": 120,
         "pike_log_level": log.WARN}
    p.update(params)
    return Pike(p)


def ctx(ip=IP):
    return Context(None, Source("udp", ip, 5060), None)


def test_module_blocks_registers_the_filter_and_logs_once_per_window(monkeypatch):
    lines = []
    monkeypatch.setattr(log, "log", lambda lvl, msg: lines.append(msg))
    monkeypatch.setattr(log, "limited", lambda key, lvl, msg, interval: lines.append(msg))
    core = FakeCore()
    p = pike()
    p.start(core)
    assert core.filters == []                   # nothing blocked: no filter cost at all
    assert [p.pike_check_req(ctx()) for _ in range(31)] == [1] * 30 + [-1]
    assert core.filters == [p._filter]
    assert lines == [f"pike: {IP} over 30 requests in 2 s: blocked"]
    src = Source("udp", IP, 5060)
    other = Source("udp", "192.0.2.1", 5060)
    for i in range(400):                        # 4 s of flood through the filter
        core.t = i * 0.01
        assert p._filter(src) is True
        assert p._filter(other) is False
    core.t = 4.5
    assert p._filter(src) is True               # window 2..4 was busy
    assert lines[1:] == [f"pike: {IP} still flooding (231 requests in the last 2 s): blocked",
                         f"pike: {IP} still flooding (200 requests in the last 2 s): blocked"]
    core.t = 6.5
    assert p._filter(src) is False              # 4..6 held one packet: free
    assert lines[-1] == f"pike: {IP} unblocked"
    assert p.pike_check_req(ctx()) == 1


def test_pike_tick_unblocks_and_rearms():
    core = FakeCore()
    p = pike()
    p.start(core)
    core.active = p
    for _ in range(31):
        p.pike_check_req(ctx())
    assert IP in p.table.blocked
    (delay, fn, _), = core.loop.timers
    assert delay == 60
    core.t = 61.0
    fn()
    assert p.table.blocked == {}
    assert len(core.loop.timers) == 2


def test_reload_keeps_the_counts_and_the_filter():
    core = FakeCore()
    p = pike()
    p.start(core)
    for _ in range(31):
        p.pike_check_req(ctx())
    core.filters = []                           # the server resets the hooks on SIGHUP
    p2 = pike()
    p2.start(core, p)
    core.active = p2
    assert core.filters == [p2._filter]
    assert p2._filter(Source("udp", IP, 1)) is True
    old_tick, new_tick = core.loop.timers[0][1], core.loop.timers[1][1]
    old_tick()                                  # the old config's timer ends by itself
    assert len(core.loop.timers) == 2
    new_tick()
    assert len(core.loop.timers) == 3


@pytest.mark.parametrize("param", ["sampling_time_unit", "reqs_density_per_unit",
                                   "remove_latency"])
def test_params_must_be_positive(param):
    with pytest.raises(ConfigError, match=f'"{param}"\\): 0 is out of range 1\\.\\.'):
        compile_config(f'loadmodule "pike"\nmodparam("pike", "{param}", 0)\nroute {{ }}\n',
                       "t.cfg")


def test_compiles_in_request_route_only():
    compile_config('loadmodule "pike"\nroute { if (!pike_check_req()) { drop; } }\n', "t.cfg")
    with pytest.raises(ConfigError):
        compile_config('loadmodule "pike"\nroute { }\nonreply_route { pike_check_req(); }\n',
                       "t.cfg")
