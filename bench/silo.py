"""msilo's stored messages: memory per message and the cost of storing one (fsync'd).

    python3 -m bench.silo [N [USERS]]

Stores N MESSAGEs (default 1000) for USERS owners (default 20) through ``SiloStore.store``,
as m_store does (From and To URIs of a house's phones, ``text/plain``, a 62-byte body), in a
temporary directory, and prints one JSON line: tracemalloc's bytes held per message beside
its body, the file's bytes per message, the time per store (the journal line and its fsync)
and per load of the whole file.  The target is <= 1 kB per message plus its body.
"""

import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc

from serlite.store.silo import SiloStore

BODY = b"Dinner is ready, come down please - the pizza is getting cold!"   # 62 bytes
NOW = 1765000000


def run(n, users):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "silo")
        store = SiloStore(path)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        for i in range(n):
            owner = f"u{100 + i % users}"
            store.store(owner, f"sip:u{200 + i % 7}@home.lan", f"sip:{owner}@home.lan",
                        "text/plain", bytes(BODY), NOW + i, 259200)
        store_s = time.perf_counter() - t0
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        size = os.path.getsize(path)
        t0 = time.perf_counter()
        again = SiloStore(path)
        again.load(NOW)
        load_s = time.perf_counter() - t0
        assert len(again) == n
    body_cost = sys.getsizeof(bytes(BODY))      # the bytes object the body is kept in
    return {"messages": n, "users": users, "body_bytes": len(BODY),
            "bytes_per_message": round(held / n),
            "bytes_per_message_beside_body": round(held / n - body_cost),
            "file_bytes_per_message": round(size / n),
            "store_us": round(store_s / n * 1e6, 1), "load_ms": round(load_s * 1e3, 1)}


def main(argv):
    n = int(argv[0]) if argv else 1000
    users = int(argv[1]) if len(argv) > 1 else 20
    print(json.dumps(run(n, users)))


if __name__ == "__main__":
    main(sys.argv[1:])
