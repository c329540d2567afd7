"""The two servers under test, started side by side on loopback, and what /proc says of them.

``Serlite`` runs ``python3 -m serlite -D -E -f bench/serlite.cfg -l udp:127.0.0.1:PORT``: one
process.  ``Kamailio`` runs ``kamailio -DD -E -f bench/kamailio.cfg``: an attendant (the main
pid) and its children (one UDP worker with children=1, timer processes).  Every figure that
is a sum (CPU time) covers all of a server's processes; memory is given per process, and as
the PSS sum (proportional set size: shared memory counted once, split between its users).

Every wait has a deadline, every process started here is stopped here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON3_LIGHT = REPO / "tools" / "python3-light"
KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


class BenchError(RuntimeError):
    """A server or a peer did not do what the bench needs."""


# --- /proc ----------------------------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of one process (its own threads, not its children), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the ")" field 3 (state) is fields[0]: utime is field 14, stime 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def status(pid):
    """/proc/PID/status as a dict; the kB fields as ints (kB), the counters as ints."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            value = value.strip()
            if value.endswith(" kB"):
                out[key] = int(value[:-3])
            elif value.isdigit():
                out[key] = int(value)
            else:
                out[key] = value
    return out


def pss_kb(pid):
    """Proportional set size (kB): shared pages divided among the processes that map them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def descendants(pid):
    """pid and every process below it (children, grandchildren ...), from /proc."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)] = parent_of(name)
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [c for c, p in parents.items() if p in frontier]
        found += frontier
    return found


def udp_socket_stats(port, ip="127.0.0.1"):
    """(rx_queue bytes, drops) of the UDP socket bound to ip:port, from /proc/net/udp."""
    want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(ip), "little"), port)
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == want:
                return int(fields[4].split(":")[1], 16), int(fields[-1])
    return 0, 0


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine():
    """What RESULTS.md says of the machine."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    kam = ""
    if shutil.which("kamailio"):
        out = subprocess.run(["kamailio", "-v"], capture_output=True, text=True, timeout=10)
        m = re.search(r"version:\s*(.+)", out.stdout + out.stderr)
        kam = m.group(1).strip() if m else "?"
    sipp = ""
    if shutil.which("sipp"):
        out = subprocess.run(["sipp", "-v"], capture_output=True, text=True, timeout=10)
        m = re.search(r"SIPp v?(\S+)", out.stdout + out.stderr)
        sipp = m.group(1).rstrip(".") if m else "?"
    return {"nproc": os.cpu_count(), "cpu": model, "python": sys.version.split()[0],
            "python_path": sys.executable, "kamailio": kam, "sipp": sipp,
            "kernel": os.uname().release}


def kamailio_allocators():
    """The memory managers this kamailio was built with (its -x/-X names), from `kamailio -v`."""
    out = subprocess.run(["kamailio", "-v"], capture_output=True, text=True, timeout=10)
    text = out.stdout + out.stderr
    names = {"Q_MALLOC": "qm", "F_MALLOC": "fm", "TLSF_MALLOC": "tlsf"}
    return [short for flag, short in names.items() if re.search(rf"\b{flag}\b", text)]


# --- a snapshot of a server ----------------------------------------------------------------

class Snapshot:
    """CPU time (sum over the server's processes) and memory, at one moment."""

    def __init__(self, server):
        self.time = time.monotonic()
        self.per_pid = {}
        for pid in server.pids():
            try:
                self.per_pid[pid] = cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
        self.cpu = sum(self.per_pid.values())
        self.voluntary_all = 0      # every process's voluntary context switches: wake-ups
        for pid in self.per_pid:
            try:
                self.voluntary_all += status(pid).get("voluntary_ctxt_switches", 0)
            except (FileNotFoundError, ProcessLookupError):
                continue
        main = server.worker_pid()
        st = status(main)
        self.rss_kb = st.get("VmRSS", 0)
        self.hwm_kb = st.get("VmHWM", 0)
        self.voluntary = st.get("voluntary_ctxt_switches", 0)
        self.involuntary = st.get("nonvoluntary_ctxt_switches", 0)
        self.rx_queue, self.drops = udp_socket_stats(server.port)
        # all processes' proportional set size: shared memory (Kamailio's shm) counted once
        self.pss_kb = sum(pss_kb(pid) for pid in self.per_pid)

    def __sub__(self, other):
        return self.cpu - other.cpu


# --- the servers ----------------------------------------------------------------------------

class Server:
    name = "server"

    def __init__(self, workdir, port=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_udp_port()
        self.proc = None
        self.log = self.workdir / f"{self.name}.log"
        self._busiest = None

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    @property
    def pid(self):
        return self.proc.pid

    def pids(self):
        return [self.pid]

    def worker_pid(self):
        return self.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def snapshot(self):
        if not self.running():
            raise BenchError(f"{self.name} is not running (exit {self.proc.returncode}); "
                             f"log: {self.log}\n{self.tail()}")
        return Snapshot(self)

    def tail(self, n=30):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def _wait_ready(self, what):
        """Until the UDP port answers an OPTIONS (any final response), or the deadline."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited ({self.proc.returncode}) at start\n"
                                 f"{self.tail()}")
            if probe(self.addr, timeout=0.2) is not None:
                return
            time.sleep(0.02)
        self.stop()
        raise BenchError(f"{self.name}: no answer to OPTIONS within {START_TIMEOUT} s "
                         f"({what})\n{self.tail()}")

    def stop(self):
        """SIGTERM, SIGKILL after STOP_TIMEOUT; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Serlite(Server):
    """serlite on bench/serlite.cfg, its usrloc files in WORKDIR/usrloc."""

    name = "serlite"

    def __init__(self, workdir, port=None, python=None, config=None, db_dir=None,
                 profile=None, name=None):
        if name:
            self.name = name
        super().__init__(workdir, port)
        self.python = [str(python)] if python else [sys.executable]
        self.db_dir = Path(db_dir) if db_dir else self.workdir / f"{self.name}-usrloc"
        text = config if config is not None else (BENCH / "serlite.cfg").read_text()
        self.cfg = self.workdir / f"{self.name}.cfg"
        self.cfg.write_text(text.replace("@DB_DIR@", str(self.db_dir)))
        self.ctl_sock = str(self.workdir / f"{self.name}.ctl")
        self.profile = profile

    def command(self):
        cmd = list(self.python)
        if self.profile:
            cmd += ["-m", "cProfile", "-o", str(self.profile)]
        return cmd + ["-m", "serlite", "-D", "-E", "-f", str(self.cfg),
                      "-l", f"udp:127.0.0.1:{self.port}"]

    def env(self):
        env = dict(os.environ, SER_UNIX_SOCK=self.ctl_sock)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=REPO, env=self.env(),
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        self._wait_ready(" ".join(self.command()))
        return self

    def ctl(self, cmd, *args):
        """A control-socket command (stats, ...); None if it does not answer."""
        sys.path.insert(0, str(REPO))
        try:
            from serlite.control.client import Client
            with Client(self.ctl_sock, timeout=5.0) as client:
                return client.call(cmd, *args)
        except Exception:
            return None
        finally:
            sys.path.remove(str(REPO))


class Kamailio(Server):
    """kamailio on bench/kamailio.cfg: children=1, UDP only, usrloc in memory."""

    name = "kamailio"

    def __init__(self, workdir, port=None, allocator="tlsf", shm_mb=4096, pkg_mb=16,
                 name="kamailio"):
        self.name = name
        super().__init__(workdir, port)
        self.rundir = self.workdir / "kamailio-run"
        self.rundir.mkdir(exist_ok=True)
        self.cfg = self.workdir / "kamailio.cfg"
        self.cfg.write_text((BENCH / "kamailio.cfg").read_text().replace("@PORT@",
                                                                         str(self.port)))
        self.pidfile = self.rundir / "kamailio.pid"
        self.allocator = allocator
        self.shm_mb = shm_mb
        self.pkg_mb = pkg_mb
        self._pids = None

    def command(self):
        cmd = ["kamailio", "-DD", "-E", "-f", str(self.cfg), "-P", str(self.pidfile),
               "-Y", str(self.rundir), "-w", str(self.rundir),
               "-m", str(self.shm_mb), "-M", str(self.pkg_mb)]
        if self.allocator:
            cmd += ["-x", self.allocator, "-X", self.allocator]
        return cmd

    def start(self):
        check = subprocess.run(["kamailio", "-c", "-f", str(self.cfg)], capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            raise BenchError(f"kamailio -c -f {self.cfg}:\n{check.stdout}{check.stderr}")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=self.rundir,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(" ".join(self.command()))
        self._pids = descendants(self.proc.pid)
        return self

    def pids(self):
        return list(self._pids or [self.pid])

    def worker_pid(self):
        """The busiest process: the UDP receiver (children=1), known after some load."""
        return self._busiest or self.pid

    def find_worker(self):
        """The child that used the most CPU so far: the SIP worker."""
        best, most = self.pid, -1.0
        for pid in self.pids():
            if pid == self.pid:
                continue
            try:
                c = cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
            if c > most:
                best, most = pid, c
        self._busiest = best
        return best

    def memory(self):
        """Per-process VmRSS / VmHWM (kB) and the PSS sum of all processes."""
        rows = []
        for pid in self.pids():
            try:
                st = status(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
            rows.append({"pid": pid, "rss_kb": st.get("VmRSS", 0),
                         "hwm_kb": st.get("VmHWM", 0), "pss_kb": pss_kb(pid)})
        return rows

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # children of a killed attendant: the process group, gone or killed
        for pid in self.pids():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.proc.returncode


# --- raw SIP over UDP: probes and the UAS's REGISTER ----------------------------------------

_seq = iter(range(1, 1 << 62))


def _request(method, ruri, to, local, extra=()):
    n = next(_seq)
    lines = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK-bench-{os.getpid()}-{n}"
             ";rport",
             "Max-Forwards: 70",
             f"From: <{to}>;tag=bench{n}",
             f"To: <{to}>",
             f"Call-ID: bench-{os.getpid()}-{n}@127.0.0.1",
             f"CSeq: 1 {method}", *extra, "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def probe(addr, timeout=1.0, sock=None):
    """Send one OPTIONS sip:ping@server; the seconds until its final response, None if none
    came within ``timeout``.  (The seed config answers 404: ping is not registered.)"""
    own = sock is None
    if own:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
    try:
        local = sock.getsockname()
        uri = f"sip:ping@{addr[0]}:{addr[1]}"
        data = _request("OPTIONS", uri, uri, local)
        call_id = re.search(rb"Call-ID: (\S+)", data).group(1)
        t0 = time.monotonic()
        try:
            sock.sendto(data, addr)
        except OSError:
            return None
        deadline = t0 + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sock.settimeout(left)
            try:
                reply = sock.recv(65535)
            except socket.timeout:
                return None
            except OSError:     # ICMP port unreachable: nobody listens yet
                return None
            if re.match(rb"SIP/2\.0 [2-6]\d\d ", reply) and call_id in reply:
                return time.monotonic() - t0
    finally:
        if own:
            sock.close()


def register_contact(addr, user, contact_port, expires=3600, timeout=5.0):
    """REGISTER sip:user@server -> Contact <sip:user@127.0.0.1:contact_port>; True on 200."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        host = f"{addr[0]}:{addr[1]}"
        aor = f"sip:{user}@{host}"
        data = _request("REGISTER", f"sip:{host}", aor, sock.getsockname(),
                        [f"Contact: <sip:{user}@127.0.0.1:{contact_port};transport=udp>",
                         f"Expires: {expires}"])
        deadline = time.monotonic() + timeout
        sock.sendto(data, addr)
        while time.monotonic() < deadline:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                reply = sock.recv(65535)
            except socket.timeout:
                break
            if reply.startswith(b"SIP/2.0 200 "):
                return True
            if re.match(rb"SIP/2\.0 [3-6]\d\d ", reply):
                return False
    return False


class Prober(threading.Thread):
    """An OPTIONS every `interval` s, whether or not the last one was answered, until stopped
    (at most `limit` s).  ``samples``: (time sent, latency in s, or None if no final response
    came within `timeout`)."""

    def __init__(self, addr, interval=0.1, timeout=1.0, limit=120.0):
        super().__init__(daemon=True)
        self.addr = addr
        self.interval = interval
        self.timeout = timeout
        self.limit = limit
        self.samples = []
        self._halt = threading.Event()

    def run(self):
        import select
        pending = {}            # Call-ID -> its sample [time sent, latency]
        end = time.monotonic() + self.limit
        uri = f"sip:ping@{self.addr[0]}:{self.addr[1]}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            local = sock.getsockname()
            next_send = time.monotonic()
            last = end
            while True:
                now = time.monotonic()
                if now >= next_send and now < end and not self._halt.is_set():
                    data = _request("OPTIONS", uri, uri, local)
                    call_id = re.search(rb"Call-ID: (\S+)", data).group(1)
                    sample = [now, None]
                    pending[call_id] = sample
                    self.samples.append(sample)
                    last = now
                    try:
                        sock.sendto(data, self.addr)
                    except OSError:
                        pass
                    next_send = now + self.interval
                elif (now >= end or self._halt.is_set()) and (
                        not pending or now > last + self.timeout):
                    break       # the last probe has had its full timeout
                ready, _, _ = select.select([sock], [], [],
                                            max(0.0, min(next_send, last + self.timeout)
                                                - time.monotonic()))
                if not ready:
                    continue
                try:
                    reply = sock.recv(65535)
                except OSError:
                    continue
                got = time.monotonic()
                m = re.search(rb"\r\nCall-ID: (\S+)", reply)
                if m and re.match(rb"SIP/2\.0 [2-6]\d\d ", reply):
                    sample = pending.pop(m.group(1), None)
                    if sample is not None and got - sample[0] <= self.timeout:
                        sample[1] = got - sample[0]

    def stop(self):
        self._halt.set()
        self.join(self.timeout + 5)
