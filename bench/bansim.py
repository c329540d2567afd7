"""secfilter's cost, in process, in one run: CPU per 1000 calls without secfilter, with it
loaded (``secf_check_ua()`` on every request), and with 4096 addresses banned (the source
filter then runs for every message); what a banned source's packet costs; bytes per ban and
per counting source; a flood of 100 000 spoofed source addresses failing logins (the table stays
at ``max_bans``; peak RSS).

    python3 bench/bansim.py [CALLS] [ROUNDS]      (default 2000 calls, 5 rounds)
    python3 bench/bansim.py --flood               (the flood alone: the process's peak RSS
                                                   before and after it)

The calls are bench/callsim.py's (INVITE/180/200/ACK/BYE/200 through the seed config, bob
registered); the three servers take turns, round after round, and the best round of each is
printed (the machine's other load only ever adds).  One JSON line.
"""
import gc
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
from callsim import SEED, Harness, call_sim, invite  # noqa: E402
from serlite import log  # noqa: E402
from serlite.security.bans import BanTable  # noqa: E402

SECFILTER = ('loadmodule "/usr/lib/ser/modules/secfilter.so"\n',
             "route {\n    if (!secf_check_ua()) { drop; }\n")


def with_secfilter(path):
    text = open(SEED).read()
    text = text.replace("loadmodule", SECFILTER[0] + "loadmodule", 1)
    text = text.replace("route {\n", SECFILTER[1], 1)
    fd, out = tempfile.mkstemp(suffix=".cfg")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return out


def spoofed(i):
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def per_1000_calls(n, rounds):
    cfg = with_secfilter(SEED)
    try:
        servers = {"without": Harness(SEED), "loaded": Harness(cfg),
                   "4096_banned": Harness(cfg)}
    finally:
        os.unlink(cfg)
    sec = servers["4096_banned"].script.modules["secfilter"]
    for i in range(4096):
        sec.ban_add(spoofed(i), 3600)
    assert len(sec.table.active) == 4096 and sec._filtering
    calls = {name: call_sim(h) for name, h in servers.items()}
    best = {name: None for name in servers}
    for r in range(rounds):
        for name, h in servers.items():
            one = calls[name]
            for i in range(50):             # warm up (caches, the transaction table)
                one(f"w{r}-{i}")
            h.run_timers(64.0)
            h.cpu = 0.0
            for i in range(n):
                one(f"r{r}-{i}")
            ms = h.cpu / n * 1000 * 1000    # CPU ms per 1000 calls, in Core.receive
            best[name] = ms if best[name] is None else min(best[name], ms)
            h.run_timers(64.0)
    # a banned source's INVITE: dropped by the filter before parsing
    h = servers["4096_banned"]
    src = h.source(spoofed(7), 5060)
    data = invite(1)
    h.cpu = 0.0
    for _ in range(20000):
        h.receive(data, src)
    dropped_us = h.cpu / 20000 * 1e6
    # secf_check_ua() on one request (what "loaded" adds per request, beside the call)
    from serlite.proxy.context import Context
    from serlite.sip.message import parse
    msg = parse(data.replace(b"Subject:", b"User-Agent: baresip v3.10.1\r\nSubject:"))
    ctx = Context(msg, servers["loaded"].source("127.0.0.1", 6001), servers["loaded"].core)
    check = servers["loaded"].script.modules["secfilter"].secf_check_ua
    t0 = time.process_time()
    for _ in range(20000):
        check(ctx)
    ua_us = (time.process_time() - t0) / 20000 * 1e6
    for h in servers.values():
        h.stop()
    return {name: round(v, 1) for name, v in best.items()}, round(dropped_us, 2), \
        round(ua_us, 2)


def bytes_per_entry(n=4096):
    """tracemalloc: a ban (manual: Ban + dict entries + address string) and a counting source
    (one failure: Failures + dict entry + address string; the account's alarm record is one)."""
    out = {}
    for what in ("ban", "counting_source"):
        t = BanTable(max_bans=n)
        addresses = [None] * n
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            ip = spoofed(i)                 # the address string comes with the packet
            addresses[i] = ip
            if what == "ban":
                t.ban(ip, 0.0, "failed logins", 5, "100")
            else:
                t.failed(ip, "100", 0.0)
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        out[what] = round(grown / n, 1)
    return out


def flood(n=100000):
    """``n`` spoofed addresses, each failing a login (one failure each; and again with
    ban_failures 1, each a ban): the table's sizes, the peak traced memory, the peak RSS."""
    out = {}
    for label, failures in (("counting", 5), ("banning", 1)):
        t = BanTable(failures=failures)
        gc.collect()
        tracemalloc.start()
        t0 = time.process_time()
        for i in range(n):
            t.failed(spoofed(i), "100", i * 0.001)
        cpu = time.process_time() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[label] = {"sources": n, "failures_kept": len(t.failures), "bans_kept": len(t.bans),
                      "peak_traced_kb": round(peak / 1024), "us_per_failure":
                      round(cpu / n * 1e6, 2)}
    return out


def main(argv):
    log.level = log.ERR
    if "--flood" in argv:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = flood()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"flood_100000_spoofed": result, "peak_rss_kb_before": before,
                          "peak_rss_kb_after": after}))
        return
    n = int(argv[1]) if len(argv) > 1 else 2000
    rounds = int(argv[2]) if len(argv) > 2 else 5
    calls, dropped, ua = per_1000_calls(n, rounds)
    result = {"calls": n, "rounds": rounds, "cpu_ms_per_1000_calls": calls,
              "banned_packet_us": dropped, "secf_check_ua_us": ua,
              "bytes_per": bytes_per_entry(),
              "flood_100000_spoofed": flood(),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
