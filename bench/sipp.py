"""Driving sipp for the bench: a UAC run bounded in calls and time, a long-lived UAS, and what
their statistics files say.

Every sipp here gets ``-m N`` (or a UAS that is killed at the end) and ``-timeout T``, so it ends
by itself; every wait is bounded by T plus a margin, after which the process is killed.  The
statistics are sipp's ``-trace_stat`` CSV (``;``-separated, one header row, a row per ``-fd``
period plus a last one at exit; the ``(C)`` columns are cumulative), and response times are its
``-trace_rtt`` file (one row per call and response-time mark: ``Date_ms;response_time_ms;rtd_no``,
in whole milliseconds: sipp's clock ticks in ms, so 0 means under 1 ms).
"""

from __future__ import annotations

import csv
import glob
import itertools
import os
import resource
import subprocess
import time
from pathlib import Path

from .servers import BENCH, BenchError, cpu_seconds, free_udp_port, status

SCENARIOS = BENCH / "scenarios"
BUFF_SIZE = 4 * 1024 * 1024       # sipp's UDP socket buffers (-buff_size), within rmem_max
_numbers = itertools.count(1)


def read_stats(path):
    """The rows of a -trace_stat CSV as dicts (header row first in the file)."""
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f, delimiter=";") if row]
    except FileNotFoundError:
        return []
    if len(rows) < 2:
        return []
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def count(stats, key):
    try:
        return int(stats.get(key, 0) or 0)
    except ValueError:
        return 0


def read_rtt(paths, dates=None):
    """{rtd number: sorted response times in ms} from -trace_rtt files; `dates`, a dict, gets
    {rtd number: [first, last] Date_ms} (ms since sipp started, when each was measured)."""
    out = {}
    dates = {} if dates is None else dates
    for path in paths:
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    parts = line.strip().split(";")
                    if len(parts) < 3:
                        continue
                    try:
                        out.setdefault(parts[2], []).append(float(parts[1]))
                        when = float(parts[0])
                    except ValueError:
                        continue
                    span = dates.setdefault(parts[2], [when, when])
                    span[0] = min(span[0], when)
                    span[1] = max(span[1], when)
        except FileNotFoundError:
            continue
    for values in out.values():
        values.sort()
    return out


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


class Result:
    """One finished sipp UAC run."""

    def __init__(self, run, returncode, wall, cpu):
        self.run = run
        self.returncode = returncode
        self.wall = wall                 # seconds from start to exit
        self.cpu = cpu                   # sipp's own CPU seconds (user + sys)
        rows = read_stats(run.stats_file)
        self.stats = rows[-1] if rows else {}
        self.rtt_dates = {}
        self.rtt = read_rtt(glob.glob(str(run.dir / "*_rtt.csv")), self.rtt_dates)
        self.created = count(self.stats, "TotalCallCreated") or count(self.stats,
                                                                       "OutgoingCall(C)")
        self.successful = count(self.stats, "SuccessfulCall(C)")
        self.failed = count(self.stats, "FailedCall(C)")
        self.retransmissions = count(self.stats, "Retransmissions(C)")
        # calls sipp never finished (killed at its -timeout) count as failed
        self.unfinished = max(0, run.calls - self.successful - self.failed)

    @property
    def failed_total(self):
        return self.failed + self.unfinished

    def offered_rate(self):
        """Calls per second over the span of the first response-time marks (the first answer
        to each call): how fast sipp really offered its calls, whatever the lost calls' own
        timeouts made the whole run last.  None with fewer than two answered calls."""
        span = self.rtt_dates.get("1")
        n = len(self.rtt.get("1") or [])
        if not span or n < 2 or span[1] <= span[0]:
            return None
        return (n - 1) / ((span[1] - span[0]) / 1000.0)

    def failures(self):
        return {k[:-3]: v for k, v in self.stats.items()
                if k.startswith("Failed") and k.endswith("(C)") and v not in ("", "0")}

    def rt(self, rtd="1"):
        """(p50, p99, max) of response time `rtd` in ms, None when no sample."""
        values = self.rtt.get(rtd) or []
        if not values:
            return None
        return percentile(values, 50), percentile(values, 99), values[-1]

    def errors(self, limit=2000):
        try:
            return self.run.error_file.read_text(errors="replace")[:limit]
        except FileNotFoundError:
            return ""


class Sipp:
    """A sipp process with its own directory under `workdir` (its stats, rtt and error files)."""

    def __init__(self, scenario, target, *, workdir, name, calls=None, rate=None, timeout,
                 limit=None, extra=(), port=None, stats_period=None, rtt=True):
        self.name = f"{name}-{next(_numbers)}"
        self.dir = Path(workdir) / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.calls = calls or 0
        self.rate = rate
        self.timeout = timeout
        self.port = port or free_udp_port()
        self.stats_file = self.dir / "stats.csv"
        self.error_file = self.dir / "errors.log"
        args = ["sipp", "-sf", str(SCENARIOS / scenario), "-t", "u1", "-i", "127.0.0.1",
                "-p", str(self.port), "-buff_size", str(BUFF_SIZE), "-nostdin",
                "-timeout", f"{timeout}s", "-trace_stat", "-stf", str(self.stats_file),
                "-trace_err", "-error_file", str(self.error_file)]
        if stats_period:
            args += ["-fd", str(stats_period)]
        if rtt:
            args += ["-trace_rtt", "-rtt_freq", "100"]
        if calls:
            args += ["-m", str(calls)]
        if rate:
            args += ["-r", str(rate)]
        if limit:
            args += ["-l", str(limit)]
        args += [str(x) for x in extra]
        if target is not None:
            args.append(f"{target[0]}:{target[1]}")
        self.cmd = args
        self.proc = None
        self.started = None
        self._out = None

    def start(self):
        self._out = open(self.dir / "out", "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        return self

    def cpu(self):
        try:
            return cpu_seconds(self.proc.pid)
        except (FileNotFoundError, ProcessLookupError):
            return None

    def rss_kb(self):
        try:
            return status(self.proc.pid).get("VmRSS", 0)
        except (FileNotFoundError, ProcessLookupError):
            return 0

    def _reap(self, deadline):
        """Wait for the exit until `deadline` (monotonic), then SIGKILL; (wall, CPU seconds)."""
        while True:
            pid, status_, rusage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                pid, status_, rusage = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.monotonic() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status_)
        self._out.close()
        return wall, rusage.ru_utime + rusage.ru_stime

    def wait(self):
        """Until sipp exits (its -timeout bounds it; killed 15 s past it). Returns a Result."""
        wall, cpu = self._reap(self.started + self.timeout + 15)
        return Result(self, self.proc.returncode, wall, cpu)

    def finish(self, grace):
        """A UAS after its caller is done: up to `grace` s to take its last calls and exit
        (-m), then killed.  Returns (successful, failed, retransmissions, CPU seconds) from its
        last statistics row (written at exit, else in the last -fd period)."""
        if self.proc.returncode is not None:
            return (0, 0, 0, 0.0)
        _, cpu = self._reap(time.monotonic() + grace)
        return (*uas_totals(self), cpu)

    def stop(self):
        """End a long-lived sipp now."""
        if self.proc is not None and self.proc.returncode is None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self._out is not None and not self._out.closed:
            self._out.close()


def uac_register(target, *, workdir, rate, calls, prefix, expires=3600, timeout=None,
                 limit=None):
    """`calls` REGISTERs of new users (prefix + call number) at `rate` per second."""
    timeout = timeout or int(calls / rate) + 15
    return Sipp("register.xml", target, workdir=workdir, name=f"reg{rate}", calls=calls,
                rate=rate, timeout=timeout, limit=limit or max(50, rate * 2),
                extra=["-key", "prefix", prefix, "-key", "expires", expires,
                       "-recv_timeout", 5000])


def uac_calls(target, *, workdir, rate, calls, service="bob", timeout=None, limit=None):
    """`calls` calls to sip:service@target at `rate` per second; each call gives up 5 s after
    a message it waits for is late (-recv_timeout), so a lost call never holds the run."""
    timeout = timeout or int(calls / rate) + 15
    return Sipp("uac_call.xml", target, workdir=workdir, name=f"call{rate}", calls=calls,
                rate=rate, timeout=timeout, limit=limit or max(100, rate * 3),
                extra=["-s", service, "-recv_timeout", 5000])


def uas(*, workdir, timeout, port=None, calls=None):
    """A UAS (uas_call.xml) on `port` answering `calls` calls (None: until killed or its
    timeout); statistics every second."""
    return Sipp("uas_call.xml", None, workdir=workdir, name="uas", timeout=timeout,
                stats_period=1, rtt=False, port=port, calls=calls)


def uas_totals(run):
    """(successful, failed, retransmissions) in the UAS's latest stats row."""
    rows = read_stats(run.stats_file)
    if not rows:
        return 0, 0, 0
    last = rows[-1]
    return (count(last, "SuccessfulCall(C)"), count(last, "FailedCall(C)"),
            count(last, "Retransmissions(C)"))


def children_cpu():
    """CPU seconds of this process's reaped children so far (a cross-check)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def check_sipp():
    out = subprocess.run(["sipp", "-v"], capture_output=True, text=True, timeout=10)
    if "SIPp" not in out.stdout + out.stderr:
        raise BenchError("sipp -v does not print SIPp: is sip-tester installed?")
