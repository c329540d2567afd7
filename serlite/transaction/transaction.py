"""Client and server transactions (RFC 3261 17): state, timers, and the table step.

A transaction is driven by ``step(event, now)``: the table in ``machines.py`` gives the actions;
timer actions (arm/stop/double) are done here, and the rest ("retransmit", "send", "resend",
"send_ack", "up", "timeout", "cancel") are returned for the caller (tm) to carry out with I/O.
``next_deadline()`` is the earliest armed timer; the caller calls ``expire(now)`` then.
Time is always passed in; nothing here reads a clock.
"""

from . import machines

T1 = 0.5    # RFC 3261 17.1.1.1: RTT estimate
T2 = 4.0    # maximum retransmit interval for non-INVITE requests and INVITE responses
T4 = 5.0    # maximum duration a message remains in the network

_TIMER_ACTIONS = frozenset(("double_A", "double_E", "T2_E", "double_G", "arm_D", "arm_K", "arm_L",
                            "arm_G", "arm_H", "arm_I", "arm_J", "arm_fr_inv", "arm_B", "stop_A", "stop_B",
                            "stop_E", "stop_F", "stop_G", "stop_H", "stop_fr"))


def _rows(table):
    """``table`` with each row's actions sorted once, so that ``step`` does no string work:
    (state, event) -> (timer operations as (kind, timer name), I/O actions, next state).  Timer
    operations are done at once and I/O actions only returned, so splitting a row keeps its
    meaning."""
    rows = {}
    for key, (actions, next_state) in table.items():
        timers = tuple(a.partition("_")[::2] for a in actions if a in _TIMER_ACTIONS)
        io = tuple(a for a in actions if a not in _TIMER_ACTIONS)
        rows[key] = (timers, io, next_state)
    return rows


# The rows of the four machines, made once; keyed by identity (a dict is no dict key), which
# is stable as the tables are module constants.  Any other table gets its rows per transaction.
_ROWS = {id(t): _rows(t) for t in (machines.CLIENT_INVITE, machines.CLIENT_NON_INVITE,
                                   machines.SERVER_INVITE, machines.SERVER_NON_INVITE)}


class Transaction:
    """The state and timers of one transaction.

    Memory matters more than generality here: a proxy keeps every finished transaction for its
    wait time (32 s: timers D, J, L), thousands of them at a few hundred calls per second.  So
    the armed timers are a flat list ``[name, when, name, when ...]`` (at most three at once:
    a retransmission timer, a timeout, SER's fr) rather than a dict, and the one retransmission
    interval (A, E or G: never two in one machine) is a number, not a dict.  ``due`` is left to
    the caller (tm): the deadline its timer was set for."""

    __slots__ = ("table", "rows", "state", "reliable", "deadlines", "interval", "t1", "t2",
                 "t4", "due")

    def __init__(self, table, state, reliable, t1=T1, t2=T2, t4=T4):
        self.table = table
        rows = _ROWS.get(id(table))
        self.rows = rows if rows is not None else _rows(table)
        self.state = state
        self.reliable = reliable
        self.deadlines = []     # [timer name, when, ...]
        self.interval = t1      # the retransmission timer's current interval
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.due = None

    @property
    def terminated(self):
        return self.state == "terminated"

    def step(self, event, now):
        """Feed one event; returns the I/O actions for the caller.  Raises KeyError for an event
        the state machine has no row for."""
        timers, io, self.state = self.rows[(self.state, event)]
        for kind, name in timers:
            if kind == "stop":      # the most frequent operation, inline
                d = self.deadlines
                if name in d:
                    i = d.index(name)
                    del d[i:i + 2]
            else:
                self._timer_action(kind, name, now)
        if self.state == "terminated":
            self.deadlines.clear()
        return list(io)

    def next_deadline(self):
        d = self.deadlines
        return min(d[1::2]) if d else None

    def expire(self, now):
        """Fire every due timer in deadline order; returns the I/O actions."""
        out = []
        d = self.deadlines
        while d:
            when = min(d[1::2])
            if when > now:
                break
            i = d.index(when, 1) - 1
            name = d[i]
            del d[i:i + 2]
            out += self.step(name, now)
        return out

    # A name is a str and a deadline a float: ``in``/``index`` on the flat list only ever
    # match a name.
    def _arm(self, name, delay, now):
        d = self.deadlines
        if name in d:
            d[d.index(name) + 1] = now + delay
        else:
            d += (name, now + delay)

    def _stop(self, name):
        d = self.deadlines
        if name in d:
            i = d.index(name)
            del d[i:i + 2]

    def _timer_action(self, kind, name, now):
        if kind == "stop":
            self._stop(name)
        elif kind == "double":
            # RFC 3261 17.1.1.2 (A doubles), 17.1.2.2 (E doubles up to T2), 17.2.1 (G up to T2)
            interval = self.interval * 2
            if name in ("E", "G"):
                interval = min(interval, self.t2)
            self.interval = interval
            self._arm(name, interval, now)
        elif kind == "T2":
            self.interval = self.t2
            self._arm(name, self.t2, now)
        else:
            self._arm_named(name, now)

    def _arm_named(self, name, now):
        raise KeyError(name)


class ClientTransaction(Transaction):
    """RFC 3261 17.1.  ``fr`` is SER's final-response timer (fr_timer until a provisional, then
    fr_inv_timer for INVITE): it stands for timer C of 16.6 step 11 and cuts B/F short."""

    __slots__ = ("method", "branch", "request", "fr_timer", "fr_inv_timer", "status", "data")

    def __init__(self, method, branch, request, reliable, now, fr_timer=30.0, fr_inv_timer=120.0,
                 t1=T1, t2=T2, t4=T4, data=None):
        invite = method == "INVITE"
        super().__init__(machines.CLIENT_INVITE if invite else machines.CLIENT_NON_INVITE,
                         "calling" if invite else "trying", reliable, t1, t2, t4)
        self.method = method
        self.branch = branch
        self.request = request      # the bytes sent, for retransmission
        self.fr_timer = fr_timer
        self.fr_inv_timer = fr_inv_timer
        self.status = 0             # best status received so far on this branch
        self.data = data            # the caller's per-branch record
        if not reliable:
            self._arm("A" if invite else "E", t1, now)
        self._arm("B" if invite else "F", 64 * t1, now)
        if fr_timer and fr_timer < 64 * t1:
            self._arm("fr", fr_timer, now)

    def receive(self, status, now):
        if self.status < 200:       # after a final response the branch's status is fixed
            self.status = status
        return self.step(machines.response_event(status), now)

    def _arm_named(self, name, now):
        if name == "D":     # 17.1.1.2: 32 s for unreliable transports, 0 for reliable
            self._arm("D", 0 if self.reliable else 64 * self.t1, now)
        elif name == "K":   # 17.1.2.2: T4 for unreliable, 0 for reliable
            self._arm("K", 0 if self.reliable else self.t4, now)
        elif name == "B":   # waiting for the final response after a CANCEL (9.1, 16.8)
            self._arm("B", 64 * self.t1, now)
        elif name == "fr_inv":
            self._stop("fr")
            self._stop("B")
            self._arm("fr", self.fr_inv_timer, now)
        else:
            raise KeyError(name)


class ServerTransaction(Transaction):
    """RFC 3261 17.2.  ``response`` is the last response sent (bytes), resent on retransmissions
    of the request; ``dest`` is where responses go (the caller's opaque value)."""

    __slots__ = ("method", "key", "response", "status", "dest", "data")

    def __init__(self, method, key, reliable, dest, t1=T1, t2=T2, t4=T4, data=None):
        invite = method == "INVITE"
        super().__init__(machines.SERVER_INVITE if invite else machines.SERVER_NON_INVITE,
                         "proceeding" if invite else "trying", reliable, t1, t2, t4)
        self.method = method
        self.key = key
        self.response = None
        self.status = 0
        self.dest = dest
        self.data = data

    def respond(self, status, data, now):
        """The TU sends a response: returns the actions ("send" means send ``data``)."""
        actions = self.step("send1xx" if status < 200 else "send2xx" if status < 300
                            else "send3xx", now)
        if "send" in actions:
            self.response = data
            self.status = status
        return actions

    def _arm_named(self, name, now):
        if name == "G":     # 17.2.1: only for unreliable transports
            if not self.reliable:
                self.interval = self.t1
                self._arm("G", self.t1, now)
        elif name == "H":
            self._arm("H", 64 * self.t1, now)
        elif name == "I":   # T4 for unreliable, 0 for reliable
            self._arm("I", 0 if self.reliable else self.t4, now)
        elif name == "J":   # 64*T1 for unreliable, 0 for reliable
            self._arm("J", 0 if self.reliable else 64 * self.t1, now)
        elif name == "L":   # RFC 6026 8.7: 64*T1
            self._arm("L", 64 * self.t1, now)
        else:
            raise KeyError(name)
