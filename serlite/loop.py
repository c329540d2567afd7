"""The one event loop: poll() on the sockets, a timer heap, signals, and the guarded place where
every callback runs (after asyncio's ``_run_once``).

Everything that touches the clock or waits lives here.  With no timer due the loop sleeps in
poll() until a socket or a signal wakes it, so an idle server costs no CPU.
"""

import heapq
import itertools
import os
import select
import signal
import socket
import time

from . import log


class Timer:
    """A scheduled callback; ``cancel()`` drops it (lazily removed from the heap)."""

    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when, callback, args):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


_READ = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
_WRITE = select.POLLOUT


class Loop:
    def __init__(self):
        self._poll = select.poll()
        self._readers = {}      # fd -> callback()
        self._writers = {}      # fd -> callback()
        # heap of (when, sequence number, Timer): tuples compare in C, and the sequence number
        # keeps timers due at the same time in the order they were set (never comparing Timers)
        self._timers = []
        self._timer_seq = itertools.count()
        self._signals = {}      # signum -> callback()
        self._pending_signals = []
        self._running = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.add_reader(self._wake_r.fileno(), self._drain_wakeup)

    # -- time -------------------------------------------------------------------------------
    @staticmethod
    def time():
        """Monotonic seconds: what timers and transactions use."""
        return time.monotonic()

    @staticmethod
    def wall():
        """Epoch seconds: what persisted expiries use."""
        return time.time()

    # -- file descriptors -------------------------------------------------------------------
    def _update(self, fd):
        mask = (_READ if fd in self._readers else 0) | (_WRITE if fd in self._writers else 0)
        if mask:
            try:
                self._poll.modify(fd, mask)
            except FileNotFoundError:
                self._poll.register(fd, mask)
        else:
            try:
                self._poll.unregister(fd)
            except KeyError:
                pass

    def add_reader(self, fd, callback):
        self._readers[fd] = callback
        self._update(fd)

    def remove_reader(self, fd):
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd, callback):
        self._writers[fd] = callback
        self._update(fd)

    def remove_writer(self, fd):
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    # -- timers -----------------------------------------------------------------------------
    def call_at(self, when, callback, *args):
        timer = Timer(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._timer_seq), timer))
        return timer

    def call_later(self, delay, callback, *args):
        return self.call_at(time.monotonic() + delay, callback, *args)

    # -- signals ----------------------------------------------------------------------------
    def add_signal(self, signum, callback):
        """Run ``callback`` from the loop (not from the signal handler) when ``signum`` arrives."""
        self._signals[signum] = callback
        signal.signal(signum, self._on_signal)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)

    def _on_signal(self, signum, frame):
        self._pending_signals.append(signum)

    def _drain_wakeup(self):
        try:
            while self._wake_r.recv(512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    # -- running ----------------------------------------------------------------------------
    def stop(self):
        self._running = False

    def _guarded(self, what, callback, *args):
        """Every callback runs here: an exception is logged with context (``what``, or the
        callback's name when None) and the loop goes on."""
        try:
            callback(*args)
        except Exception as exc:  # one bad message or module must never stop the server
            if what is None:
                what = getattr(callback, "__qualname__", "timer")
            log.limited(("loop", what, type(exc)), log.ERR,
                        f"unhandled {type(exc).__name__} in {what}: {exc}"
                        f"{_where(exc)}")

    def run(self):
        self._running = True
        timers = self._timers
        poll = self._poll.poll
        readers = self._readers
        writers = self._writers
        while self._running:
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            if self._pending_signals:
                timeout = 0
            elif timers:
                timeout = max(0, (timers[0][0] - time.monotonic()) * 1000.0)
            else:
                timeout = None
            try:
                events = poll(timeout)
            except InterruptedError:
                events = ()
            for fd, mask in events:
                if mask & _WRITE and fd in writers:
                    self._guarded("writer", writers[fd])
                if mask & ~_WRITE and fd in readers:
                    self._guarded("reader", readers[fd])
            while self._pending_signals:
                signum = self._pending_signals.pop(0)
                cb = self._signals.get(signum)
                if cb is not None:
                    self._guarded(f"signal {signum}", cb)
            if timers:
                self.run_due(time.monotonic())

    def run_due(self, now):
        """Run the timers due by ``now``, earliest first (``run`` does after each poll; a test
        or a benchmark with a clock of its own can too)."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled:
                self._guarded(None, timer.callback, *timer.args)

    def close(self):
        for fd in (self._wake_r, self._wake_w):
            fd.close()
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:
            pass


def _where(exc):
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return ""
    code = tb.tb_frame.f_code
    return f" (at {os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name})"
