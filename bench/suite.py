"""The bench: serlite against Kamailio on loopback, driven by sipp; writes bench/RESULTS.md.

    bench/run [--quick] [--profile] [--no-kamailio] [--out FILE] [--keep]

Phases, in this order (the headline figure is CPU-seconds of the server per 1000 transactions:
it holds on a noisy machine, where rates and latencies do not):

 1. fixed rates, both servers one after the other: REGISTERs of new users at 2000/s, then
    calls (INVITE/100/180/200/ACK/BYE/200, a sipp UAC -> the proxy -> a registered sipp UAS)
    at 1000/s.  The CPU of a call's transaction timers comes after the call: it is read
    again TAIL seconds after the phase, while nothing else runs on that server;
 2. serlite only, in fresh processes: bytes per binding at 100 000 bindings, time to save and
    load that table, time from exec to the first answered OPTIONS on python3-light, idle RSS
    against a bare interpreter;
 3. the highest sustainable rate, for each server and each kind: rates stepped up by a factor
    until a step fails (failed calls >= 0.5 %, retransmissions >= 2 %, or sipp could not offer
    90 % of the rate), then one step between the last pass and the first failure;
 4. overload (serlite): calls at twice its highest sustainable rate; OPTIONS probes every
    100 ms, RSS every second, kernel drops on its socket, 503s sent, time to recover;
 5. idle (serlite, 1000 bindings): CPU-seconds and wake-ups over IDLE seconds (run while
    Kamailio's rate search runs: an idle process's own CPU time does not depend on the others).
 6. the media relay (bench/relaybench.py, its own processes): 50 relayed calls at 50 packets/s
    each way through serlite's built-in relay and through rtpengine; ``bench/run --relay-only``
    runs just this and rewrites only its section of RESULTS.md.

Everything is on 127.0.0.1; every sipp is bounded in calls (-m) and time (-timeout).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import sipp
from .servers import (BENCH, PYTHON3_LIGHT, REPO, BenchError, Kamailio, Prober, Serlite,
                      kamailio_allocators, machine, probe, register_contact,
                      status)

REG_TARGET = 2000           # REGISTERs per second of the headline figure
CALL_TARGET = 1000          # calls per second of the headline figure
RATIO_TARGET = 3.0          # serlite's CPU per 1000 <= 3x Kamailio's
FAIL_MAX = 0.005            # a sustainable rate: failed calls < 0.5 %
RETRANS_MAX = 0.02          # and retransmissions < 2 % of the calls
OFFER_MIN = 0.90            # and sipp offered at least 90 % of the rate
REG_CAP = 32000             # the rate search stops here: beyond, sipp and the 2 cores are
CALL_CAP = 8000             # the limit, and Kamailio's table would fill its shared memory
TAIL = 35                   # s: Timer J/D (32 s) of the last transactions have fired by then
UAS_USER = "bob"
KAMAILIO_QM = "kamailio-qm"  # Kamailio with its default allocator, in the fixed phases only


UNANSWERED_MAX = 50      # serlite's requests without a final answer that a phase may start with
UNANSWERED_WAIT = 45.0   # at most (fr_timer, 30 s, and the 408s going up)


class Params:
    def __init__(self, quick):
        self.quick = quick
        self.fixed_secs = 5 if quick else 10
        self.step_secs = 2 if quick else 5
        self.reg_step_secs = 2 if quick else 3
        self.step_factor = 2.0 if quick else 1.5
        self.search_budget = 30 if quick else 75     # s of stepping per server and kind
        self.max_steps = 8
        self.overload_secs = 10 if quick else 30
        self.recovery_limit = 15 if quick else 20
        self.idle_secs = 20 if quick else 60
        self.idle_bindings = 1000
        self.mem_bindings = 100_000
        self.startup_runs = 3 if quick else 5
        self.relay_calls = 50
        self.relay_secs = 10 if quick else 20
        # the relays and their generator ahead of the machine's other processes (root only):
        # on a shared machine their CPU would otherwise be in the relays' delays
        self.relay_nice = -10 if os.geteuid() == 0 else 0


def log(msg):
    print(msg, flush=True)


def ms(x):
    return None if x is None else round(x * 1000.0, 2)


def median(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


# --- one load phase ------------------------------------------------------------------------

class Bench:
    def __init__(self, params, workdir, with_kamailio=True):
        self.P = params
        self.workdir = Path(workdir)
        self.with_kamailio = with_kamailio
        self.servers = {}
        self._uas = []
        self.phase_no = 0
        self.waited = 0.0       # seconds ready() spent waiting for requests to time out
        self.results = {"params": {k: v for k, v in vars(params).items()},
                        "fixed": {}, "tail": {}, "search": {}, "memory": {}, "startup": {},
                        "idle": {}, "overload": {}, "servers": {}, "profile": None}
        self._started = []

    # -- servers ------------------------------------------------------------------------------
    def start_servers(self):
        s = Serlite(self.workdir / "serlite").start()
        self._started.append(s)
        self.servers["serlite"] = s
        self.results["servers"]["serlite"] = {"command": " ".join(s.command()), "pid": s.pid}
        log(f"serlite  pid {s.pid} on udp:127.0.0.1:{s.port}")
        if self.with_kamailio:
            allocs = kamailio_allocators()
            alloc = "tlsf" if "tlsf" in allocs else None
            k = Kamailio(self.workdir / "kamailio", allocator=alloc).start()
            self._started.append(k)
            self.servers["kamailio"] = k
            self.results["servers"]["kamailio"] = {
                "command": " ".join(k.command()), "pid": k.pid, "processes": len(k.pids()),
                "allocators_built": allocs, "allocator": alloc or "default"}
            log(f"kamailio pid {k.pid} ({len(k.pids())} processes, allocator "
                f"{alloc or 'default'}; built with {', '.join(allocs)}) on "
                f"udp:127.0.0.1:{k.port}")
            if alloc == "tlsf" and "qm" in allocs:
                # the fixed rates also beside Kamailio as packaged: its default allocator,
                # q_malloc (the issue: "compare with Kamailio at its best ... and say both")
                q = Kamailio(self.workdir / KAMAILIO_QM, allocator="qm", name=KAMAILIO_QM).start()
                self._started.append(q)
                self.servers[KAMAILIO_QM] = q
                self.results["servers"][KAMAILIO_QM] = {
                    "command": " ".join(q.command()), "pid": q.pid, "processes": len(q.pids()),
                    "allocator": "qm"}
                log(f"{KAMAILIO_QM} pid {q.pid} (allocator qm, the default) on "
                    f"udp:127.0.0.1:{q.port}: fixed rates only")
    def start_uas(self, name, calls, timeout):
        """The callee of one calls phase: a fresh sipp UAS on a fresh port, registered under a
        user of its own (bob<phase>).  Nothing of an earlier phase reaches it: not a UAS that
        outlived failed calls, nor the server's retransmissions of their INVITEs."""
        server = self.servers[name]
        user = f"{UAS_USER}{self.phase_no}"
        uas = sipp.uas(workdir=self.workdir / name, timeout=timeout, calls=calls).start()
        self._uas.append(uas)
        deadline = time.monotonic() + 10
        while not _udp_bound(uas.port):
            if uas.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"sipp UAS for {name} did not start: {uas.dir}")
            time.sleep(0.005)
        if not register_contact(server.addr, user, uas.port):
            raise BenchError(f"{name}: REGISTER of the UAS ({user}) not answered 200")
        uas.user = user
        return uas

    def stop_all(self):
        for uas in self._uas:
            uas.stop()
        for server in reversed(self._started):
            t0 = time.monotonic()
            rc = server.stop()
            self.results["servers"].setdefault(server.name, {})["stop"] = {
                "exit": rc, "seconds": round(time.monotonic() - t0, 3)}

    def ready(self, server, limit=15.0):
        """Wait until the server answers an OPTIONS within 50 ms (a backlog is worked off) and,
        for serlite, until the requests of an earlier phase have had their answer: INVITEs
        forwarded to that phase's UAS, stopped since, wait for fr_timer (30 s) and would count
        against tm's max_transactions, so that a phase after a failed one got 503s for calls
        it never made."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            t = probe(server.addr, timeout=1.0)
            if t is not None and t < 0.05:
                break
            time.sleep(0.1)
        else:
            return False
        if isinstance(server, Serlite):
            t0 = time.monotonic()
            deadline = t0 + UNANSWERED_WAIT
            waited = False
            while (server.ctl("stats") or {}).get("unanswered", 0) > UNANSWERED_MAX:
                if time.monotonic() > deadline:
                    self.waited += time.monotonic() - t0
                    return False
                if not waited:
                    log(f"  (serlite: waiting up to {UNANSWERED_WAIT:.0f} s for the requests "
                        f"of the last phase to time out)")
                    waited = True
                time.sleep(0.5)
            self.waited += time.monotonic() - t0
        return True

    # -- a phase --------------------------------------------------------------------------------
    def phase(self, name, kind, rate, secs):
        server = self.servers[name]
        self.ready(server)
        self.phase_no += 1
        calls = max(1, int(rate * secs))
        wd = self.workdir / name
        uas = self.start_uas(name, calls, int(secs) + 30) if kind == "calls" else None
        before = server.snapshot()
        if kind == "register":
            run = sipp.uac_register(server.addr, workdir=wd, rate=rate, calls=calls,
                                    prefix=f"{name[0]}{self.phase_no}-")
        else:
            run = sipp.uac_calls(server.addr, workdir=wd, rate=rate, calls=calls,
                                 service=uas.user)
        res = run.start().wait()
        after = server.snapshot()
        transactions = None
        if isinstance(server, Serlite):
            transactions = (server.ctl("stats") or {}).get("transactions")
        uas_retrans = uas_cpu = 0
        if uas is not None:
            _, _, uas_retrans, uas_cpu = uas.finish(grace=3.0)
        if isinstance(server, Kamailio) and server._busiest is None:
            server.find_worker()
        cpu = after.cpu - before.cpu
        wall = after.time - before.time
        retrans = res.retransmissions + uas_retrans
        r = {
            "server": name, "kind": kind, "rate": rate, "secs": secs, "calls": calls,
            "created": res.created, "successful": res.successful,
            "failed": res.failed_total, "failures": res.failures(),
            "retrans_uac": res.retransmissions, "retrans_uas": uas_retrans,
            "wall": round(wall, 3),
            "cpu": round(cpu, 3),
            "cpu_per_1000": round(cpu / res.successful * 1000, 4) if res.successful else None,
            "server_util": round(cpu / secs, 3),     # over the offered span: the load's
            "sipp_cpu": round(res.cpu, 3), "sipp_util": round(res.cpu / max(res.wall, 1e-6), 3),
            "uas_cpu": round(uas_cpu, 3),
            "rt1": res.rt("1"), "rt2": res.rt("2") if kind == "calls" else None,
            "drops": after.drops - before.drops, "rss_kb": after.rss_kb,
            "rss_before_kb": before.rss_kb, "transactions": transactions,
            "pss_kb": after.pss_kb, "pss_before_kb": before.pss_kb,
            "hwm_kb": after.hwm_kb, "sipp_exit": res.returncode,
        }
        why = []
        if r["failed"] >= FAIL_MAX * calls:
            why.append(f"failed {r['failed']}/{calls}")
        if retrans >= RETRANS_MAX * calls:
            why.append(f"retransmissions {retrans}/{calls}")
        if res.created < OFFER_MIN * calls:
            why.append(f"sipp offered {res.created}/{calls} calls")
        # how fast sipp offered them: over the span of the calls' first answers
        achieved = res.offered_rate()
        r["achieved_rate"] = round(achieved, 1) if achieved is not None else None
        # (ms resolution: a 2 s step at 1000/s is measured to 0.1 %)
        slow = achieved is not None and achieved < OFFER_MIN * rate
        if slow and not why:
            why.append(f"sipp offered only {achieved:.0f}/s")
        r["ok"] = not why
        r["why"] = "; ".join(why)
        busy = cpu + res.cpu + uas_cpu
        r["machine_util"] = round(busy / max(wall, 1e-6), 2)
        r["client_bound"] = r["sipp_util"] >= 0.85 or r["machine_util"] >= 0.9 * (
            os.cpu_count() or 1) or (slow and why == [f"sipp offered only {achieved:.0f}/s"])
        rt = r["rt1"]
        log(f"  {name:8} {kind:8} {rate:6}/s x{secs:>3}s: {r['successful']:6} ok "
            f"{r['failed']:5} failed {retrans:5} retr  cpu {cpu:6.2f} s "
            f"= {r['cpu_per_1000'] if r['cpu_per_1000'] is not None else '-':>7} s/1000  "
            f"util {r['server_util']:.2f}  sipp {r['sipp_util']:.2f}  "
            f"rt p50/p99 {rt[0] if rt else '-'}/{rt[1] if rt else '-'} ms  "
            f"{'OK' if r['ok'] else 'FAIL: ' + r['why']}"
            f"{'  (client/machine-bound)' if r['client_bound'] else ''}")
        if not r["ok"] and res.errors():
            (wd / f"phase{self.phase_no}-errors.txt").write_text(res.errors(20000))
        return r

    # -- 1. fixed rates -----------------------------------------------------------------------
    def fixed(self):
        P = self.P
        log(f"== fixed rates: {REG_TARGET} REGISTER/s and {CALL_TARGET} calls/s, "
            f"{P.fixed_secs} s each")
        for name in self.servers:
            self.results["fixed"].setdefault(name, {})["register"] = self.phase(
                name, "register", REG_TARGET, P.fixed_secs)
        ends = {}
        for name in self.servers:
            r = self.phase(name, "calls", CALL_TARGET, P.fixed_secs)
            self.results["fixed"][name]["calls"] = r
            ends[name] = (time.monotonic(), self.servers[name].snapshot())
        return ends

    def tails(self, ends):
        """The CPU each server spent between the end of its fixed calls phase and TAIL s later
        (transaction timers firing), nothing else having run on it."""
        for name, (t_end, snap) in sorted(ends.items(), key=lambda kv: kv[1][0]):
            wait = t_end + TAIL - time.monotonic()
            if wait > 0:
                log(f"  ({name}: waiting {wait:.0f} s for the last transactions' timers)")
                time.sleep(wait)
            now = self.servers[name].snapshot()
            extra = now.cpu - snap.cpu
            fixed = self.results["fixed"][name]["calls"]
            total = fixed["cpu"] + extra
            self.results["tail"][name] = {
                "secs": round(now.time - snap.time, 1), "cpu": round(extra, 3),
                "cpu_per_1000_with_tail": round(total / fixed["successful"] * 1000, 4)
                if fixed["successful"] else None}
            log(f"  {name}: {extra:.3f} CPU-s in the {now.time - snap.time:.0f} s after the "
                f"calls: {self.results['tail'][name]['cpu_per_1000_with_tail']} s per 1000 "
                f"calls in all")

    # -- 3. highest sustainable rate ------------------------------------------------------------
    def search(self, name, kind, start):
        P = self.P
        log(f"== highest sustainable rate: {name} {kind}, from {start}/s, x{P.step_factor}")
        steps = []
        best = fail = None
        bound = False
        rate = start
        deadline = time.monotonic() + P.search_budget
        waited0 = self.waited

        def left():
            """Seconds of the search's budget left; waiting for a failed step's requests to
            time out (``ready``) does not count."""
            return deadline + (self.waited - waited0) - time.monotonic()

        retried = False
        cap = REG_CAP if kind == "register" else CALL_CAP
        secs = P.reg_step_secs if kind == "register" else P.step_secs
        capped = False
        while len(steps) < P.max_steps and left() > 0:
            r = self.phase(name, kind, rate, secs)
            steps.append(r)
            if not r["ok"] and r["client_bound"] and best is not None:
                bound = True        # sipp could not offer the rate: the server was not the limit
                break
            if not r["ok"] and not retried and left() > 0:
                # one failure may be the machine's noise (other processes): the same rate again
                retried = True
                log("  (once more at the same rate)")
                r = self.phase(name, kind, rate, secs)
                r["retry"] = True
                steps.append(r)
            if r["ok"]:
                best = rate if best is None or rate > best else best
                if r["client_bound"]:
                    bound = True
                    break
                if fail is not None:
                    break
                if rate >= cap:
                    capped = True
                    break
                rate = min(cap, int(rate * P.step_factor))
            else:
                fail = rate if fail is None or rate < fail else fail
                if best is not None:
                    break
                rate = max(1, int(rate / P.step_factor))
                if rate < 10:
                    break
        if best is not None and fail is not None and not bound and \
                left() > -P.step_secs and fail > best * 1.15:
            mid = int(math.sqrt(best * fail))
            r = self.phase(name, kind, mid, secs)
            steps.append(r)
            if r["ok"]:
                best = mid
                bound = r["client_bound"]
            else:
                fail = mid
        out = {"steps": steps, "max": best, "first_fail": fail,
               "client_bound": bound and (fail is None or fail > best), "capped": capped}
        self.results["search"].setdefault(name, {})[kind] = out
        log(f"  {name} {kind}: highest sustainable {best}/s"
            f"{' (or more: sipp or the machine was the limit)' if out['client_bound'] else ''}"
            f"{' (or more: the bench stops there)' if capped else ''}"
            f"{f', {fail}/s failed' if fail else ''}")
        return out

    def at_rate(self, kind, rate):
        """Kamailio at serlite's highest sustainable rate: both figures at one rate both
        sustain (serlite's from its passing step at that rate)."""
        s_steps = self.results["search"]["serlite"][kind]["steps"]
        s = next((r for r in reversed(s_steps) if r["rate"] == rate and r["ok"]), None)
        secs = self.P.reg_step_secs if kind == "register" else self.P.step_secs
        log(f"== Kamailio at serlite's highest sustainable {kind} rate, {rate}/s")
        k = self.phase("kamailio", kind, rate, secs)
        self.results.setdefault("same_rate", {})[kind] = {"rate": rate, "serlite": s,
                                                          "kamailio": k}

    # -- 6. the media relay ---------------------------------------------------------------------
    def relay(self):
        try:
            self.results["relay"] = run_relay(self.P)
        except (BenchError, subprocess.TimeoutExpired, ValueError) as exc:
            log(f"  media relay bench failed, left out of RESULTS.md: {exc}")

    # -- 2. memory and start-up (serlite) ----------------------------------------------------
    def memory(self):
        P = self.P
        n = P.mem_bindings
        log(f"== memory: {n} bindings (fresh processes)")
        d = self.workdir / "memory"
        out = {}
        for what, sub in (("build", "table"), ("load", "table"), ("trace", "trace")):
            cmd = [sys.executable, "-m", "bench.memory", what, str(n), str(d / sub)]
            p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                               env=_pyenv())
            if p.returncode != 0:
                raise BenchError(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
            out[what] = json.loads(p.stdout.strip().splitlines()[-1])
        b, l, t = out["build"], out["load"], out["trace"]
        self.results["memory"] = {
            "bindings": n,
            "bytes_per_binding_rss": round(b["rss_delta_kb"] * 1024 / n, 1),
            "bytes_per_binding_rss_loaded": round(l["rss_delta_kb"] * 1024 / n, 1),
            "bytes_per_binding_traced": round(t["traced_bytes"] / n, 1),
            "build_s": round(b["build_s"], 3), "save_s": round(b["save_s"], 3),
            "load_s": round(l["load_s"], 3), "file_bytes": b["file_bytes"],
            "loaded": l["n"], "process_rss_kb": b["rss_kb"]}
        cmd = [sys.executable, str(BENCH / "callsim.py"), "--memory"]
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                           env=_pyenv())
        if p.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
        self.results["memory"]["transactions"] = json.loads(p.stdout.strip().splitlines()[-1])
        m = self.results["memory"]
        log(f"  a transaction in the table: {m['transactions']['bytes_per_transaction']} B "
            f"(tracemalloc, steady state)")
        log(f"  {m['bytes_per_binding_rss']} B/binding (RSS), "
            f"{m['bytes_per_binding_traced']} B (tracemalloc), "
            f"{m['bytes_per_binding_rss_loaded']} B when loaded from the file; "
            f"save {m['save_s']} s, load {m['load_s']} s, file {m['file_bytes'] / 1e6:.1f} MB")
        return d / "table"

    def startup(self, table_dir):
        P = self.P
        py = PYTHON3_LIGHT if PYTHON3_LIGHT.exists() else Path(sys.executable)
        log(f"== start-up: exec -> first answered OPTIONS, on {py.name}")
        out = {"python": str(py)}
        empty = [self._start_once(py, None, i, rss=(i == 0)) for i in range(P.startup_runs)]
        out["empty"] = {"seconds": [round(x[0], 4) for x in empty],
                        "median": round(median([x[0] for x in empty]), 4),
                        "idle_rss_kb": empty[0][1]}
        runs = max(2, P.startup_runs // 2)
        full = [self._start_once(py, table_dir, 100 + i, rss=(i == 0)) for i in range(runs)]
        out["table"] = {"bindings": P.mem_bindings,
                        "seconds": [round(x[0], 4) for x in full],
                        "median": round(median([x[0] for x in full]), 4),
                        "rss_kb": full[0][1]}
        out["bare_rss_kb"] = _bare_rss(py)
        out["bare_python3_rss_kb"] = _bare_rss(Path(sys.executable))
        self.results["startup"] = out
        log(f"  empty table: {out['empty']['median'] * 1000:.0f} ms (median of "
            f"{len(empty)}), idle RSS {out['empty']['idle_rss_kb'] / 1024:.1f} MB against "
            f"{out['bare_rss_kb'] / 1024:.1f} MB for a bare interpreter")
        log(f"  {P.mem_bindings} bindings in the file: {out['table']['median'] * 1000:.0f} ms, "
            f"RSS {out['table']['rss_kb'] / 1024:.1f} MB")

    def _start_once(self, python, table_dir, i, rss=False):
        wd = self.workdir / "startup"
        db = table_dir if table_dir else wd / f"usrloc{i}"
        s = Serlite(wd, python=python, db_dir=db, name=f"startup{i}")
        t0 = time.monotonic()
        with open(s.log, "ab") as logf:
            s.proc = subprocess.Popen(s.command(), cwd=REPO, env=s.env(),
                                      stdin=subprocess.DEVNULL, stdout=logf,
                                      stderr=subprocess.STDOUT)
        took = None
        try:
            deadline = t0 + 30
            while time.monotonic() < deadline:
                if s.proc.poll() is not None:
                    raise BenchError(f"start-up run {i} exited ({s.proc.returncode}):\n"
                                     f"{s.tail()}")
                if probe(s.addr, timeout=0.002) is not None:
                    took = time.monotonic() - t0
                    break
                time.sleep(0.001)
            if took is None:
                raise BenchError(f"start-up run {i}: no answer within 30 s\n{s.tail()}")
            rss_kb = None
            if rss:
                time.sleep(1.0)
                rss_kb = status(s.pid)["VmRSS"]
        finally:
            s.stop()
        return took, rss_kb

    # -- 5. idle ------------------------------------------------------------------------------
    def start_idle(self):
        """A second serlite (on python3-light) and, for comparison, a second Kamailio, each
        with 1000 bindings and nothing else to do; measured in the background."""
        P = self.P
        py = PYTHON3_LIGHT if PYTHON3_LIGHT.exists() else Path(sys.executable)
        servers = [Serlite(self.workdir / "idle", python=py, name="idle")]
        if self.with_kamailio:
            alloc = self.results["servers"]["kamailio"]["allocator"]
            servers.append(Kamailio(self.workdir / "idle-kamailio",
                                    allocator=None if alloc == "default" else alloc))
        watches = []
        for s in servers:
            s.start()
            self._started.append(s)
            run = sipp.uac_register(s.addr, workdir=s.workdir, rate=1000,
                                    calls=P.idle_bindings, prefix="idle-").start()
            res = run.wait()
            if res.successful != P.idle_bindings:
                log(f"  idle {s.name}: {res.successful}/{P.idle_bindings} REGISTERs answered")
            watches.append(IdleWatch(s, P.idle_secs, res.successful))
        time.sleep(1.0)
        for w in watches:
            w.start()
        log(f"== idle: {', '.join(f'{w.server.name} pid {w.server.pid}' for w in watches)} "
            f"with {P.idle_bindings} bindings, {P.idle_secs} s (measured in the background)")
        return watches

    def finish_idle(self, watches):
        for watch in watches:
            watch.join(self.P.idle_secs + 30)
            r = watch.result
            name = "serlite" if isinstance(watch.server, Serlite) else "kamailio"
            self.results["idle"][name] = r
            if r:
                log(f"== idle {name}: {r['cpu']:.3f} CPU-s in {r['secs']:.0f} s, "
                    f"{r['wakeups_per_s']:.2f} wake-ups/s ({r['voluntary']} voluntary context "
                    f"switches, all processes), RSS {r['rss_kb'] / 1024:.1f} MB")
            watch.server.stop()

    # -- 4. overload ----------------------------------------------------------------------------
    def overload(self, max_rate, capacity=None):
        """Calls at twice serlite's maximum rate: the larger of its highest sustainable rate
        and what its CPU can do at all (1000 / its CPU-seconds per 1000 calls), so that the
        offered load really exceeds what one core can process."""
        P = self.P
        name = "serlite"
        s = self.servers[name]
        top = max(max_rate or 0, int(capacity or 0))
        rate = max(20, 2 * top)
        secs = P.overload_secs
        log(f"== overload: serlite, calls at {rate}/s (twice {top}/s: highest sustainable "
            f"{max_rate}/s, CPU capacity {capacity and int(capacity)}/s) for {secs} s")
        self.ready(s)
        base = Prober(s.addr, interval=0.05, timeout=1.0, limit=2.0)
        base.start()
        base.join(10)
        baseline = median([lat for _, lat in base.samples if lat is not None]) or 0.001
        stats0 = s.ctl("stats") or {}
        snap0 = s.snapshot()
        self.phase_no += 1
        uas = self.start_uas(name, rate * secs, secs + P.recovery_limit + 20)
        prober = Prober(s.addr, interval=0.1, timeout=1.0,
                        limit=secs + P.recovery_limit + 30)
        rss = []
        stop_rss = threading.Event()

        def sample():
            while not stop_rss.is_set():
                try:
                    st = status(s.pid)
                except (FileNotFoundError, ProcessLookupError):
                    break
                rss.append((round(time.monotonic() - t0, 1), st["VmRSS"]))
                stop_rss.wait(1.0)

        calls = rate * secs
        run = sipp.uac_calls(s.addr, workdir=self.workdir / name, rate=rate, calls=calls,
                             service=uas.user, timeout=secs + P.recovery_limit + 10,
                             limit=rate * 10)
        t0 = time.monotonic()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        prober.start()
        run.start()
        offer_end = t0 + secs
        # recovery: the first moment after the offered load ends from which every probe for
        # one second is answered within max(3x baseline, 5 ms)
        good = max(3 * baseline, 0.005)
        recovered_at = None
        limit_at = offer_end + P.recovery_limit
        while time.monotonic() < limit_at:
            time.sleep(0.2)
            if time.monotonic() < offer_end + 1.0:
                continue
            recovered_at = _recovered(prober.samples, offer_end, good)
            if recovered_at is not None and time.monotonic() > recovered_at + 1.0 + good:
                break
        prober.stop()
        res = run.wait()
        uas.finish(grace=1.0)
        stop_rss.set()
        sampler.join(3)
        snap1 = s.snapshot()
        stats1 = s.ctl("stats") or {}
        during = [lat for t, lat in prober.samples if t0 <= t < offer_end]
        answered = [x for x in during if x is not None]
        sent503 = _code(stats1, "503") - _code(stats0, "503")
        rss_during = [kb for t, kb in rss if t <= secs]
        out = {
            "rate": rate, "max_rate": max_rate, "secs": secs, "calls": calls,
            "capacity": int(capacity) if capacity else None,
            "created": res.created, "successful": res.successful, "failed": res.failed_total,
            "failures": res.failures(), "retrans_uac": res.retransmissions,
            "goodput": round(res.successful / secs, 1),
            "probes": len(during), "probes_answered": len(answered),
            "probe_p50_ms": ms(median(answered)),
            "probe_max_ms": ms(max(answered)) if answered else None,
            "baseline_ms": ms(baseline), "recovery_s": round(recovered_at - offer_end, 2)
            if recovered_at is not None else None,
            "recovery_threshold_ms": ms(good),
            "kernel_drops": snap1.drops - snap0.drops, "sent_503": sent503,
            "cpu": round(snap1.cpu - snap0.cpu, 2),
            "rss_mb": [(t, round(kb / 1024, 1)) for t, kb in rss],
            "rss_start_mb": round(rss[0][1] / 1024, 1) if rss else None,
            "rss_max_mb": round(max(kb for _, kb in rss) / 1024, 1) if rss else None,
            "rss_end_mb": round(rss[-1][1] / 1024, 1) if rss else None,
            "rss_during_growth_mb": round((max(rss_during) - rss_during[0]) / 1024, 1)
            if rss_during else None,
            "transactions_after": stats1.get("transactions"),
            "alive": s.running(),
        }
        self.results["overload"] = out
        log(f"  offered {res.created} calls, {res.successful} succeeded ({out['goodput']}/s), "
            f"{out['failed']} failed; probes answered {len(answered)}/{len(during)} "
            f"(p50 {out['probe_p50_ms']} ms, max {out['probe_max_ms']} ms); "
            f"503 sent {sent503}; kernel drops {out['kernel_drops']}")
        log(f"  RSS {out['rss_start_mb']} -> max {out['rss_max_mb']} -> {out['rss_end_mb']} MB; "
            f"back to normal (probes < {ms(good)} ms) "
            f"{out['recovery_s'] if out['recovery_s'] is not None else 'not'} s after the load"
            f"{'' if out['recovery_s'] is not None else f' within {P.recovery_limit} s'}")
        return out

    # -- profile ------------------------------------------------------------------------------
    def profile(self):
        """serlite under cProfile: REGISTERs then calls at rates it sustains profiled."""
        wd = self.workdir / "profile"
        prof = wd / "serlite.prof"
        s = Serlite(wd, profile=prof, name="profiled").start()
        self._started.append(s)
        uas = sipp.uas(workdir=wd, timeout=600).start()
        try:
            deadline = time.monotonic() + 10
            while not _udp_bound(uas.port) and time.monotonic() < deadline:
                time.sleep(0.01)
            register_contact(s.addr, UAS_USER, uas.port)
            secs = 5
            log(f"== profile: serlite under cProfile, 600 REGISTER/s then 150 calls/s, {secs} s "
                f"each")
            r1 = sipp.uac_register(s.addr, workdir=wd, rate=600, calls=600 * secs,
                                   prefix="p-").start().wait()
            r2 = sipp.uac_calls(s.addr, workdir=wd, rate=150, calls=150 * secs,
                                service=UAS_USER).start().wait()
            time.sleep(1.0)
        finally:
            uas.stop()
            s.stop()
            self._started.remove(s)
        import io
        import pstats
        buf = io.StringIO()
        st = pstats.Stats(str(prof), stream=buf)
        st.sort_stats("tottime").print_stats(25)
        text = buf.getvalue()
        text = text[text.find("   ncalls"):] if "   ncalls" in text else text
        text = text.replace(str(REPO) + "/", "")
        buf = io.StringIO()
        pstats.Stats(str(prof), stream=buf).sort_stats("cumulative").print_stats(40)
        cum = buf.getvalue()
        cum = cum[cum.find("   ncalls"):] if "   ncalls" in cum else cum
        cum = cum.replace(str(REPO) + "/", "")
        (wd / "profile-cumulative.txt").write_text(cum)
        (wd / "profile.txt").write_text(text)
        self.results["profile"] = {
            "register": [r1.successful, r1.failed_total], "calls": [r2.successful,
                                                                    r2.failed_total],
            "top": text, "cumulative": cum}
        log(text.rstrip())
        log("by cumulative time:")
        log(cum.rstrip())


class IdleWatch(threading.Thread):
    def __init__(self, server, secs, bindings):
        super().__init__(daemon=True)
        self.server = server
        self.secs = secs
        self.bindings = bindings
        self.result = None

    def run(self):
        a = self.server.snapshot()
        time.sleep(self.secs)
        b = self.server.snapshot()
        secs = b.time - a.time
        vol = b.voluntary_all - a.voluntary_all
        self.result = {"bindings": self.bindings, "secs": round(secs, 1),
                       "processes": len(b.per_pid),
                       "cpu": round(b.cpu - a.cpu, 3), "voluntary": vol,
                       "involuntary": b.involuntary - a.involuntary,
                       "wakeups_per_s": round(vol / secs, 3), "rss_kb": b.rss_kb}


def _recovered(samples, offer_end, good):
    """The start of the first 1 s run of probes (after offer_end) all answered within `good`."""
    after = [(t, lat) for t, lat in list(samples) if t >= offer_end]
    for i, (t, lat) in enumerate(after):
        if lat is None or lat > good:
            continue
        window = [x for u, x in after[i:] if u <= t + 1.0]
        if after[-1][0] < t + 1.0:
            return None
        if all(x is not None and x <= good for x in window):
            return t
    return None


def _code(stats, code):
    v = (stats.get("replies_out") or {}).get(code)
    return v[0] if v else 0


def _udp_bound(port):
    want = ":%04X" % port
    with open("/proc/net/udp") as f:
        return any(line.split()[1].endswith(want) for line in list(f)[1:])


def _bare_rss(python):
    p = subprocess.Popen([str(python), "-c", "import time; time.sleep(3)"],
                         stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        return status(p.pid)["VmRSS"]
    finally:
        p.kill()
        p.wait()


def compile_bytecode():
    """Run every serlite process of the bench from compiled bytecode, as the package installs
    it (toolchain/mkipk ships .pyc).  Without this, an environment with PYTHONDONTWRITEBYTECODE
    set compiles each module from source at every start: a slower start and several MB more
    RSS from the compiler's garbage, neither of which a router sees.  The .pyc go beside the
    sources (__pycache__, ignored by git), where the interpreter looks for them; a prefix
    (PYTHONPYCACHEPREFIX) would move the standard library's out of reach too."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(REPO / "serlite")],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def _pyenv():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# --- RESULTS.md --------------------------------------------------------------------------------

def _f(x, nd=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _ms(x):
    return "<1" if x == 0 else _f(x, 0)


def _rt(r, key="rt1"):
    v = r.get(key) if r else None
    if not v:
        return "-"
    return f"{_ms(v[0])} / {_ms(v[1])}"


def _ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def _verdict(ratio):
    if ratio is None:
        return "-"
    return "meets" if ratio <= RATIO_TARGET else "misses"


def _common_rate(res, kind):
    """The highest stepped rate that both servers passed, with both figures."""
    s = {r["rate"]: r for r in res["search"].get("serlite", {}).get(kind, {}).get("steps", [])}
    k = {r["rate"]: r for r in res["search"].get("kamailio", {}).get(kind, {}).get("steps", [])}
    both = [rate for rate in s if rate in k and s[rate]["ok"] and k[rate]["ok"]]
    if not both:
        return None
    rate = max(both)
    return rate, s[rate], k[rate]


def run_relay(P):
    """bench/relaybench.py in its own process (it starts its own serlite and rtpengine)."""
    log(f"== media relay: {P.relay_calls} calls at 50 packets/s each way, {P.relay_secs} s per "
        f"relay (serlite's built-in, rtpengine)")
    if shutil.which("rtpengine") is None:
        log("  rtpengine not found: skipped (bench/run installs rtpengine-daemon)")
        return None
    cmd = [sys.executable, "-m", "bench.relaybench", "--calls", str(P.relay_calls), "--secs",
           str(P.relay_secs)] + (["--nice", str(P.relay_nice)] if P.relay_nice else []) + [
           "--json"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                       env=_pyenv())
    if p.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout)
    res["command"] = "python3 -m bench.relaybench " + " ".join(cmd[3:-1])
    from .relaybench import table
    log(table(res))
    return res


RELAY_HEADING = "## Media relay: serlite's built-in relay beside rtpengine"


def relay_section(rr, written=None):
    """RESULTS.md's media relay section (lines), from bench/relaybench.py's figures."""
    from .relaybench import table
    lines = [RELAY_HEADING, ""]
    if written:
        lines += [f"Written by `bench/run --relay-only` on {written:%Y-%m-%d %H:%M} UTC (the "
                  f"rest of this file by the run named at its top).", ""]
    lines += [
        f"`{rr['command']}`: {rr['calls']} calls set up through serlite by SIP (INVITE with "
        f"SDP, 200 with SDP, ACK; a proxy config with `rtpproxy_manage()`, one process: "
        f"`{rr['commands']['serlite']}`) and through rtpengine by its ng protocol "
        f"(offer/answer; userspace, one worker thread: `{rr['commands']['rtpengine']}`). One "
        f"generator process with one poll loop plays every phone: {2 * rr['calls']} streams of "
        f"{rr['packet_bytes']}-byte RTP at {rr['rate']}/s spread over the 20 ms period, each "
        f"packet stamped with its send time; arrivals stamped by the kernel (SO_TIMESTAMPNS). "
        f"Phases one after the other, each after 0.5 s of warm-up: the phones straight to each "
        f"other (the loopback baseline), through serlite, through rtpengine. CPU: utime+stime "
        f"of the relay's process (all threads) over the phase, per packet relayed. RSS per "
        f"session: (RSS with the calls set up - RSS after one call came and went) / calls; "
        f"serlite's includes each call's SIP transaction and dialog state besides its relay "
        f"session (6.3 kB of Python heap by tracemalloc, docs/architecture.md). The delays "
        f"are the scheduler's as much as the relay's: with other processes on the machine's "
        f"CPUs (the load average below) a relay waits for a CPU now and then, and the "
        f"packets that came meanwhile make the p99; compare the two relays of one run.",
        ""]
    lines += table(rr).splitlines()
    lines.append("")
    if rr.get("workdir"):
        lines = [line.replace(rr["workdir"], "$WORK") for line in lines]
    return lines


def splice_relay(path, rr, written):
    """Put the media relay section into an existing RESULTS.md: in place of the one there, or
    before the profile, or at the end."""
    text = Path(path).read_text() if Path(path).exists() else "# serlite benchmark results\n"
    section = "\n".join(relay_section(rr, written))
    start = text.find(RELAY_HEADING)
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    else:
        at = text.find("\n## Profile")
        if at >= 0:
            text = text[:at + 1] + section + "\n" + text[at + 1:]
        else:
            text = text.rstrip("\n") + "\n\n" + section
    Path(path).write_text(text)


def write_results(res, path, started, elapsed):
    m = res["machine"]
    P = res["params"]
    fx = res["fixed"]
    lines = []
    add = lines.append
    add("# serlite benchmark results")
    add("")
    add(f"Written by `bench/run{' --quick' if P['quick'] else ''}` on "
        f"{started:%Y-%m-%d %H:%M} UTC in {elapsed / 60:.1f} min. Do not edit: run the bench "
        f"again.")
    add("")
    add(f"Machine: {m['nproc']} CPUs, {m['cpu']}, Linux {m['kernel']}; Python {m['python']} "
        f"({m['python_path']}); Kamailio {m['kamailio'] or 'not run'}; SIPp {m['sipp']}.")
    add("")
    srv = res["servers"]
    add("Servers, on 127.0.0.1 UDP, driven by sipp (UAC and UAS on the same machine; $WORK is "
        "the run's temporary directory):")
    add("")
    add(f"- serlite: `{srv['serlite']['command']}` (one process; bench/serlite.cfg: SER's seed "
        f"config + maxfwd, usrloc db_mode 2 in a flat file)")
    if "kamailio" in srv:
        k = srv["kamailio"]
        add(f"- Kamailio: `{k['command']}` (children=1: one SIP worker; {k['processes']} "
            f"processes in all, CPU summed over all of them; allocator {k['allocator']} for "
            f"shm and pkg, built with {', '.join(k['allocators_built'])}; bench/kamailio.cfg: "
            f"the same routing, usrloc db_mode 0 in memory, no DB module)")
    if KAMAILIO_QM in srv:
        add(f"- Kamailio as packaged, for the fixed rates only: `{srv[KAMAILIO_QM]['command']}` "
            f"(the same, with its default allocator q_malloc)")
    add("")
    add("## Headline: CPU-seconds of the server per 1000 transactions")
    add("")
    add(f"Fixed rate, {P['fixed_secs']} s. A call is INVITE/100/180/200/ACK/BYE/200 through "
        f"the proxy (two transactions); its CPU includes the {TAIL} s after the phase "
        f"(transaction timers). Target: serlite <= {RATIO_TARGET:g}x Kamailio.")
    add("")
    add("| load | serlite CPU-s/1000 | Kamailio CPU-s/1000 | ratio | target | serlite sustained "
        "it? | Kamailio? |")
    add("|---|---|---|---|---|---|---|")
    s_reg = fx.get("serlite", {}).get("register")
    k_reg = fx.get("kamailio", {}).get("register")
    s_call = fx.get("serlite", {}).get("calls")
    k_call = fx.get("kamailio", {}).get("calls")
    tl = res["tail"]
    s_cpk = tl.get("serlite", {}).get("cpu_per_1000_with_tail")
    k_cpk = tl.get("kamailio", {}).get("cpu_per_1000_with_tail")
    reg_ratio = _ratio(s_reg and s_reg["cpu_per_1000"], k_reg and k_reg["cpu_per_1000"])
    call_ratio = _ratio(s_cpk, k_cpk)
    res["headline"] = {"register_ratio": reg_ratio, "calls_ratio": call_ratio}
    add(f"| REGISTER {REG_TARGET}/s | {_f(s_reg and s_reg['cpu_per_1000'])} | "
        f"{_f(k_reg and k_reg['cpu_per_1000'])} | {_f(reg_ratio, 2)}x | "
        f"<= {RATIO_TARGET:g}x: {_verdict(reg_ratio)} | {_yn(s_reg)} | {_yn(k_reg)} |")
    add(f"| calls {CALL_TARGET}/s (seed config, stateful) | {_f(s_cpk)} | {_f(k_cpk)} | "
        f"{_f(call_ratio, 2)}x | <= {RATIO_TARGET:g}x: {_verdict(call_ratio)} | {_yn(s_call)} | "
        f"{_yn(k_call)} |")
    q_reg = fx.get(KAMAILIO_QM, {}).get("register")
    q_cpk = tl.get(KAMAILIO_QM, {}).get("cpu_per_1000_with_tail")
    if q_reg or q_cpk:
        q_reg_ratio = _ratio(s_reg and s_reg["cpu_per_1000"], q_reg and q_reg["cpu_per_1000"])
        q_call_ratio = _ratio(s_cpk, q_cpk)
        res["headline"].update(register_ratio_qm=q_reg_ratio, calls_ratio_qm=q_call_ratio)
        add(f"| REGISTER {REG_TARGET}/s, Kamailio with q_malloc (its default) | "
            f"{_f(s_reg and s_reg['cpu_per_1000'])} | {_f(q_reg and q_reg['cpu_per_1000'])} | "
            f"{_f(q_reg_ratio, 2)}x | (for reference) | {_yn(s_reg)} | {_yn(q_reg)} |")
        add(f"| calls {CALL_TARGET}/s, Kamailio with q_malloc (its default) | {_f(s_cpk)} | "
            f"{_f(q_cpk)} | {_f(q_call_ratio, 2)}x | (for reference) | {_yn(s_call)} | "
            f"{_yn(fx.get(KAMAILIO_QM, {}).get('calls'))} |")
    for kind, label in (("register", "REGISTER"), ("calls", "calls")):
        same = res.get("same_rate", {}).get(kind)
        c = (same["rate"], same["serlite"], same["kamailio"]) if same and same["serlite"] \
            and same["kamailio"]["ok"] else _common_rate(res, kind)
        if c:
            rate, a, b = c
            ratio = _ratio(a["cpu_per_1000"], b["cpu_per_1000"])
            add(f"| {label} {rate}/s (serlite's highest sustainable rate; no tail) | "
                f"{_f(a['cpu_per_1000'])} | {_f(b['cpu_per_1000'])} | {_f(ratio, 2)}x | "
                f"<= {RATIO_TARGET:g}x: {_verdict(ratio)} | yes | yes |")
    add("")
    add("A rate the server does not sustain makes its figure worse than it would be (work on "
        "retransmissions, calls lost): see the sustained column and the rate search below.")
    add("")
    add("### The fixed-rate phases in full")
    add("")
    add("| server | load | ok / failed | retrans (UAC+UAS) | kernel drops | CPU-s | "
        "server CPU use | p50 / p99 ms (INVITE->180, REGISTER->200) | BYE->200 p50/p99 | "
        "sipp CPU use |")
    add("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("serlite", "kamailio", KAMAILIO_QM):
        for kind in ("register", "calls"):
            r = fx.get(name, {}).get(kind)
            if r:
                add(f"| {name} | {kind} {r['rate']}/s x {r['secs']} s | {r['successful']} / "
                    f"{r['failed']} | {r['retrans_uac']}+{r['retrans_uas']} | {r['drops']} | "
                    f"{_f(r['cpu'])} | "
                    f"{_f(r['server_util'], 2)} | {_rt(r)} | {_rt(r, 'rt2')} | "
                    f"{_f(r['sipp_util'], 2)} |")
    for name, t in tl.items():
        add("")
        add(f"{name}: {_f(t['cpu'])} CPU-s in the {t['secs']} s after its calls phase "
            f"(timers), included above.")
    add("")
    add("## Highest sustainable rate")
    add("")
    add(f"Failed calls < {FAIL_MAX:.1%}, retransmissions < {RETRANS_MAX:.0%} of the calls, "
        f"sipp offering >= {OFFER_MIN:.0%} of the calls; steps of {P['step_secs']} s, "
        f"rates x{P['step_factor']} then one step between the last pass and the first failure; "
        f"the first failing step is run once more (noise from other processes). "
        f"A serlite step starts when at most {UNANSWERED_MAX} requests of the step before "
        f"still wait for an answer (INVITEs sent to a failed step's UAS, stopped since, time "
        f"out after fr_timer, 30 s; until then they count against tm's max_transactions). "
        f"On {m['nproc']} CPUs the server shares the machine with sipp (UAC, and UAS for calls): "
        f"Kamailio's figure is often sipp's or the machine's limit, marked so.")
    add("")
    add("| server | REGISTER/s | calls/s |")
    add("|---|---|---|")
    for name in ("serlite", "kamailio"):
        row = res["search"].get(name)
        if not row:
            continue
        cells = []
        for kind in ("register", "calls"):
            s = row.get(kind)
            if not s:
                cells.append("-")
                continue
            note = " or more (client/machine-bound)" if s["client_bound"] else ""
            note += " or more (the bench's cap)" if s.get("capped") else ""
            fail = f"; {s['first_fail']}/s failed" if s["first_fail"] else ""
            cells.append(f"**{s['max'] or '-'}**{note}{fail}")
        add(f"| {name} | {cells[0]} | {cells[1]} |")
    add("")
    add("<details><summary>every step</summary>")
    add("")
    add("| server | load | ok / failed | retrans | kernel drops | CPU-s/1000 | server CPU use | "
        "p50 / p99 ms | sipp CPU use | verdict |")
    add("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("serlite", "kamailio"):
        for kind in ("register", "calls"):
            for r in res["search"].get(name, {}).get(kind, {}).get("steps", []):
                add(f"| {name} | {kind} {r['rate']}/s | {r['successful']} / {r['failed']} | "
                    f"{r['retrans_uac'] + r['retrans_uas']} | {r['drops']} | "
                    f"{_f(r['cpu_per_1000'])} | "
                    f"{_f(r['server_util'], 2)} | {_rt(r)} | {_f(r['sipp_util'], 2)} | "
                    f"{'ok' if r['ok'] else r['why']}"
                    f"{' (client/machine-bound)' if r['client_bound'] else ''} |")
    add("")
    add("</details>")
    add("")
    add("## Memory")
    add("")
    for name in ("serlite", "kamailio"):
        mem = res.get("final_memory", {}).get(name)
        if not mem:
            continue
        if name == "serlite":
            ov = res.get("overload") or {}
            before = (f", {ov['rss_start_mb']} MB before the overload phase"
                      if ov.get("rss_start_mb") else "")
            add(f"- serlite, at the end ({mem.get('bindings', '?')} bindings): peak RSS "
                f"(VmHWM) over the whole run, the overload included, "
                f"**{mem['hwm_kb'] / 1024:.1f} MB**{before} (one process).")
        else:
            add(f"- Kamailio, after the load phases ({mem['bindings']} REGISTERs of distinct users "
                f"answered 200): the SIP worker's peak RSS (VmHWM) "
                f"**{mem['worker_hwm_kb'] / 1024:.1f} MB**, the attendant's "
                f"{mem['main_hwm_kb'] / 1024:.1f} MB; all {mem['processes']} processes: "
                f"PSS sum {mem['pss_kb'] / 1024:.1f} MB (RSS sum {mem['rss_sum_kb'] / 1024:.1f} "
                f"MB counts the shared memory once per process: misleading). The worker's RSS "
                f"includes the shared-memory pages it touched (the location table, "
                f"transactions).")
    per = []
    for name in ("serlite", "kamailio"):
        r = fx.get(name, {}).get("register")
        if r and r["successful"]:
            per.append(f"{name} {(r['pss_kb'] - r['pss_before_kb']) * 1024 / r['successful']:.0f}")
    if per:
        add(f"- Memory per binding registered through the server (PSS growth over the first "
            f"REGISTER phase, {fx['serlite']['register']['successful']} new users, all processes): "
            f"**{' bytes, '.join(per)} bytes** (Kamailio's in its shared memory).")
    sc = fx.get("serlite", {}).get("calls")
    if sc and sc.get("transactions"):
        grew = sc["rss_kb"] - sc["rss_before_kb"]
        add(f"- serlite's transactions: RSS grew {grew / 1024:.1f} MB over the {sc['rate']} "
            f"calls/s phase, with {sc['transactions']} transactions in its table at the end: "
            f"**about {grew / sc['transactions']:.1f} kB per transaction** (a finished one is "
            f"kept 32 s: Timers J and L; Kamailio's tm keeps one 5 s). The RSS does not come "
            f"back down when they go (the allocator keeps the memory for the next ones).")
    mm = res.get("memory")
    tx = (mm or {}).get("transactions")
    if tx:
        per = tx["bytes_per_transaction"]
        add(f"- What a finished transaction costs while it waits out its timers, counted by "
            f"tracemalloc (`python3 bench/callsim.py --memory`: {tx['calls']} calls through the "
            f"seed config at {tx['rate']}/s of simulated time, the table in its steady state, "
            f"{tx['server']} server and {tx['client']} client transactions): **{per:.0f} bytes "
            f"per transaction** (target <= 1 kB: {'meets' if per <= 1024 else 'misses'}). "
            f"The RSS figure above is larger: it counts the allocator's free space between "
            f"them too.")
    if mm:
        add(f"- serlite's location table, {mm['bindings']} bindings built in a fresh process "
            f"(serlite.store.location with the registrar's Binding objects): "
            f"**{mm['bytes_per_binding_rss']:.0f} bytes per binding** by RSS delta, "
            f"{mm['bytes_per_binding_traced']:.0f} by tracemalloc, "
            f"{mm['bytes_per_binding_rss_loaded']:.0f} when loaded from the file.")
        add(f"- Its flat file: {mm['file_bytes'] / 1e6:.1f} MB; **save {mm['save_s']:.2f} s**, "
            f"**load {mm['load_s']:.2f} s** (db_mode 2 rewrites it on usrloc's timer when it "
            f"changed: the loop is blocked that long).")
    st = res.get("startup")
    if st:
        add("")
        add("## Start-up and idle")
        add("")
        add(f"- exec -> first answered OPTIONS on `{Path(st['python']).name}`: "
            f"**{st['empty']['median'] * 1000:.0f} ms** (median of "
            f"{len(st['empty']['seconds'])}) with an empty table; "
            f"{st['table']['median'] * 1000:.0f} ms with {st['table']['bindings']} bindings "
            f"to load.")
        add(f"- RSS at idle: **{st['empty']['idle_rss_kb'] / 1024:.1f} MB**, against "
            f"{st['bare_rss_kb'] / 1024:.1f} MB for a bare interpreter (`python3 -c 'import "
            f"time; time.sleep(3)'` on the same `{Path(st['python']).name}`); "
            f"{st['table']['rss_kb'] / 1024:.1f} MB with {st['table']['bindings']} bindings.")
    idle = res.get("idle", {}).get("serlite")
    if idle:
        add(f"- Idle with {idle['bindings']} bindings for {idle['secs']:.0f} s: "
            f"**{idle['cpu']:.3f} CPU-s**, **{idle['wakeups_per_s']:.2f} wake-ups/s** "
            f"({idle['voluntary']} voluntary context switches; target <= 1/s: "
            f"{'meets' if idle['wakeups_per_s'] <= 1.0 else 'misses'}), RSS "
            f"{idle['rss_kb'] / 1024:.1f} MB.")
    kidle = res.get("idle", {}).get("kamailio")
    if kidle:
        add(f"- Kamailio idle beside it, the same way ({kidle['bindings']} bindings, "
            f"{kidle['secs']:.0f} s, {kidle['processes']} processes): {kidle['cpu']:.3f} CPU-s, "
            f"{kidle['wakeups_per_s']:.1f} wake-ups/s (its timer processes tick).")
    ov = res.get("overload")
    if ov:
        add("")
        add("## Overload (serlite)")
        add("")
        add(f"Calls offered at **{ov['rate']}/s** for {ov['secs']} s: twice the larger of its "
            f"highest sustainable rate ({ov['max_rate']}/s) and what its one core can process "
            f"at all ({ov['capacity']}/s = 1000 / its CPU-seconds per 1000 calls). OPTIONS "
            f"probes every 100 ms.")
        add("")
        add(f"- Still answering: {ov['probes_answered']}/{ov['probes']} probes answered "
            f"during the load (p50 {_f(ov['probe_p50_ms'], 1)} ms, max "
            f"{_f(ov['probe_max_ms'], 1)} ms; idle {_f(ov['baseline_ms'], 2)} ms); "
            f"{'alive' if ov['alive'] else 'DEAD'} afterwards.")
        add(f"- Calls: {ov['created']} offered, {ov['successful']} completed "
            f"({ov['goodput']}/s), {ov['failed']} failed {ov['failures']}, "
            f"{ov['retrans_uac']} UAC retransmissions.")
        add(f"- Shedding: {ov['sent_503']} 503 sent; {ov['kernel_drops']} datagrams dropped by "
            f"the kernel (its socket's receive buffer full).")
        add(f"- RSS each second: {ov['rss_start_mb']} MB at the start, max "
            f"{ov['rss_max_mb']} MB, {ov['rss_end_mb']} MB at the end (growth during the load "
            f"{ov['rss_during_growth_mb']} MB); series: "
            f"{', '.join(str(mb) for _, mb in ov['rss_mb'])}.")
        rec = ov["recovery_s"]
        add(f"- Back to normal (every probe for 1 s under {_f(ov['recovery_threshold_ms'], 1)} "
            f"ms) **{_f(rec, 1) + ' s' if rec is not None else 'not within the limit'}** "
            f"after the offered load ended (target < 5 s: "
            f"{'meets' if rec is not None and rec < 5 else 'misses'}); "
            f"{ov['transactions_after']} transactions still in the table then.")
    rr = res.get("relay")
    if rr:
        add("")
        lines += relay_section(rr)
    prof = res.get("profile")
    if prof:
        add("")
        add("## Profile (serlite under cProfile, top 25 by own time)")
        add("")
        add(f"600 REGISTER/s then 150 calls/s, 5 s each ({prof['register'][0]} REGISTERs, "
            f"{prof['calls'][0]} calls completed).")
        add("")
        add("```")
        add(prof["top"].rstrip())
        add("```")
        add("")
        add("By cumulative time (top 40):")
        add("")
        add("```")
        add(prof["cumulative"].rstrip())
        add("```")
    add("")
    text = "\n".join(lines)
    if res.get("workdir"):
        text = text.replace(res["workdir"], "$WORK")
    Path(path).write_text(text)


def _yn(r):
    if not r:
        return "-"
    return "yes" if r["ok"] else f"no ({r['why']})"


# --- main ---------------------------------------------------------------------------------------

def final_memory(bench):
    out = {}
    s = bench.servers.get("serlite")
    if s and s.running():
        st = status(s.pid)
        stats = s.ctl("stats") or {}
        out["serlite"] = {"hwm_kb": st["VmHWM"], "rss_kb": st["VmRSS"],
                          "bindings": stats.get("registered_contacts")}
    k = bench.servers.get("kamailio")
    if k and k.running():
        rows = k.memory()
        worker = k.worker_pid()
        w = next((r for r in rows if r["pid"] == worker), rows[0])
        main = next((r for r in rows if r["pid"] == k.pid), rows[0])
        regs = sum(r["successful"] for r in _phases(bench.results, "kamailio", "register"))
        out["kamailio"] = {"bindings": regs,
                           "worker_hwm_kb": w["hwm_kb"], "worker_rss_kb": w["rss_kb"],
                           "main_hwm_kb": main["hwm_kb"], "processes": len(rows),
                           "pss_kb": sum(r["pss_kb"] for r in rows),
                           "rss_sum_kb": sum(r["rss_kb"] for r in rows), "per_process": rows}
    return out


def _phases(res, name, kind):
    """Every load phase of one server and kind (fixed rate, steps, same-rate)."""
    out = []
    f = res["fixed"].get(name, {}).get(kind)
    if f:
        out.append(f)
    out += res["search"].get(name, {}).get(kind, {}).get("steps", [])
    same = res.get("same_rate", {}).get(kind, {})
    if same.get(name):
        out.append(same[name])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter phases (about 3 minutes)")
    ap.add_argument("--profile", action="store_true",
                    help="also run serlite under cProfile and list the top 25 functions")
    ap.add_argument("--profile-only", action="store_true", help="only the cProfile run")
    ap.add_argument("--no-kamailio", action="store_true", help="serlite alone")
    ap.add_argument("--fixed-only", action="store_true",
                    help="only the fixed-rate phases (prints their figures; RESULTS.md is left "
                         "as it is)")
    ap.add_argument("--overload-only", type=int, metavar="RATE",
                    help="only the overload phase, serlite alone, calls offered at RATE/s "
                         "(prints its figures; RESULTS.md is left as it is)")
    ap.add_argument("--relay-only", action="store_true",
                    help="only the media relay (bench/relaybench.py against rtpengine); "
                         "rewrites only its section of RESULTS.md")
    ap.add_argument("--out", default=str(BENCH / "RESULTS.md"), help="default: bench/RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, sipp "
                                                        "files, results.json)")
    args = ap.parse_args(argv)
    if args.relay_only:
        started = datetime.datetime.now(datetime.timezone.utc)
        rr = run_relay(Params(args.quick))
        if rr is None:
            return 1
        splice_relay(args.out, rr, started)
        log(f"wrote the media relay section of {args.out}")
        return 0
    sipp.check_sipp()
    with_k = not args.no_kamailio and shutil.which("kamailio") is not None
    if not args.no_kamailio and not with_k:
        log("kamailio not found: serlite alone (bench/run installs it)")
    P = Params(args.quick)
    workdir = Path(tempfile.mkdtemp(prefix="serlite-bench-"))
    log(f"work directory {workdir}")
    compile_bytecode()
    bench = Bench(P, workdir, with_kamailio=with_k)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    ok = False
    try:
        if args.profile_only:
            bench.profile()
            ok = True
            return 0
        if args.fixed_only:
            bench.start_servers()
            bench.fixed()
            for name, kinds in bench.results["fixed"].items():
                log(f"  {name}: " + "; ".join(
                    f"{kind} {r.get('cpu_per_1000')} CPU-s/1000, ok {r.get('ok')}"
                    for kind, r in kinds.items()))
            ok = True
            return 0
        if args.overload_only:
            bench.with_kamailio = False
            bench.start_servers()
            bench.overload(args.overload_only // 2)
            ok = True
            return 0
        bench.results["machine"] = machine()
        bench.results["workdir"] = str(workdir)
        bench.start_servers()
        ends = bench.fixed()
        # while the transactions of the fixed phases time out (the tails), serlite-only
        # measurements that leave the two servers alone: idle (in the background), memory and
        # start-up, all in their own processes
        watch = bench.start_idle()
        table = bench.memory()
        bench.startup(table)
        bench.tails(ends)
        reg_ok = bench.results["fixed"]["serlite"]["register"]["ok"]
        call_ok = bench.results["fixed"]["serlite"]["calls"]["ok"]
        s_reg = bench.search("serlite", "register", REG_TARGET if reg_ok else REG_TARGET // 4)
        s_call = bench.search("serlite", "calls", CALL_TARGET if call_ok else CALL_TARGET // 5)
        per_call = bench.results["tail"].get("serlite", {}).get("cpu_per_1000_with_tail")
        bench.overload(s_call["max"] or 50, 1000.0 / per_call if per_call else None)
        if with_k:
            k_fixed = bench.results["fixed"]["kamailio"]
            bench.search("kamailio", "register",
                         REG_TARGET * 2 if k_fixed["register"]["ok"] else REG_TARGET // 2)
            bench.search("kamailio", "calls",
                         CALL_TARGET * 2 if k_fixed["calls"]["ok"] else CALL_TARGET // 2)
            for kind, s in (("register", s_reg), ("calls", s_call)):
                if s["max"]:
                    bench.at_rate(kind, s["max"])
        bench.finish_idle(watch)
        bench.results["final_memory"] = final_memory(bench)
        bench.relay()
        if args.profile:
            bench.profile()
        ok = True
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGTERM, old_term)
        bench.stop_all()
        elapsed = time.monotonic() - t0
        if ok and not (args.profile_only or args.overload_only or args.fixed_only):
            (workdir / "results.json").write_text(json.dumps(bench.results, indent=1,
                                                             default=str))
            write_results(bench.results, args.out, started, elapsed)
            log(f"\nwrote {args.out} ({elapsed / 60:.1f} min)"
                + (f"; raw figures in {workdir}/results.json" if args.keep else ""))
            _print_summary(bench.results)
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)     # 50-100 MB of tables and traces
        elif not ok:
            log(f"work directory kept: {workdir}")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _print_summary(res):
    h = res.get("headline", {})
    log("summary:")
    for name in ("serlite", "kamailio"):
        fx = res["fixed"].get(name)
        if not fx:
            continue
        t = res["tail"].get(name, {})
        log(f"  {name:8} CPU-s/1000 REGISTER @{REG_TARGET}/s {_f(fx['register']['cpu_per_1000'])}"
            f"   /1000 calls @{CALL_TARGET}/s {_f(t.get('cpu_per_1000_with_tail'))}"
            f"   max REGISTER/s {res['search'].get(name, {}).get('register', {}).get('max')}"
            f"   max calls/s {res['search'].get(name, {}).get('calls', {}).get('max')}")
    log(f"  ratio serlite/Kamailio: REGISTER {_f(h.get('register_ratio'), 2)}x, calls "
        f"{_f(h.get('calls_ratio'), 2)}x (target <= {RATIO_TARGET:g}x)")


if __name__ == "__main__":
    sys.exit(main())
