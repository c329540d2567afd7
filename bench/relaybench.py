"""The media relay under load, against the real processes: ``calls`` concurrent calls, each
phone sending ``rate`` RTP packets per second (172 bytes: 12 of RTP header, 160 of PCMU, 20 ms),
through serlite's built-in relay and, in the same run, through rtpengine (Debian's
rtpengine-daemon in userspace: ``--table=-1``, one worker thread, ng control protocol).

    python3 -m bench.relaybench [--calls 50] [--rate 50] [--secs 20] [--json] [--help]

How it goes (every wait bounded):

1. serlite (one process, bench/servers.py's Serlite on the config below: rtpproxy_manage() on
   the INVITE, its replies, BYE) and rtpengine are started on loopback.  One call is set up
   and torn down through each (its code paths and first allocations), then their RSS is read:
   "idle".
2. ``calls`` calls are set up through each: through serlite by real SIP (INVITE with SDP from
   the caller's UA on 127.0.0.3, forwarded to the callee's UA on 127.0.0.4, 200 with SDP, ACK
   by the Record-Route), the relay ports read from the SDPs as the phones get them; through
   rtpengine by its ng protocol (offer/answer, bencode over UDP).  RSS again: per session.
3. One generator process (this one, one poll loop) plays every phone: ``2 * calls`` streams
   spread evenly over the 20 ms period, each packet carrying its stream, its phase and the
   time it was sent (CLOCK_REALTIME, ns).  Receivers take the kernel's arrival time of each
   datagram (SO_TIMESTAMPNS), so the generator's own scheduling does not count in the delay.
   Phases, one after the other: the phones straight to each other (the loopback baseline),
   through serlite, through rtpengine; each after a short warm-up that is not counted.
4. Per phase: packets sent, received, lost; one-way delay p50/p99/max (and the same minus
   the baseline's: what the relay adds); the relay's CPU (utime+stime of all its threads,
   /proc/PID/stat) over the phase -> CPU-seconds per 1000 packets relayed; the generator's
   own CPU (it must not be the bottleneck) and how late its sends were.
5. The calls are torn down (BYE through serlite, ng delete): both relays must end with no
   session left.  Peak RSS (VmHWM).

The router estimate: the per-packet CPU times a stated factor for one 600 MHz MIPS core
(``--mips-factor``, default MIPS_FACTOR below: how it was chosen is said there).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .servers import CLK_TCK, BenchError, Serlite, free_udp_port, status

CALLER_IP, CALLEE_IP = "127.0.0.3", "127.0.0.4"     # the phones (and their SIP UAs)
PACKET = 172                # RTP header 12 + 160 bytes of PCMU: 20 ms at 8 kHz
WARMUP = 0.5                # s of each phase not counted (latching, first packets)
DRAIN = 1.0                 # s at most for the last packets to arrive after a phase
SETUP_TIMEOUT = 5.0         # s per SIP or ng exchange
SERLITE_PORTS = (52000, 52999)
RTPENGINE_PORTS = (53000, 53999)
RATIO_TARGET = 3.0          # serlite's CPU per packet <= 3x rtpengine's
DELAY_TARGET_MS = 1.0       # the extra delay's p99 < 1 ms (issue 14)
# One 600 MHz MIPS core (MIPS 24Kc/74Kc class: ath79, ramips) against one core of the machine
# the bench runs on (a 2-3 GHz x86 server core): about 4-5x the clock, and 4-6x the work per
# clock (in-order, one or two instructions per cycle, 32-64 kB L1, no or a small L2, against
# a wide out-of-order core with megabytes of cache: CoreMark/MHz about 2-3 against 6-10).
# CPython's loop is branchy and cache-hungry, so the product, about 25x, is the estimate;
# it could well be 15x-40x.  Not measured on a router: say so where it is printed.
MIPS_FACTOR = 25.0
MIPS_MHZ = 600

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)     # Linux's value (asm-generic)
_ANC = socket.CMSG_SPACE(16)                               # struct timespec
# the packet: RTP header (V=2, PT 0, seq, timestamp, SSRC), then send time (ns), stream, phase
_HEAD = struct.Struct("!BBHIIqIB")

SERLITE_CFG = """\
# bench/relaybench.py: a proxy that relays every call's media (rtpproxy_manage, built-in relay)
debug=2
log_stderr=no
loadmodule "sl"
loadmodule "tm"
loadmodule "rr"
loadmodule "rtpproxy"
modparam("rtpproxy", "rtp_port_min", @LOW@)
modparam("rtpproxy", "rtp_port_max", @HIGH@)
modparam("rtpproxy", "rtp_max_sessions", @MAX@)
route {
    if (loose_route()) {
        rtpproxy_manage();
        t_relay();
        exit;
    }
    if (method == "INVITE") {
        record_route();
        t_on_reply("1");
    }
    if (method == "INVITE" || method == "CANCEL") {
        rtpproxy_manage();
    }
    t_relay();
}
onreply_route[1] {
    rtpproxy_manage();
}
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def quantiles(values):
    """(p50, p99, max) of a list of numbers, None for each if empty."""
    if not values:
        return None, None, None
    v = sorted(values)
    n = len(v)
    return v[n // 2], v[min(n - 1, int(n * 0.99))], v[-1]


def cpu_times(pid):
    """(utime, stime) of a process, every thread's, in seconds (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def rss_kb(pid):
    st = status(pid)
    return st.get("VmRSS", 0), st.get("VmHWM", 0)


# --- SIP through serlite ------------------------------------------------------------------

def _sdp(ip, port, session):
    return (f"v=0\r\no=- {session} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


def _media(sdp):
    """(c= address, m=audio port) of an SDP (str)."""
    c = re.search(r"^c=IN IP4 (\S+)", sdp, re.M)
    m = re.search(r"^m=audio (\d+) ", sdp, re.M)
    if not (c and m):
        raise BenchError(f"no c=/m=audio in the SDP:\n{sdp}")
    return c.group(1), int(m.group(1))


def _split(msg):
    head, _, body = msg.decode("utf-8", "replace").partition("\r\n\r\n")
    return head.split("\r\n"), body


def _headers(lines, name):
    name = name.lower()
    return [line.split(":", 1)[1].strip() for line in lines[1:]
            if line.split(":", 1)[0].strip().lower() == name]


def _message(first, headers, body=""):
    lines = [first, *headers]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class SipUA:
    """One UDP socket standing for every phone's SIP on one address (callers, or callees)."""

    def __init__(self, ip):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.ip, self.port = self.sock.getsockname()
        self._n = 0

    def branch(self):
        self._n += 1
        return f"z9hG4bK-rb-{os.getpid()}-{self.ip}-{self._n}"

    def recv(self, want, timeout=SETUP_TIMEOUT):
        """The next message whose first line matches ``want`` (a regex); retransmissions and
        provisional responses in between are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"SIP: nothing matching {want!r} on {self.ip}:{self.port} "
                                 f"within {timeout} s")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                continue
            lines, body = _split(data)
            if re.match(want, lines[0]):
                return lines, body

    def close(self):
        self.sock.close()


class SerliteCalls:
    """Calls set up and torn down through serlite by SIP; ``legs[i]`` = (the relay's address
    for the caller's media, the relay's address for the callee's media)."""

    def __init__(self, server, tag):
        self.server = server
        self.tag = tag
        self.caller = SipUA(CALLER_IP)
        self.callee = SipUA(CALLEE_IP)
        self.dialogs = []

    def setup(self, index, caller_media, callee_media):
        a, b, srv = self.caller, self.callee, self.server.addr
        call_id = f"rb-{self.tag}-{index}-{os.getpid()}@{CALLER_IP}"
        bob = f"sip:bob{index}@{CALLEE_IP}:{b.port}"
        from_ = f"<sip:alice{index}@{CALLER_IP}>;tag=a{index}"
        offer = _sdp(CALLER_IP, caller_media[1], index + 1)
        a.sock.sendto(_message(f"INVITE {bob} SIP/2.0", [
            f"Via: SIP/2.0/UDP {a.ip}:{a.port};branch={a.branch()};rport",
            "Max-Forwards: 70", f"From: {from_}", f"To: <{bob}>", f"Call-ID: {call_id}",
            "CSeq: 1 INVITE", f"Contact: <sip:alice{index}@{a.ip}:{a.port}>"], offer), srv)
        lines, body = b.recv(r"INVITE ")
        toward_callee = _media(body)
        to = _headers(lines, "To")[0] + f";tag=b{index}"
        answer = _sdp(CALLEE_IP, callee_media[1], index + 1001)
        b.sock.sendto(_message("SIP/2.0 200 OK", [
            *(f"Via: {v}" for v in _headers(lines, "Via")),
            *(f"Record-Route: {r}" for r in _headers(lines, "Record-Route")),
            f"From: {_headers(lines, 'From')[0]}", f"To: {to}", f"Call-ID: {call_id}",
            "CSeq: 1 INVITE", f"Contact: <{bob}>"], answer), srv)
        lines, body = a.recv(r"SIP/2\.0 200 ")
        toward_caller = _media(body)
        routes = _headers(lines, "Record-Route")
        to = _headers(lines, "To")[0]
        dialog = {"call_id": call_id, "from": from_, "to": to, "bob": bob, "routes": routes}
        self._in_dialog("ACK", 1, dialog)
        b.recv(r"ACK ")
        self.dialogs.append(dialog)
        return toward_caller, toward_callee

    def _in_dialog(self, method, cseq, d):
        a = self.caller
        a.sock.sendto(_message(f"{method} {d['bob']} SIP/2.0", [
            f"Via: SIP/2.0/UDP {a.ip}:{a.port};branch={a.branch()};rport",
            "Max-Forwards: 70", *(f"Route: {r}" for r in d["routes"]),
            f"From: {d['from']}", f"To: {d['to']}", f"Call-ID: {d['call_id']}",
            f"CSeq: {cseq} {method}"]), self.server.addr)

    def teardown(self):
        for d in self.dialogs:
            self._in_dialog("BYE", 2, d)
            lines, _ = self.callee.recv(r"BYE ")
            self.callee.sock.sendto(_message("SIP/2.0 200 OK", [
                *(f"Via: {v}" for v in _headers(lines, "Via")),
                f"From: {_headers(lines, 'From')[0]}", f"To: {_headers(lines, 'To')[0]}",
                f"Call-ID: {d['call_id']}", "CSeq: 2 BYE"]), self.server.addr)
            self.caller.recv(r"SIP/2\.0 200 ")
        self.dialogs = []

    def close(self):
        self.caller.close()
        self.callee.close()


def serlite_sessions(server):
    stats = server.ctl("stats") or {}
    return stats.get("counters", stats).get("rtp_sessions_active")


# --- rtpengine and its ng protocol ---------------------------------------------------------

def bencode(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in x) + b"e"
    if isinstance(x, dict):
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(x.items())) + b"e"
    raise TypeError(type(x))


def bdecode(data, i=0):
    """(value, next index); strings come back as str (latin-1)."""
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c in (b"l", b"d"):
        i += 1
        items = []
        while data[i:i + 1] != b"e":
            v, i = bdecode(data, i)
            items.append(v)
        if c == b"l":
            return items, i + 1
        return dict(zip(items[::2], items[1::2])), i + 1
    colon = data.index(b":", i)
    n = int(data[i:colon])
    return data[colon + 1:colon + 1 + n].decode("latin-1"), colon + 1 + n


class Rtpengine:
    """rtpengine in userspace on 127.0.0.1: ng control on a UDP port, media ports of its own
    range, a pidfile and a log in ``workdir``.  One worker thread (as serlite has one loop);
    its CPU is every thread's (utime+stime of /proc/PID/stat counts the whole process)."""

    name = "rtpengine"

    def __init__(self, workdir, ports=RTPENGINE_PORTS):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()
        self.ports = ports
        self.pidfile = self.workdir / "rtpengine.pid"
        self.log = self.workdir / "rtpengine.log"
        self.proc = None
        self.sock = None
        self._cookie = 0

    def command(self):
        return [shutil.which("rtpengine") or "rtpengine", "--config-file=none", "--table=-1",
                "--foreground", "--log-stderr", "--log-level=4", "--interface=127.0.0.1",
                f"--listen-ng=127.0.0.1:{self.port}", f"--pidfile={self.pidfile}",
                f"--port-min={self.ports[0]}", f"--port-max={self.ports[1]}",
                "--num-threads=1", "--timeout=600", "--delete-delay=0"]

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"rtpengine exited ({self.proc.returncode}) at start:\n"
                                 f"{self.tail()}")
            try:
                if self.ng({"command": "ping"}, timeout=0.2).get("result") == "pong":
                    return self
            except BenchError:
                pass
        self.stop()
        raise BenchError(f"rtpengine: no answer to ng ping within 15 s\n{self.tail()}")

    def tail(self, n=20):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def ng(self, command, timeout=SETUP_TIMEOUT):
        self._cookie += 1
        cookie = f"rb{os.getpid()}_{self._cookie}".encode()
        self.sock.sendto(cookie + b" " + bencode(command), ("127.0.0.1", self.port))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"rtpengine: no answer to {command.get('command')}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                continue
            except ConnectionRefusedError:
                time.sleep(min(left, 0.05))     # not listening yet
                continue
            got, _, rest = data.partition(b" ")
            if got == cookie:
                return bdecode(rest)[0]

    def offer_answer(self, index, caller_media, callee_media, tag):
        call_id = f"rb-{tag}-{index}-{os.getpid()}"
        common = {"call-id": call_id, "from-tag": f"a{index}", "replace": ["origin"],
                  "ICE": "remove"}
        r = self.ng({**common, "command": "offer",
                     "sdp": _sdp(CALLER_IP, caller_media[1], index + 1)})
        if r.get("result") != "ok":
            raise BenchError(f"rtpengine offer: {r}")
        toward_callee = _media(r["sdp"])
        r = self.ng({**common, "command": "answer", "to-tag": f"b{index}",
                     "sdp": _sdp(CALLEE_IP, callee_media[1], index + 1001)})
        if r.get("result") != "ok":
            raise BenchError(f"rtpengine answer: {r}")
        return _media(r["sdp"]), toward_callee

    def delete(self, index, tag):
        r = self.ng({"command": "delete", "call-id": f"rb-{tag}-{index}-{os.getpid()}",
                     "from-tag": f"a{index}"})
        return r.get("result") == "ok"

    def sessions(self):
        r = self.ng({"command": "list", "limit": 100000})
        return len(r.get("calls", [])) if r.get("result") == "ok" else None

    def stop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# --- the generator ---------------------------------------------------------------------------

class Phones:
    """Every phone's media socket: ``caller[i]`` on CALLER_IP, ``callee[i]`` on CALLEE_IP,
    stamping arrivals (SO_TIMESTAMPNS).  Stream ``2i`` is call i's caller -> callee, ``2i+1``
    the other way."""

    def __init__(self, calls):
        self.caller, self.callee = [], []
        for ip, out in ((CALLER_IP, self.caller), (CALLEE_IP, self.callee)):
            for _ in range(calls):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
                s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                s.bind((ip, 0))
                s.setblocking(False)
                out.append(s)

    def media(self, i):
        """((caller ip, port), (callee ip, port)) of call i."""
        return self.caller[i].getsockname(), self.callee[i].getsockname()

    def senders(self):
        """The socket each stream is sent from, by stream number."""
        out = []
        for a, b in zip(self.caller, self.callee):
            out += [a, b]
        return out

    def close(self):
        for s in self.caller + self.callee:
            s.close()


def stream(phones, dests, rate, secs, phase, pids=(), warmup=WARMUP):
    """Send every stream at ``rate`` packets/s for ``warmup`` + ``secs`` seconds to
    ``dests[stream]`` and receive them; the figures of the ``secs`` part (phase ``phase``)."""
    senders = phones.senders()
    n = len(senders)
    period = 1.0 / rate
    offsets = [period * k / n for k in range(n)]
    buf = bytearray(PACKET)
    pack = _HEAD.pack_into
    poller = select.poll()
    receivers = {}
    for s in phones.caller + phones.callee:
        poller.register(s.fileno(), select.POLLIN)
        receivers[s.fileno()] = s
    seqs = [0] * n
    sent = received = stale = 0
    delays = []
    late = []
    warm_phase = phase + 100
    cpu0 = None
    t_start = time.monotonic()
    t_measure = t_start + warmup
    t_end = t_measure + secs
    j = 0                   # the j-th send: stream j % n, cycle j // n
    recvmsg_size = 2048
    timestamp_type = SO_TIMESTAMPNS
    time_ns, monotonic = time.time_ns, time.monotonic
    measuring = False

    def take(sock):
        """Every datagram waiting on ``sock``: this phase's counted, with its delay."""
        nonlocal received, stale
        while True:
            try:
                data, anc, _, _ = sock.recvmsg(recvmsg_size, _ANC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            if len(data) < _HEAD.size or data[_HEAD.size - 1] != phase:
                stale += 1
                continue
            sent_ns = struct.unpack_from("!q", data, 12)[0]
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == timestamp_type:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    delays.append(sec * 1_000_000_000 + nsec - sent_ns)
                    break
            received += 1

    while True:
        now = monotonic()
        if not measuring and now >= t_measure:
            measuring = True
            cpu0 = {pid: cpu_times(pid) for pid in pids}
            gen0 = time.process_time()
            wall0 = now
        due = t_start + (j // n) * period + offsets[j % n]
        while due <= now and due < t_end:
            k = j % n
            seq = seqs[k] = (seqs[k] + 1) & 0xffff
            counted = due >= t_measure
            pack(buf, 0, 0x80, 0, seq, seq * 160, 0x1000 + k, time_ns(), k,
                 phase if counted else warm_phase)
            try:
                senders[k].sendto(buf, dests[k])
            except OSError:
                pass
            if counted:
                sent += 1
                late.append(now - due)
            j += 1
            due = t_start + (j // n) * period + offsets[j % n]
        if due >= t_end:
            break
        for fd, _ in poller.poll(max(0.0, (due - monotonic()) * 1000.0)):
            take(receivers[fd])
    # the last packets: until every one came, or DRAIN s
    deadline = monotonic() + DRAIN
    while received < sent and monotonic() < deadline:
        for fd, _ in poller.poll(50):
            take(receivers[fd])
    # the relay's CPU up to the end of the drain (its last packets are relayed within its
    # first milliseconds: read when they are in, or at the drain's end)
    wall = monotonic() - wall0
    cpu = {pid: [t1 - t0 for t0, t1 in zip(cpu0[pid], cpu_times(pid))] for pid in pids}
    gen_cpu = time.process_time() - gen0
    for s in phones.caller + phones.callee:     # anything left over is not the next phase's
        try:
            while s.recv(2048):
                pass
        except (BlockingIOError, InterruptedError):
            pass
    p50, p99, mx = quantiles(delays)
    lp50, lp99, lmax = quantiles(late)
    return {"sent": sent, "received": received, "lost": sent - received, "stale": stale,
            "secs": secs, "wall": round(wall, 3),
            "delay_us": [round(x / 1000, 1) if x is not None else None for x in (p50, p99, mx)],
            "user_sys": [round(sum(c[i] for c in cpu.values()), 3) for i in (0, 1)],
            "relay_cpu": round(sum(sum(c) for c in cpu.values()), 3),
            "generator_cpu": round(gen_cpu, 3),
            "generator_util": round(gen_cpu / max(wall, 1e-6), 3),
            "send_late_ms": [round(x * 1000, 2) if x is not None else None
                             for x in (lp50, lp99, lmax)]}


# --- the run -----------------------------------------------------------------------------------

def renice(pid, nice):
    """Every thread of ``pid`` (0: this process's) to ``nice``; what could not be, by name."""
    failed = []
    tasks = os.listdir(f"/proc/{pid or os.getpid()}/task")
    for tid in tasks:
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)
        except OSError as exc:
            failed.append(f"{tid}: {exc.strerror}")
    return failed


def run(calls, rate, secs, baseline_secs, workdir, mips_factor=MIPS_FACTOR, python=None,
        profile=None, nice=0):
    res = {"calls": calls, "rate": rate, "secs": secs, "baseline_secs": baseline_secs,
           "packet_bytes": PACKET, "mips_factor": mips_factor, "mips_mhz": MIPS_MHZ,
           "load_before": os.getloadavg(), "workdir": str(workdir), "nice": nice}
    cfg = (SERLITE_CFG.replace("@LOW@", str(SERLITE_PORTS[0]))
           .replace("@HIGH@", str(SERLITE_PORTS[1])).replace("@MAX@", str(max(calls + 1, 8))))
    ser = Serlite(workdir / "serlite", config=cfg, python=python, profile=profile)
    eng = Rtpengine(workdir / "rtpengine")
    phones = sip = None
    try:
        ser.start()
        eng.start()
        res["commands"] = {"serlite": " ".join(ser.command()),
                           "rtpengine": " ".join(eng.command())}
        if nice:
            failed = renice(ser.pid, nice) + renice(eng.pid, nice) + renice(0, nice)
            if failed:
                raise BenchError(f"--nice {nice}: {'; '.join(failed)} (needs root)")
        phones = Phones(calls)
        # one call through each and away: the code paths' first allocations are not sessions
        sip = SerliteCalls(ser, "warm")
        sip.setup(0, *phones.media(0))
        sip.teardown()
        sip.close()
        eng.offer_answer(0, *phones.media(0), "warm")
        eng.delete(0, "warm")
        idle = {"serlite": rss_kb(ser.pid)[0], "rtpengine": rss_kb(eng.pid)[0]}

        sip = SerliteCalls(ser, "run")
        dests = {"baseline": [], "serlite": [], "rtpengine": []}
        t0 = time.monotonic()
        for i in range(calls):
            a, b = phones.media(i)
            to_a, to_b = sip.setup(i, a, b)     # to_a: where the caller sends, facing it
            dests["serlite"] += [to_a, to_b]
            dests["baseline"] += [b, a]
        setup_s = {"serlite": time.monotonic() - t0}
        t0 = time.monotonic()
        for i in range(calls):
            to_a, to_b = eng.offer_answer(i, *phones.media(i), "run")
            dests["rtpengine"] += [to_a, to_b]
        setup_s["rtpengine"] = time.monotonic() - t0
        loaded = {"serlite": rss_kb(ser.pid)[0], "rtpengine": rss_kb(eng.pid)[0]}
        res["sessions_open"] = {"serlite": serlite_sessions(ser), "rtpengine": eng.sessions()}
        res["setup_ms_per_call"] = {k: round(v / calls * 1000, 2) for k, v in setup_s.items()}

        phases = {}
        for phase, (name, pids, length) in enumerate((
                ("baseline", (), baseline_secs), ("serlite", (ser.pid,), secs),
                ("rtpengine", (eng.pid,), secs)), start=1):
            log(f"  {name}: {2 * calls} streams x {rate}/s for {length} s")
            phases[name] = r = stream(phones, dests[name], rate, length, phase, pids)
            log(f"    sent {r['sent']} received {r['received']} delay p50/p99/max "
                f"{r['delay_us']} us, relay CPU {r['relay_cpu']} s, generator "
                f"{r['generator_util']:.0%} of a core")
        res["phases"] = phases
        streamed = {"serlite": rss_kb(ser.pid), "rtpengine": rss_kb(eng.pid)}

        sip.teardown()
        for i in range(calls):
            eng.delete(i, "run")
        res["sessions_after"] = {"serlite": serlite_sessions(ser), "rtpengine": eng.sessions()}
        res["memory"] = {
            name: {"idle_kb": idle[name], "sessions_kb": loaded[name],
                   "streamed_kb": streamed[name][0], "hwm_kb": rss_kb(pid)[1],
                   "per_session_bytes": round((loaded[name] - idle[name]) * 1024 / calls)}
            for name, pid in (("serlite", ser.pid), ("rtpengine", eng.pid))}
        res["load_after"] = os.getloadavg()
    finally:
        if sip is not None:
            sip.close()
        if phones is not None:
            phones.close()
        eng.stop()
        ser.stop()
    return summarize(res)


def summarize(res):
    base = res["phases"]["baseline"]["delay_us"]
    out = {}
    for name in ("serlite", "rtpengine"):
        r = res["phases"][name]
        r["cpu_per_1000"] = (round(r["relay_cpu"] / r["received"] * 1000, 4)
                             if r["received"] else None)
        r["us_per_packet"] = (round(r["relay_cpu"] / r["received"] * 1e6, 2)
                              if r["received"] else None)
        r["added_us"] = [None if x is None or b is None else round(x - b, 1)
                         for x, b in zip(r["delay_us"], base)]
        out[name] = r
    s, e = out["serlite"]["cpu_per_1000"], out["rtpengine"]["cpu_per_1000"]
    res["ratio"] = round(s / e, 2) if s and e else None
    mips = {}
    for name in ("serlite", "rtpengine"):
        us = out[name]["us_per_packet"]
        if us:
            per = us * res["mips_factor"]
            pps = 1e6 / per
            mips[name] = {"us_per_packet": round(per, 1), "packets_per_s": round(pps),
                          "calls": int(pps / (2 * res["rate"]))}
    res["mips"] = mips
    return res


def table(res):
    """The result as the other benches print: a table, then the notes."""
    ph = res["phases"]
    mem = res["memory"]
    rows = [f"{res['calls']} relayed calls, {res['rate']} packets/s each way "
            f"({PACKET}-byte RTP), {res['secs']} s per relay (baseline {res['baseline_secs']} s)"
            + (f"; both relays and the generator at nice {res['nice']}" if res.get("nice")
               else ""),
            "",
            "| relay | sent | lost | CPU-s (user+sys) | CPU-s/1000 pkts | us/pkt | delay p50/p99/max us "
            "| added p50/p99/max us | RSS/session | RSS idle -> with the calls | peak RSS |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    b = ph["baseline"]
    rows.append(f"| direct (baseline) | {b['sent']} | {b['lost']} | - | - | - | "
                f"{_t(b['delay_us'])} | - | - | - | - |")
    for name in ("serlite", "rtpengine"):
        r, m = ph[name], mem[name]
        rows.append(
            f"| {name} | {r['sent']} | {r['lost']} | {r['relay_cpu']:.2f} "
            f"({_t(r['user_sys'], 2).replace('/', '+')}) | "
            f"{_f(r['cpu_per_1000'], 4)} | {_f(r['us_per_packet'], 1)} | {_t(r['delay_us'])} | "
            f"{_t(r['added_us'])} | {m['per_session_bytes'] / 1024:.1f} kB | "
            f"{m['idle_kb'] / 1024:.1f} -> {m['sessions_kb'] / 1024:.1f} MB | "
            f"{m['hwm_kb'] / 1024:.1f} MB |")
    ratio = res["ratio"]
    verdict = "meets" if ratio is not None and ratio <= RATIO_TARGET else "misses"
    p99 = ph["serlite"]["added_us"][1]
    rows += [
        "",
        f"- CPU per packet, serlite / rtpengine: **{_f(ratio, 2)}x** (target <= "
        f"{RATIO_TARGET:g}x: {verdict}).",
        f"- Delay serlite adds, p99: **{_f(p99, 1)} us** (target < {DELAY_TARGET_MS * 1000:.0f} "
        f"us: {'meets' if p99 is not None and p99 < DELAY_TARGET_MS * 1000 else 'misses'}); "
        f"rtpengine's {_f(ph['rtpengine']['added_us'][1], 1)} us.",
        f"- Generator (one process, one poll loop): "
        + "; ".join(f"{n} {ph[n]['generator_util']:.0%} of a core, sends late p99 "
                    f"{ph[n]['send_late_ms'][1]} ms" for n in ("baseline", "serlite",
                                                               "rtpengine")) + ".",
        f"- Sessions open with the calls: {res['sessions_open']}; after BYE / delete: "
        f"{res['sessions_after']}. Set-up per call: serlite {res['setup_ms_per_call']['serlite']} "
        f"ms (INVITE/200/ACK through the proxy), rtpengine "
        f"{res['setup_ms_per_call']['rtpengine']} ms (ng offer/answer).",
        f"- Load average before / after: {_t(res['load_before'], 2)} / "
        f"{_t(res['load_after'], 2)}."]
    for name in ("serlite", "rtpengine"):
        m = res["mips"].get(name)
        if m:
            rows.append(
                f"- One {res['mips_mhz']} MHz MIPS core, {name}: {m['us_per_packet']:.0f} us "
                f"per packet, so with the whole core relaying about **{m['packets_per_s']} "
                f"packets/s = {m['calls']} calls** "
                f"at {res['rate']} packets/s each way (this machine's per-packet CPU x "
                f"{res['mips_factor']:g}: an estimate, not measured on a router; could be "
                f"15x-40x).")
    return "\n".join(rows)


def _f(x, nd=3):
    return "-" if x is None else f"{x:.{nd}f}"


def _t(xs, nd=0):
    return "/".join("-" if x is None else f"{x:.{nd}f}" for x in xs)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m bench.relaybench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--rate", type=int, default=50, help="packets/s per phone (default 50)")
    ap.add_argument("--secs", type=float, default=20.0, help="s of streaming per relay")
    ap.add_argument("--baseline-secs", type=float, default=5.0)
    ap.add_argument("--mips-factor", type=float, default=MIPS_FACTOR)
    ap.add_argument("--nice", type=int, default=0,
                    help="both relays and the generator at this nice value (-10: ahead of the "
                         "machine's other processes, whose CPU would be in the delays; needs "
                         "root)")
    ap.add_argument("--python", help="the serlite process's python (default: this one)")
    ap.add_argument("--profile", metavar="FILE",
                    help="run serlite under cProfile, its stats written to FILE at its exit "
                         "(the CPU figures then include the profiler's cost)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args(argv)
    if not 1 <= args.calls <= 400 or not 1 <= args.rate <= 1000 or not 0 < args.secs <= 600:
        ap.error("calls 1-400, rate 1-1000, secs up to 600")
    if shutil.which("rtpengine") is None:
        ap.error("rtpengine not found: apt-get install rtpengine-daemon")
    workdir = Path(tempfile.mkdtemp(prefix="serlite-relaybench-"))
    ok = False
    # SIGTERM (bench/suite.py or a test timing out) stops serlite and rtpengine too: rtpengine
    # runs in a session of its own and would outlive this process
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        res = run(args.calls, args.rate, args.secs, args.baseline_secs, workdir,
                  args.mips_factor, args.python,
                  os.path.abspath(args.profile) if args.profile else None, args.nice)
        ok = True
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work directory kept: {workdir}")
    print(json.dumps(res, indent=1) if args.json else table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
