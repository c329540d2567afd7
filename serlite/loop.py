"""The one event loop: epoll (poll() where there is none) on the sockets, a timer heap,
signals, and the guarded place where every callback runs (after asyncio's ``_run_once``).

Everything that touches the clock or waits lives here.  With no timer due the loop sleeps in
epoll_wait() until a socket or a signal wakes it, so an idle server costs no CPU.  epoll, not
poll: a relayed call holds 4 sockets, and poll() scans every registered descriptor at every
wake-up (twice), which at 50 relayed calls cost more than relaying the packet itself
(bench/relaybench.py); epoll's cost is per ready descriptor.
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
# epoll's event bits are poll's (EPOLLIN == POLLIN ...): one set of masks for both
_EPOLL = hasattr(select, "epoll")


class Loop:
    def __init__(self):
        # timeouts in ms (poll's unit); epoll's wait takes seconds (``_ms``: the factor)
        self._poll = select.epoll() if _EPOLL else select.poll()
        self._ms = 0.001 if _EPOLL else 1
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
            except (KeyError, OSError):
                pass        # never registered; or (epoll) closed already, which unregistered it

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

    def wait(self, timeout_ms):
        """One wait for the descriptors: [(fd, event mask)], after at most ``timeout_ms`` (None:
        until one is ready).  What ``run`` does each turn; a test or benchmark that drives the
        readers itself calls it."""
        if timeout_ms is None:
            return self._poll.poll(-1 if _EPOLL else None)
        return self._poll.poll(timeout_ms * self._ms)

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
            self._failed(what, callback, exc)

    @staticmethod
    def _failed(what, callback, exc):
        if what is None:
            what = getattr(callback, "__qualname__", "timer")
        log.limited(("loop", what, type(exc)), log.ERR,
                    f"unhandled {type(exc).__name__} in {what}: {exc}{_where(exc)}")

    def run(self):
        self._running = True
        timers = self._timers
        poll = self._poll.poll
        scale = self._ms
        forever = -1 if _EPOLL else None
        readers = self._readers
        writers = self._writers
        while self._running:
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            if self._pending_signals:
                timeout = 0
            elif timers:
                timeout = max(0, (timers[0][0] - time.monotonic()) * 1000.0) * scale
            else:
                timeout = forever
            try:
                events = poll(timeout)
            except InterruptedError:
                events = ()
            for fd, mask in events:
                if mask & _WRITE and fd in writers:
                    self._guarded("writer", writers[fd])
                if mask & ~_WRITE:
                    # _guarded's work inline: one call less per datagram (the relay's)
                    reader = readers.get(fd)
                    if reader is not None:
                        try:
                            reader()
                        except Exception as exc:
                            self._failed("reader", reader, exc)
            while self._pending_signals:
                signum = self._pending_signals.pop(0)
                cb = self._signals.get(signum)
                if cb is not None:
                    self._guarded(f"signal {signum}", cb)
            if timers and timers[0][0] <= time.monotonic():
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
        if _EPOLL:
            self._poll.close()
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
