"""tm's timer heap: every transaction's timers fire on time (on the 1/16 s grid), whatever
the order in which they were armed and re-armed."""

from serlite.loop import Loop
from serlite.modules import tm as tm_module
from serlite.transaction.transaction import ClientTransaction, ServerTransaction


class FakeCore:
    """What tm's timer side uses of the core: the loop and its clock."""

    def __init__(self):
        self.loop = Loop()
        self.clock = 0.0
        self.loop.time = lambda: self.clock

    def now(self):
        return self.clock

    def run_until(self, t):
        """Move the clock to ``t`` a millisecond at a time, firing what is due."""
        while self.clock < t:
            self.clock = round(self.clock + 0.001, 6)
            self.loop.run_due(self.clock)


def make_tm():
    params = {name: p.default for name, p in tm_module.EXPORTS.params.items()}
    tm = tm_module.Tm(params)
    core = FakeCore()
    tm.start(core)
    return tm, core


def client(tm, core, branch):
    # data=None: tm treats it as its own CANCEL, so firing its timers does no I/O
    ct = ClientTransaction("INVITE", branch, b"INVITE", False, core.now(), fr_timer=0)
    tm.table.client[branch] = ct
    tm._schedule(ct)
    return ct


def test_a_transaction_pushed_later_does_not_delay_one_due_earlier():
    tm, core = make_tm()
    first = client(tm, core, "b1")          # timer A at 0.5
    core.run_until(0.3)
    second = client(tm, core, "b2")         # timer A at 0.8
    # at 0.5 the first retransmits and is due again at 1.5; the second must still fire at
    # 0.8 (0.8125 on the grid), not at 1.5
    core.run_until(0.82)
    assert first.next_deadline() == 1.5
    # A fired on the grid (0.8125) and doubled to 1 s
    assert 1.8 <= second.next_deadline() <= 1.8 + 1 / tm_module.TICK


def test_timers_fire_on_the_grid_and_never_early():
    tm, core = make_tm()
    ct = client(tm, core, "b1")
    core.run_until(0.499)
    assert ct.next_deadline() == 0.5        # not yet
    core.run_until(0.5)
    assert ct.next_deadline() == 1.5        # 0.5 is on the grid: on time


def test_finished_transactions_leave_the_table_after_their_wait():
    tm, core = make_tm()
    for i in range(50):
        st = ServerTransaction("BYE", f"k{i}", False, None)
        tm.table.server[st.key] = st
        st.respond(200, b"SIP/2.0 200 OK\r\n\r\n", core.now())    # timer J: 32 s
        tm._schedule(st)
        core.run_until(core.clock + 0.1)
    assert len(tm.table.server) == 50
    core.run_until(32.0 + 5.0 + 0.07)
    assert len(tm.table.server) == 0
    assert tm.due == [] and tm._wakeup is None      # nothing left to wake the loop for


def test_a_failing_timer_action_does_not_stop_the_other_timers():
    tm, core = make_tm()
    first = client(tm, core, "b1")
    second = client(tm, core, "b2")
    failed = []

    def explode(tx, action, msg, source=None):
        if tx is first and not failed:
            failed.append(action)
            raise RuntimeError("a module's bug")
    tm._client_action = explode
    core.run_until(0.6)     # the loop logs the error and goes on
    assert failed == ["retransmit"]
    core.run_until(1.6)
    assert second.next_deadline() >= 2.5    # A fired at 0.5 and at 1.5: its timers go on
    assert first.next_deadline() >= 2.5     # and so do those of the one whose action failed
