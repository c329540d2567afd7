"""Loopback plumbing for the end-to-end tests: ports, the serlite process, sipp, raw UDP.

Everything here talks to 127.0.0.1 or ::1 only, and every wait has a deadline: a process is
waited for by its output or its exit, a socket by its answer or a timeout.
"""

import csv
import itertools
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# python3 with only the modules of OpenWrt's python3-light (the project's own tool, tools/)
PYTHON3_LIGHT = REPO / "tools" / "python3-light"
PYLIGHT = REPO / "tools" / "pylight"
HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
CONFIGS = HERE / "configs"
SEED_CFG = REPO / "tests" / "data" / "configs" / "valid" / "seed.cfg"  # SER's seed config

V4, V6 = socket.AF_INET, socket.AF_INET6
LOOPBACK = {V4: "127.0.0.1", V6: "::1"}
SIPP_TRANSPORT = {"udp": "u1", "tcp": "t1"}

# The server's contract: once every socket is bound it logs a line containing this.
READY = re.compile(rb"ready \(pid (\d+)\)")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class HarnessError(AssertionError):
    """A peer or the server did not do what the harness waited for."""


def uri_host(host):
    """An address as a URI or Via writes it: IPv6 in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def hostport(host, port):
    return f"{uri_host(host)}:{port}"


def family_of(host):
    return V6 if ":" in host else V4


# --- ports -------------------------------------------------------------------------------

def _sock_type(proto):
    return {"udp": socket.SOCK_DGRAM, "tcp": socket.SOCK_STREAM}[proto]


def free_port(proto="udp", family=V4):
    """A port nobody holds right now on the loopback address (bind to 0; the race is accepted)."""
    with socket.socket(family, _sock_type(proto)) as s:
        s.bind((LOOPBACK[family], 0))
        return s.getsockname()[1]


def _free_for_both(port, family):
    socks = []
    try:
        for proto in ("udp", "tcp"):
            s = socket.socket(family, _sock_type(proto))
            socks.append(s)
            if proto == "tcp":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((LOOPBACK[family], port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_port_pair(family=V4, below=None):
    """A port free for UDP and TCP alike (the server listens on both with one number).

    below=10000 picks a four-digit port: sipsak 0.9.8 cuts a five-digit port in the
    Request-URI and To to four digits.
    """
    for _ in range(100):
        if below is None:
            port = free_port("tcp", family)
        else:
            port = 2000 + secrets.randbelow(below - 2000)
        if _free_for_both(port, family):
            return port
    raise HarnessError(f"no port free for both UDP and TCP on {LOOPBACK[family]}")


def ipv6_available():
    try:
        with socket.socket(V6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# For @pytest.mark.parametrize("family", FAMILIES): ipv6 is skipped where ::1 cannot be bound.
FAMILIES = [pytest.param(V4, id="ipv4"),
            pytest.param(V6, id="ipv6", marks=pytest.mark.skipif(
                not ipv6_available(), reason="::1 cannot be bound on this machine"))]


_PROC_NET = {("udp", V4): "udp", ("udp", V6): "udp6", ("tcp", V4): "tcp", ("tcp", V6): "tcp6"}
_TCP_LISTEN = "0A"


def is_bound(proto, family, port):
    """Whether some process holds `port` (UDP bound, TCP listening), from /proc/net."""
    try:
        with open(f"/proc/net/{_PROC_NET[proto, family]}") as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) != port:
                    continue
                if proto == "udp" or fields[3] == _TCP_LISTEN:
                    return True
    except FileNotFoundError:
        pass
    return False


def wait_bound(proto, family, port, timeout, proc=None, what="process"):
    """Wait until the kernel shows `port` bound; fail early if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while not is_bound(proto, family, port):
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"{what} exited ({proc.returncode}) before binding {proto} port {port}")
        if time.monotonic() > deadline:
            raise HarnessError(f"{what} did not bind {proto} port {port} within {timeout} s")
        time.sleep(0.005)  # polling the kernel's socket table: the event itself, not a guess


# --- the serlite process -----------------------------------------------------------------

class SerServer:
    """`python3 -m serlite -D -E -f CFG -l udp:127.0.0.1:PORT -l tcp:127.0.0.1:PORT [...::1...]`.

    The config text is written to workdir; stdout and stderr go to one log file, read by a
    thread that also watches for the ready line. Ports stay the same across restart().
    """

    def __init__(self, workdir, config, *, ipv6=False, python=None, name="serlite",
                 port=None, extra_args=()):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.cfg = self.workdir / f"{name}.cfg"
        self.cfg.write_text(config)
        self.logfile = self.workdir / f"{name}.log"
        self.port = port or free_port_pair(V4)
        self.port6 = free_port_pair(V6) if ipv6 else None
        self.python = [sys.executable] if python is None else [str(python)]
        self.extra_args = list(extra_args)
        # the control socket: a short path of its own (sun_path holds 108 bytes), so that
        # servers running side by side never meet at /var/run/ser/ser.sock
        self.ctl_sock = os.path.join(tempfile.mkdtemp(prefix="serctl"), "ser.sock")
        self.proc = None
        self.pid = None
        self.stopped = False  # True once the harness stopped or killed it on purpose
        self._reader = None

    # addresses
    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    @property
    def addr6(self):
        if self.port6 is None:
            raise HarnessError("server started without IPv6 listeners")
        return ("::1", self.port6)

    def address(self, family=V4):
        return self.addr6 if family == V6 else self.addr

    def command(self):
        cmd = [*self.python, "-m", "serlite", "-D", "-E", "-f", str(self.cfg)]
        for proto in ("udp", "tcp"):
            cmd += ["-l", f"{proto}:127.0.0.1:{self.port}"]
        if self.port6 is not None:
            for proto in ("udp", "tcp"):
                cmd += ["-l", f"{proto}:[::1]:{self.port6}"]
        return cmd + self.extra_args

    def start(self, timeout=START_TIMEOUT):
        if self.running():
            raise HarnessError("server already running")
        env = dict(os.environ, PYTHONUNBUFFERED="1", SER_UNIX_SOCK=self.ctl_sock)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        cmd = self.command()
        with open(self.logfile, "ab") as log:
            log.write(f"### harness: start {' '.join(cmd)}\n".encode())
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.stopped = False
        ready = threading.Event()
        found = []
        self._reader = threading.Thread(target=self._pump, args=(self.proc.stdout, ready, found),
                                        daemon=True)
        self._reader.start()
        output_ended = ready.wait(timeout) and not found
        if not found:
            try:
                # The output ended without the line: the process is on its way out.
                rc = self.proc.wait(STOP_TIMEOUT if output_ended else 0)
            except subprocess.TimeoutExpired:
                rc = None
            if rc is None:
                self._kill()
                why = f"no 'ready (pid N)' line within {timeout} s"
            else:
                self._reader.join(STOP_TIMEOUT)
                why = f"exited with {rc} before its ready line"
            raise HarnessError(f"{self.name}: {why}\n{' '.join(cmd)}\n{self.tail()}")
        if found[0] != self.proc.pid:
            pid = self.proc.pid
            self._kill()
            raise HarnessError(f"{self.name}: ready line names pid {found[0]}, the process is {pid}"
                               f" (with -D serlite must not fork)\n{self.tail()}")
        self.pid = self.proc.pid
        return self

    def _pump(self, pipe, ready, found):
        with open(self.logfile, "ab") as log:
            for line in iter(pipe.readline, b""):
                log.write(line)
                log.flush()
                if not ready.is_set():
                    m = READY.search(line)
                    if m:
                        found.append(int(m.group(1)))
                        ready.set()
        ready.set()  # end of output: the process is gone, start() looks at why
        pipe.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _kill(self):
        self.proc.kill()
        self.proc.wait()
        self._reader.join(STOP_TIMEOUT)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after `timeout` s. Returns the exit status (None if never started)."""
        if self.proc is None:
            return None
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with open(self.logfile, "ab") as log:
                    log.write(f"### harness: no exit {timeout} s after SIGTERM, SIGKILL\n".encode())
                self.proc.kill()
                self.proc.wait()
        self._reader.join(STOP_TIMEOUT)
        return self.proc.returncode

    def kill9(self):
        if self.proc is None:
            return None
        self.stopped = True
        if self.proc.poll() is None:
            self._kill()
        return self.proc.returncode

    def restart(self, timeout=START_TIMEOUT):
        if self.running():
            self.stop()
        return self.start(timeout)

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines=200):
        text = self.log().splitlines()
        cut = text[-lines:]
        head = [f"### ... {len(text) - lines} earlier lines in {self.logfile}"] if len(text) > lines else []
        return "\n".join(head + cut)


# --- sipp --------------------------------------------------------------------------------
#
# sipp runs in the foreground with stdin from /dev/null and -nostdin (no terminal needed),
# always with -m N and -timeout T -timeout_error, so it exits by itself: after N calls, or
# after T seconds as a failure. Exit status: 0 all calls succeeded, 1 at least one failed,
# 97 stopped by an internal command, 99 normal exit without calls processed, 255 fatal error,
# 254 could not bind a socket. Statistics come from -trace_stat (-stf FILE): the last row of
# the CSV holds the cumulative counters, e.g. SuccessfulCall(C) and FailedCall(C).

_run_numbers = itertools.count(1)


class SippResult:
    def __init__(self, name, cmd, returncode, workdir):
        self.name = name
        self.cmd = cmd
        self.returncode = returncode
        self.workdir = Path(workdir)
        self.stats = _read_stats(self.path("stats.csv"))
        self.errors = _read(self.path("errors.log"))
        self.screen = _read(self.path("screen.log"))
        self.output = _read(self.path("out"))

    def path(self, what):
        return self.workdir / f"{self.name}.{what}"

    def count(self, key):
        value = self.stats.get(key, "0")
        try:
            return int(value)
        except ValueError:
            return 0

    @property
    def successful(self):
        return self.count("SuccessfulCall(C)")

    @property
    def failed(self):
        return self.count("FailedCall(C)")

    def ok(self, calls):
        return self.returncode == 0 and self.successful == calls and self.failed == 0

    def describe(self):
        failures = {k: v for k, v in self.stats.items()
                    if k.startswith("Failed") and k.endswith("(C)") and v not in ("", "0")}
        parts = [f"sipp {self.name}: exit {self.returncode}, {self.successful} successful, "
                 f"{self.failed} failed {failures}",
                 "command: " + " ".join(map(str, self.cmd))]
        if self.errors:
            parts.append("errors (first 3000 chars):\n" + self.errors[:3000])
        if self.screen:
            parts.append("final screen:\n" + self.screen.split("Statistics Screen")[0][-3000:])
        elif self.output:
            parts.append("output (last 3000 chars):\n" + self.output[-3000:])
        return "\n".join(parts)

    def assert_ok(self, calls):
        assert self.ok(calls), f"expected {calls} successful calls and none failed\n{self.describe()}"
        return self

    def received(self, method):
        """How many `method` requests sipp received (needs trace_msg=True)."""
        log = _read(self.path("messages.log"))
        return len(re.findall(rf"message received \[\d+\] bytes :\s*\n\s*{re.escape(method)} ", log))


def _read(path):
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _read_stats(path):
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f, delimiter=";") if row]
    except FileNotFoundError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


class SippRun:
    """A started sipp; wait() returns its SippResult."""

    def __init__(self, args, *, workdir, timeout, name=None, trace_msg=False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name or f"sipp{next(_run_numbers)}"
        self.timeout = timeout
        p = lambda what: str(self.workdir / f"{self.name}.{what}")  # noqa: E731
        self.cmd = ["sipp", *map(str, args), "-nostdin",
                    "-timeout", f"{timeout}s", "-timeout_error",
                    "-trace_stat", "-stf", p("stats.csv"),
                    "-trace_err", "-error_file", p("errors.log"),
                    "-trace_screen", "-screen_file", p("screen.log")]
        if trace_msg:
            self.cmd += ["-trace_msg", "-message_file", p("messages.log")]
        self._out = open(p("out"), "wb")
        self.proc = subprocess.Popen(self.cmd, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)

    def wait(self, timeout=None):
        """Wait for sipp's own exit (bounded by its -timeout); kill it if it overstays."""
        limit = self.timeout + 10 if timeout is None else timeout
        try:
            self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            self._out.close()
        return SippResult(self.name, self.cmd, self.proc.returncode, self.workdir)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        return self.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # Leaving the block, by an error or without wait(): never leave sipp behind.
        if self.proc.poll() is None:
            self.kill()


def start_sipp(args, *, workdir, timeout=30, name=None, trace_msg=False):
    return SippRun(args, workdir=workdir, timeout=timeout, name=name, trace_msg=trace_msg)


def run_sipp(args, *, workdir, timeout=30, name=None, trace_msg=False):
    """Run sipp to its exit and return a SippResult (see the exit codes above)."""
    return start_sipp(args, workdir=workdir, timeout=timeout, name=name, trace_msg=trace_msg).wait()


def _endpoint_args(transport, family):
    local = LOOPBACK[family]
    return ["-t", SIPP_TRANSPORT[transport], "-i", local,
            "-p", free_port(transport, family)]


def _without_pause(scenario_file, copy):
    """A copy of scenario_file without its `<pause/>` (the one -d sets).

    sipp 3.6.1 with -d 0 sometimes never wakes from an empty <pause/> on a busy machine:
    the UAS sent its 100 and then nothing for 5 s (tests/e2e/test_stateful.py's lost-200
    test, 5 of 25 runs beside three busy loops; none in 40 runs without the pause).
    """
    text = Path(scenario_file).read_text()
    if "<pause/>" not in text:
        return scenario_file
    Path(copy).parent.mkdir(parents=True, exist_ok=True)
    Path(copy).write_text(text.replace("<pause/>", ""))
    return copy


def start_uas(*, workdir, transport="udp", family=V4, calls=1, scenario="uas_call.xml",
              delay_ms=0, timeout=60, trace_msg=False, name=None, extra=()):
    """A sipp UAS on a fresh loopback port, returned once its socket is bound.

    The SippRun gets .host and .port (where it listens) for the REGISTER's Contact.
    """
    local = LOOPBACK[family]
    port = free_port(transport, family)
    name = name or f"uas{next(_run_numbers)}"
    scenario_file = SCENARIOS / scenario
    if not delay_ms:
        scenario_file = _without_pause(scenario_file, Path(workdir) / f"{name}.{scenario}")
    args = ["-sf", scenario_file, "-t", SIPP_TRANSPORT[transport], "-i", local,
            "-p", port, "-m", calls, "-d", delay_ms, *extra]
    run = start_sipp(args, workdir=workdir, timeout=timeout, name=name, trace_msg=trace_msg)
    run.host, run.port, run.transport = local, port, transport
    try:
        wait_bound(transport, family, port, 10, run.proc, what=f"sipp UAS {run.name}")
    except HarnessError:
        raise HarnessError(run.kill().describe())
    return run


def run_uac(target, *, workdir, service="bob", transport="udp", calls=1, rate=50,
            scenario="uac_call.xml", timeout=None, name=None, extra=(), trace_msg=False):
    """Place `calls` calls to sip:service@target through target, `rate` per second.

    timeout (s) defaults to the time the calls take at `rate` plus 10 s.
    """
    family = family_of(target[0])
    if timeout is None:
        timeout = -(-calls // rate) + 10
    args = ["-sf", SCENARIOS / scenario, "-s", service, *_endpoint_args(transport, family),
            "-m", calls, "-r", rate, *extra, hostport(*target)]
    return run_sipp(args, workdir=workdir, timeout=timeout, name=name or f"uac{next(_run_numbers)}",
                    trace_msg=trace_msg)


def users_csv(path, rows):
    """Write a sipp injection file for register.xml / query.xml / unregister.xml.

    rows: (user, contact URI without parameters, transport, expires).
    """
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for user, contact, transport, expires in rows:
            fields = [str(user), str(contact), str(transport), str(expires)]
            if any(";" in x or "\n" in x for x in fields):
                raise ValueError(f"';' separates sipp CSV fields: {fields}")
            f.write(";".join(fields) + "\n")
    return path


def run_bindings(server_addr, rows, *, workdir, scenario="register.xml", transport="udp",
                 rate=200, limit=50, timeout=60, name=None):
    """One register.xml/query.xml/unregister.xml call per row, at `rate` per second."""
    name = name or f"{Path(scenario).stem}{next(_run_numbers)}"
    inf = users_csv(Path(workdir) / f"{name}.users.csv", rows)
    family = family_of(server_addr[0])
    args = ["-sf", SCENARIOS / scenario, "-inf", inf, *_endpoint_args(transport, family),
            "-m", len(rows), "-r", rate, "-l", limit, hostport(*server_addr)]
    return run_sipp(args, workdir=workdir, timeout=timeout, name=name)


def contact_uri(user, host, port):
    return f"sip:{user}@{uri_host(host)}:{port}"


def register(server_addr, user, contact_host, contact_port, transport="udp", expires=3600, *,
             workdir, timeout=5):
    """REGISTER sip:user@server -> Contact <sip:user@contact_host:contact_port;transport=...>.

    Run by sipp (register.xml), which fails unless the 200 lists that contact. Use it to bind
    a sipp UAS: start the UAS first, then register its host and port.
    """
    row = (user, contact_uri(user, contact_host, contact_port), transport, expires)
    return run_bindings(server_addr, [row], workdir=workdir, transport=transport, rate=10,
                        timeout=timeout, name=f"register-{user}-{next(_run_numbers)}")


# --- raw SIP over UDP --------------------------------------------------------------------

def status_of(msg):
    """The status code of a response, None for a request or garbage."""
    m = re.match(rb"SIP/2\.0 (\d{3}) ", msg)
    return int(m.group(1)) if m else None


_COMPACT = {"call-id": "i", "contact": "m", "via": "v", "from": "f", "to": "t",
            "content-length": "l", "content-type": "c"}


def header_values(msg, name):
    """Values of header `name` (or its compact form) in a message, unfolded; no comma split."""
    head = msg.split(b"\r\n\r\n", 1)[0]
    head = re.sub(rb"\r\n[ \t]+", b" ", head)
    names = {name.lower(), _COMPACT.get(name.lower(), name.lower())}
    values = []
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().decode("latin-1").lower() in names:
            values.append(value.strip().decode("utf-8", "replace"))
    return values


def contacts_of(msg):
    """The URIs a response's Contact headers list (name-addr or bare addr-spec)."""
    uris = []
    for value in header_values(msg, "contact"):
        for part in re.findall(r'(?:"[^"]*"|<[^>]*>|[^,])+', value):
            m = re.search(r"<([^>]*)>", part)
            uri = m.group(1) if m else part.split(";", 1)[0]
            if uri.strip() and uri.strip() != "*":
                uris.append(uri.strip())
    return uris


def is_final(msg):
    code = status_of(msg)
    return code is not None and code >= 200


class UdpPeer:
    """A UDP socket on loopback that sends and collects datagrams with a deadline."""

    def __init__(self, family=V4, host=None, port=0):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host or LOOPBACK[family], port))
        self.host, self.port = self.sock.getsockname()[:2]

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data, addr):
        self.sock.sendto(data, addr)

    def recv_until(self, until, timeout):
        """Datagrams received until one satisfies `until` or `timeout` s pass (then all so far)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            ready, _, _ = select.select([self.sock], [], [], left)
            if ready:
                data, _ = self.sock.recvfrom(65535)
                got.append(data)
                if until is not None and until(data):
                    return got

    def drain(self):
        """Whatever is queued now, without waiting."""
        got = []
        while select.select([self.sock], [], [], 0)[0]:
            got.append(self.sock.recvfrom(65535)[0])
        return got


def send_udp(data, addr, timeout=2.0, until=is_final):
    """Send one datagram from a fresh loopback socket; return the replies.

    Returns as soon as a reply satisfies `until` (by default a final response), else after
    `timeout` s with whatever came: an expected silence costs exactly `timeout`.
    """
    with UdpPeer(family_of(addr[0])) as peer:
        peer.send(data, addr)
        return peer.recv_until(until, timeout)


def new_branch():
    return "z9hG4bK-e2e-" + secrets.token_hex(8)


def make_request(method, ruri, *, via, to, from_=None, call_id=None, cseq=1, headers=(),
                 body=b"", max_forwards=70, transport="UDP", rport=True):
    """A well-formed request for the raw-socket tests. via = (host, port) of the sender.

    max_forwards=None leaves Max-Forwards out; rport=False leaves the Via's rport out.
    """
    call_id = call_id or secrets.token_hex(12) + "@e2e"
    lines = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/{transport} {hostport(*via)};branch={new_branch()}"
             + (";rport" if rport else ""),
             *([] if max_forwards is None else [f"Max-Forwards: {max_forwards}"]),
             f"From: <{from_ or to}>;tag={secrets.token_hex(4)}",
             f"To: <{to}>",
             f"Call-ID: {call_id}",
             f"CSeq: {cseq} {method}",
             *headers,
             f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def options(server_addr, peer, *, user="ping", call_id=None):
    host, port = server_addr
    uri = f"sip:{user}@{hostport(host, port)}"
    return make_request("OPTIONS", uri, via=(peer.host, peer.port), to=uri, call_id=call_id)


def query_bindings(server_addr, user, timeout=2.0):
    """The contacts a REGISTER without Contact gets for sip:user@server (RFC 3261 10.2.3)."""
    host, port = server_addr
    with UdpPeer(family_of(host)) as peer:
        aor = f"sip:{user}@{hostport(host, port)}"
        req = make_request("REGISTER", f"sip:{hostport(host, port)}",
                           via=(peer.host, peer.port), to=aor)
        peer.send(req, server_addr)
        replies = peer.recv_until(is_final, timeout)
    finals = [r for r in replies if is_final(r)]
    if not finals or status_of(finals[0]) != 200:
        raise HarnessError(f"REGISTER query for {user}: no 200 within {timeout} s: {replies!r}")
    return contacts_of(finals[0])


# --- more raw SIP: responses, request lines, TCP, the server's log ------------------------

def request_line(msg):
    """(method, Request-URI) of a request, None for anything else."""
    m = re.match(rb"([A-Za-z]+) (\S+) SIP/2\.0\r\n", msg)
    return (m.group(1).decode(), m.group(2).decode()) if m else None


def is_request(method):
    """A recv_until predicate: a `method` request."""
    return lambda msg: (request_line(msg) or (None,))[0] == method


def has_status(code):
    """A recv_until predicate: a response with this status code."""
    return lambda msg: status_of(msg) == code


def response_to(request, status, reason, *, to_tag=None, headers=(), body=b""):
    """A UAS's response to `request` (bytes): its Via lines, From, To (with to_tag), Call-ID,
    CSeq and Record-Route copied in order (RFC 3261 8.2.6.2)."""
    head = re.sub(rb"\r\n[ \t]+", b" ", request.split(b"\r\n\r\n", 1)[0]).decode("latin-1")
    copied = []
    for line in head.split("\r\n")[1:]:
        name = line.split(":", 1)[0].strip().lower()
        name = {v: k for k, v in _COMPACT.items()}.get(name, name)
        if name in ("via", "from", "call-id", "cseq", "record-route"):
            copied.append(line)
        elif name == "to":
            copied.append(line if to_tag is None or ";tag=" in line else f"{line};tag={to_tag}")
    lines = [f"SIP/2.0 {status} {reason}", *copied, *headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def sip_frame(buf):
    """Length of the first complete message in a TCP byte stream, None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    m = re.search(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*(\d+)", buf[:end], re.IGNORECASE)
    total = end + 4 + (int(m.group(1)) if m else 0)
    return total if len(buf) >= total else None


class TcpPeer:
    """A TCP connection to the server that sends bytes and reads whole SIP messages by
    Content-Length, every read bounded by a deadline."""

    def __init__(self, addr, timeout=5.0):
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host, self.port = self.sock.getsockname()[:2]
        self.buf = b""
        self.eof = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, left):
        """One read within `left` s: False on timeout, sets eof on close or reset."""
        ready, _, _ = select.select([self.sock], [], [], max(0, left))
        if not ready:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
        self.buf += data
        return True

    def _pop(self):
        size = sip_frame(self.buf)
        if size is None:
            return None
        msg, self.buf = self.buf[:size], self.buf[size:]
        return msg

    def recv_until(self, until, timeout):
        """Messages received until one satisfies `until`, the server closes the connection,
        or `timeout` s pass."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self._pop()
            while msg is not None:
                got.append(msg)
                if until is not None and until(msg):
                    return got
                msg = self._pop()
            if self.eof or not self._fill(deadline - time.monotonic()):
                return got

    def wait_closed(self, timeout):
        """Read (and keep) whatever comes until the server closes the connection; True if it
        did within `timeout` s."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if not self._fill(deadline - time.monotonic()):
                return False
        return True


def wait_log(server, pattern, timeout=5.0, since=0):
    """Wait until the server's log, from character `since` on, matches `pattern` (a regex);
    returns the match. The log file is written by the harness's reader thread as the server
    prints, so this polls the file itself, the event awaited, like wait_bound."""
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, server.log()[since:])
        if m:
            return m
        if time.monotonic() > deadline:
            raise HarnessError(f"{server.name}: no log line matching {pattern!r} within "
                               f"{timeout} s\n{server.tail(40)}")
        time.sleep(0.01)


def barrier(server_addr, timeout=2.0):
    """Send an OPTIONS and wait for its final answer. serlite handles datagrams in the order
    they come, so once it is answered, whatever serlite sends because of an earlier message
    has been sent: a test can then look for what arrived without waiting on silence."""
    with UdpPeer(family_of(server_addr[0])) as peer:
        peer.send(options(server_addr, peer), server_addr)
        replies = peer.recv_until(is_final, timeout)
    if not any(is_final(r) for r in replies):
        raise HarnessError(f"no answer to an OPTIONS probe within {timeout} s: {replies!r}")
    return [r for r in replies if is_final(r)][0]
