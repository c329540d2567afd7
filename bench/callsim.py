"""In-process call simulation through the seed config: CPU per call without sockets.

    python3 bench/callsim.py [CONFIG] [CALLS] [--prof]
    python3 bench/callsim.py --memory [CONFIG]
    python3 bench/callsim.py --gc [CONFIG] [RATE] [SECONDS]

Feeds the messages of INVITE/180/200/ACK/BYE/200 (and a REGISTER first) straight into
Core.receive with a transport that only records what would be sent: the per-message work of
the parser, the script, tm and rr, without syscalls or the loop.  Prints the CPU time per call
twice: all of it (building the test messages included) and inside Core.receive alone (what the
server pays); then the CPU of the transaction timers those calls leave behind, fired by moving
the (simulated) clock 40 s on.  --prof prints a cProfile.  ``Harness`` is shared with
bench/regsim.py.

--memory: what a finished transaction costs while it waits out its timers (J, L: 32 s).  Calls
at 100/s of simulated time for 40 s fill the table to its steady state (the INVITE and BYE
server transactions of the last 32 s, the BYE client transactions of the last 5 s); the
memory the run left allocated (tracemalloc, after a garbage collection), divided by the
transactions in the table, is printed as one JSON line.

--gc: what the garbage collector sees at a proxy's scale, the server's GC settings applied
(start-up frozen, full collections 100 middle ones apart): calls at RATE/s (1500) of simulated
time for SECONDS (45), timers run every 0.1 s.  Prints as one JSON line the objects it tracks
at the peak, the full (generation 2) collections and the longest, and the peak RSS.
"""
import cProfile
import gc
import json
import os
import pstats
import resource
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from serlite.control.stats import Stats  # noqa: E402
from serlite.loop import Loop  # noqa: E402
from serlite.proxy.context import Source  # noqa: E402
from serlite.proxy.core import Core  # noqa: E402
from serlite.script.compiler import compile_file  # noqa: E402

SEED = os.path.join(ROOT, "tests/data/configs/valid/seed.cfg")


class Listener:
    def __init__(self, proto):
        self.proto = proto
        self.family = 2
        self.ip = self.host = "127.0.0.1"
        self.port = 5060
        self.name = f"{proto}:127.0.0.1:5060"


class RecordingTransport:
    """Keeps what would be sent: (ip, port, bytes)."""

    def __init__(self):
        self.sent = []
        self.listeners = [Listener("udp")]
        self.connections = {}

    def send(self, proto, ip, port, data, local=None, conn=None):
        self.sent.append((ip, port, data))
        return True

    def listener_for(self, proto, family, ip=None):
        return self.listeners[0]


class Harness:
    """A Core running ``config`` with a RecordingTransport; ``receive`` feeds one message and
    adds the CPU time it took to ``cpu``.  The loop's clock is ``clock``: ``run_timers(secs)``
    moves it on and fires what is due."""

    def __init__(self, config=SEED):
        self.loop = Loop()
        self.clock = 1000.0
        self.loop.time = lambda: self.clock
        self.tr = RecordingTransport()
        self.core = Core(self.loop, self.tr, Stats(0))
        self.core.set_identity(self.tr.listeners, [])
        self.script = compile_file(config)
        self.core.use_script(self.script)
        for m in self.script.modules.values():
            m.start(self.core, None)
        self.cpu = 0.0

    def source(self, ip, port):
        return Source("udp", ip, port, self.tr.listeners[0])

    def run_timers(self, secs):
        self.clock += secs
        self.loop.run_due(self.clock)

    def receive(self, data, source):
        t0 = time.process_time()
        self.core.receive(data, source)
        self.cpu += time.process_time() - t0

    def stop(self):
        for m in self.script.modules.values():
            m.stop()


def run(n, label, one, prof, harness):
    """Time ``one(i)`` for i in range(n); prints the CPU per item, total and in the server."""
    t0 = time.process_time()
    harness.cpu = 0.0
    if prof:
        pr = cProfile.Profile()
        pr.enable()
    for i in range(n):
        one(i)
    if prof:
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(30)
    t = time.process_time() - t0
    print(f"{n} {label}: {t:.3f} CPU-s, {t / n * 1e6:.0f} us/{label[:-1]} in all, "
          f"{harness.cpu / n * 1e6:.0f} us/{label[:-1]} in Core.receive")


SDP = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
       b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def invite(i):
    return (f"INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-{i}-1\r\n"
            f"From: sipp <sip:sipp@127.0.0.1:6001>;tag={i}\r\nTo: <sip:bob@127.0.0.1:5060>\r\n"
            f"Call-ID: {i}-call@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
            f"Contact: sip:sipp@127.0.0.1:6001\r\nMax-Forwards: 70\r\n"
            f"Subject: Performance Test\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(SDP)}\r\n\r\n").encode() + SDP


# the lines a response copies from the request it answers (as serlite and this file spell them)
_COPIED = (b"Via:", b"From:", b"To:", b"Call-ID:", b"CSeq:", b"Record-Route:")


def resp_from(req_bytes, code, reason, totag, body=b""):
    """The UAS's response to the request ``req_bytes`` as it reached the UAS."""
    lines = req_bytes[:req_bytes.index(b"\r\n\r\n")].split(b"\r\n")[1:]
    keep = [line + b";tag=" + totag if line.startswith(b"To:") else line
            for line in lines if line.startswith(_COPIED)]
    return b"SIP/2.0 %d %s\r\n%s\r\nContact: <sip:bob@127.0.0.1:6000>\r\n" \
        b"Content-Length: %d\r\n\r\n%s" % (code, reason, b"\r\n".join(keep), len(body), body)


def call_sim(h):
    """``one_call(i)``: one whole call through ``h`` (bob registered first)."""
    tr = h.tr
    src_uac = h.source("127.0.0.1", 6001)
    src_uas = h.source("127.0.0.1", 6000)
    reg = ("REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-reg1\r\n"
           "From: <sip:bob@127.0.0.1:5060>;tag=r1\r\nTo: <sip:bob@127.0.0.1:5060>\r\n"
           "Call-ID: reg1\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
           "Contact: <sip:bob@127.0.0.1:6000>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
           ).encode()
    h.receive(reg, src_uas)

    def one_call(i):
        tr.sent.clear()
        h.receive(invite(i), src_uac)
        fwd = [d for ip, p, d in tr.sent if p == 6000][0]
        totag = b"u%s" % str(i).encode()
        h.receive(resp_from(fwd, 180, b"Ringing", totag), src_uas)
        h.receive(resp_from(fwd, 200, b"OK", totag, body=SDP), src_uas)
        ok = [d for ip, p, d in tr.sent if p == 6001 and d.startswith(b"SIP/2.0 200")][0]
        rr = ok[ok.index(b"\r\nRecord-Route: ") + 16:]
        rr = rr[:rr.index(b"\r\n")].decode()
        ack = (f"ACK sip:bob@127.0.0.1:6000 SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-{i}-2\r\n"
               f"Route: {rr}\r\n"
               f"From: sipp <sip:sipp@127.0.0.1:6001>;tag={i}\r\n"
               f"To: <sip:bob@127.0.0.1:5060>;tag=u{i}\r\nCall-ID: {i}-call@127.0.0.1\r\n"
               f"CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
        h.receive(ack, src_uac)
        assert any(p == 6000 and d.startswith(b"ACK ") for ip, p, d in tr.sent), tr.sent
        bye = ack.replace(b"ACK sip", b"BYE sip").replace(b"CSeq: 1 ACK", b"CSeq: 2 BYE") \
            .replace(f"-{i}-2".encode(), f"-{i}-3".encode())
        tr.sent.clear()
        h.receive(bye, src_uac)
        fbye = [d for ip, p, d in tr.sent if p == 6000][0]
        h.receive(resp_from(fbye, 200, b"OK", totag), src_uas)
        assert any(d.startswith(b"SIP/2.0 200") for ip, p, d in tr.sent if p == 6001), tr.sent
    return one_call


def memory(h, one_call, rate=100, seconds=40):
    """Bytes per transaction in the table at its steady state (see the module's docstring)."""
    h.run_timers(64.0)      # the warm-up's transactions gone
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    calls = rate * seconds
    for i in range(calls):
        one_call(f"m{i}")
        h.run_timers(1.0 / rate)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    tm = h.core.tm
    n = len(tm.table)
    return {"calls": calls, "rate": rate, "transactions": n, "unanswered": tm.unanswered,
            "server": len(tm.table.server), "client": len(tm.table.client),
            "bytes": grown, "bytes_per_transaction": round(grown / n, 1)}


def collector(h, one_call, rate=1500, seconds=45):
    """Tracked objects and full-collection pauses at ``rate`` calls/s (see the docstring)."""
    from serlite.server import _settle_gc
    _settle_gc()
    pauses, started = [], [0.0]

    def timed(phase, info):
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses.append(time.perf_counter() - started[0])
    gc.callbacks.append(timed)
    peak = 0
    try:
        for tick in range(seconds * 10):
            for i in range(rate // 10):
                one_call(f"g{tick}-{i}")
            h.run_timers(0.1)
            if tick % 50 == 0:
                peak = max(peak, len(gc.get_objects()))
    finally:
        gc.callbacks.remove(timed)
    return {"rate": rate, "seconds": seconds, "transactions": len(h.core.tm.table),
            "tracked_objects_peak": peak, "full_collections": len(pauses),
            "longest_full_collection_ms": round(max(pauses, default=0.0) * 1e3, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    config = args[0] if args else SEED
    if "--gc" in argv:
        h = Harness(config)
        one_call = call_sim(h)
        for i in range(50):
            one_call(f"w{i}")
        nums = [int(a) for a in args[1:3]]
        print(json.dumps(collector(h, one_call, *nums)))
        return
    if "--memory" in argv:
        h = Harness(config)
        one_call = call_sim(h)
        for i in range(50):
            one_call(f"w{i}")
        print(json.dumps(memory(h, one_call)))
        return
    n = int(args[1]) if len(args) > 1 else 2000
    h = Harness(config)
    one_call = call_sim(h)
    for i in range(50):
        one_call(f"w{i}")
    run(n, "calls", one_call, "--prof" in argv, h)
    left = len(h.core.tm.table)
    t0 = time.process_time()
    h.run_timers(40.0)
    t = time.process_time() - t0
    print(f"then their timers: {t / n * 1e6:.0f} us/call ({left} transactions, "
          f"{len(h.core.tm.table)} left after 40 s, {h.core.tm.unanswered} unanswered)")


if __name__ == "__main__":
    main(sys.argv)
