"""A message's send held until something asynchronous is done: an external media relay's
answer with the ports the SDP must name (rtpproxy with ``rtpproxy_sock``), later a DNS
lookup.  Pure: it only counts and calls back.

The script goes on (a module function registers its work with ``hold(ctx)`` and returns); tm
and the core ask ``ctx.hold`` where they send -- ``t_relay``'s branches (each client
transaction starts when its request really goes), a response relayed upstream (the server
transaction keeps the rewritten one for its retransmissions), a stateless ``forward()`` --
and, when it is set, hand the send to ``Hold.then``.  ``ctx.hold`` is None unless something
is pending: the cost without one is that one test.  Whoever holds must ``release()`` exactly
once per ``hold()``, on success and on failure alike (bounded by its own timeout), so that
a held message always goes out.
"""

from .. import log


class Hold:
    """What a context's sends wait for: ``waiting`` things outstanding, ``waiters`` the sends
    to run, in order, once none is."""

    __slots__ = ("ctx", "waiting", "waiters")

    def __init__(self, ctx):
        self.ctx = ctx
        self.waiting = 0
        self.waiters = []

    def then(self, send):
        """Run ``send()`` once nothing is outstanding (now, if nothing is)."""
        if self.waiting:
            self.waiters.append(send)
        else:
            send()

    def release(self):
        """One thing is done; the last one runs the waiting sends (the context's hold is gone
        first, so that they send rather than wait again).  Each runs guarded: one that fails
        must not keep the others' messages back."""
        self.waiting -= 1
        if self.waiting > 0:
            return
        if self.ctx.hold is self:
            self.ctx.hold = None
        waiters, self.waiters = self.waiters, []
        for send in waiters:
            try:
                send()
            except Exception as exc:    # logged like the loop's guard; the next goes on
                log.limited(("hold", type(exc)), log.ERR,
                            f"unhandled {type(exc).__name__} in a held send: {exc}")


def hold(ctx):
    """Register one thing ``ctx``'s sends must wait for; returns the Hold to ``release()``."""
    h = ctx.hold
    if h is None:
        h = ctx.hold = Hold(ctx)
    h.waiting += 1
    return h
