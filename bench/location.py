"""Footprint and speed of the location store (not a test; run by hand):

    python3 -m bench.location [N] [DIR]

For N phones on the LAN (no ``received``, ``flags`` 0: the registrar's usual binding) and then
N phones behind NAT (``received`` and ``FLAG_NAT`` set: the larger ``Binding``, one more string
each) it prints bytes per binding (tracemalloc) when built by ``save()`` and when loaded from
the snapshot, and the time to write and to load that snapshot; then the time of one save() in
db_mode 1 (fsync included; DIR picks the file system, default a temporary directory).  The RSS
figures of bench/RESULTS.md come from bench/memory.py (fresh processes, LAN phones).
"""

import os
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from serlite.store.location import FLAG_NAT, Binding, LocationStore  # noqa: E402

NOW = 1_700_000_000
UA = "Yealink SIP-T46S 66.86.0.15"
SOCKET = "udp:192.168.1.1:5060"


def binding(i, now=NOW, nated=True):
    user = f"user{i}"
    host = f"192.168.{i // 250 % 250}.{i % 250 + 2}"
    return Binding(f"{user}@home.lan", f"sip:{user}@{host}:5060;transport=udp",
                   now + 3600 + i % 600, q=1000, call_id=f"{i:08x}" + "a3f9c2d1e4b5a6c7d8e9f0a1",
                   cseq=1000 + i % 5000, user_agent=UA,
                   received=f"sip:{host}:5060" if nated else "", socket=SOCKET,
                   flags=FLAG_NAT if nated else 0)


def table(kind, nated, n, d):
    """Build, write and load an N-binding table of one kind of phone; print what it costs."""
    # memory: the store and everything it holds, built the way the registrar builds it
    store = LocationStore(None, 0)
    tracemalloc.start()
    t0 = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        b = binding(i, nated=nated)
        store.save(b.aor, NOW, put=[b])
    used = tracemalloc.get_traced_memory()[0] - t0
    tracemalloc.stop()
    print(f"{kind}: memory: {used / n:.0f} bytes per binding ({n} bindings, "
          f"{used / 2**20:.1f} MiB)")

    # snapshot write (mode 2 flush) and load
    wb = LocationStore(d, 2)
    wb.load(NOW)
    for b in store.bindings():
        wb.save(b.aor, NOW, put=[b])
    t = time.perf_counter()
    wb.flush(NOW)
    dt = time.perf_counter() - t
    size = os.path.getsize(os.path.join(d, "location"))
    print(f"{kind}: write snapshot: {dt:.3f} s ({size / n:.0f} bytes per record on disk)")
    wb.close(NOW)
    del store, wb
    t = time.perf_counter()
    st = LocationStore(d, 2)
    warnings = st.load(NOW)
    dt = time.perf_counter() - t
    assert not warnings and len(st) == n, (warnings[:3], len(st))
    print(f"{kind}: load snapshot: {dt:.3f} s")
    st.close(NOW)
    del st
    tracemalloc.start()
    st = LocationStore(d, 2)
    st.load(NOW)
    used, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{kind}: memory after load: {used / n:.0f} bytes per binding (peak while loading "
          f"{peak / n:.0f})")
    st.close(NOW)
    os.unlink(os.path.join(d, "location"))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    base = sys.argv[2] if len(sys.argv) > 2 else None
    with tempfile.TemporaryDirectory(dir=base) as d:
        for kind, nated in (("LAN", False), ("NAT", True)):
            table(kind, nated, n, d)

        # mode 1: one fsync'd journal append per save()
        for name in ("location", "location.journal"):
            if os.path.exists(os.path.join(d, name)):
                os.unlink(os.path.join(d, name))
        wt = LocationStore(d, 1)
        wt.load(NOW)
        m = 2000
        t = time.perf_counter()
        for i in range(m):
            b = binding(i)
            wt.save(b.aor, NOW, put=[b])
        dt = time.perf_counter() - t
        print(f"save() in db_mode 1: {dt / m * 1e6:.0f} us each ({m} saves)")
        wt.close(NOW)


if __name__ == "__main__":
    main()
