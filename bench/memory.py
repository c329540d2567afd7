"""The location table's memory and file costs at N bindings, in a fresh process each:

    python3 -m bench.memory build N DIR    RSS delta of N bindings, then the time to save them
    python3 -m bench.memory load N DIR     the time to load DIR's table, and its RSS delta
    python3 -m bench.memory trace N DIR    tracemalloc's count of the bytes N bindings hold

Each prints one JSON line.  The bindings are what the registrar makes of a phone's REGISTER
(serlite.modules.registrar: ``Binding(aor, contact URI, now + expires, q, Call-ID, CSeq,
User-Agent, received, socket)``), saved through ``LocationStore.save`` one AOR at a time, with
strings of a real phone's sizes: AOR ``u100123``, contact ``sip:u100123@192.168.7.35:5060``,
a 32-hex-digit Call-ID, a User-Agent shared by all (interned by the store, as the registrar's
are).  usrloc db_mode 2 (write-back), as bench/serlite.cfg.
"""

import gc
import json
import os
import sys
import time


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def bindings(n, now):
    from serlite.store.location import Binding
    ua = "Yealink SIP-T46S 66.86.0.15"
    for i in range(n):
        user = f"u{100000 + i}"
        contact = f"sip:{user}@192.168.{(i >> 8) & 255}.{i & 255}:5060"
        call_id = f"{os.urandom(16).hex()}@192.168.{(i >> 8) & 255}.{i & 255}"
        yield user, Binding(user, contact, now + 3600, -1, call_id, 1 + i % 7,
                            ua, received="", socket="udp:192.168.1.1:5060")


def build(n, directory, trace=False):
    from serlite.store.location import DB_WRITE_BACK, LocationStore
    now = int(time.time())
    store = LocationStore(directory, DB_WRITE_BACK)
    store.load(now)
    gc.collect()
    if trace:
        import tracemalloc
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    rss0 = rss_kb()
    t0 = time.perf_counter()
    for aor, b in bindings(n, now):
        store.save(aor, now, put=[b])
    build_s = time.perf_counter() - t0
    gc.collect()
    out = {"n": len(store), "build_s": build_s}
    if trace:
        import tracemalloc
        out["traced_bytes"] = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return out
    out["rss_delta_kb"] = rss_kb() - rss0
    out["rss_kb"] = rss_kb()
    t0 = time.perf_counter()
    store.flush(now)
    out["save_s"] = time.perf_counter() - t0
    path = os.path.join(directory, "location")
    out["file_bytes"] = os.path.getsize(path)
    store.close(now)
    return out


def load(n, directory):
    from serlite.store.location import DB_WRITE_BACK, LocationStore
    now = int(time.time())
    gc.collect()
    rss0 = rss_kb()
    store = LocationStore(directory, DB_WRITE_BACK)
    t0 = time.perf_counter()
    warnings = store.load(now)
    load_s = time.perf_counter() - t0
    gc.collect()
    return {"n": len(store), "expected": n, "load_s": load_s, "warnings": len(warnings),
            "rss_delta_kb": rss_kb() - rss0, "rss_kb": rss_kb()}


def main(argv):
    what, n, directory = argv[0], int(argv[1]), argv[2]
    if what == "build":
        out = build(n, directory)
    elif what == "trace":
        out = build(n, directory, trace=True)
    elif what == "load":
        out = load(n, directory)
    else:
        raise SystemExit(f"usage: python3 -m bench.memory build|load|trace N DIR, not {what}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
