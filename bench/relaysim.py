"""The built-in relay's CPU per relayed packet, in process on loopback: ``sessions`` calls,
each phone sending bursts of 160-byte packets (20 ms of G.711), the relay's loop reading and
forwarding them; CPU is counted only while the loop's readers run (the phones' sends and
receives are not in it).  One run, the best of ``rounds``.

    python3 bench/relaysim.py [sessions] [packets per session and direction] [rounds] [burst]

``burst``: packets each phone sends before the relay reads (default 20); 1 is what a relay sees
at 50 packets/s, one datagram per wake-up.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from serlite.control.stats import Stats  # noqa: E402
from serlite.loop import Loop  # noqa: E402
from serlite.media import sdp  # noqa: E402
from serlite.media.session import CALLEE, CALLER  # noqa: E402
from serlite.relay import Relay  # noqa: E402


def phone(ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.setblocking(False)
    return s


def run(n_sessions, packets, burst=20):
    loop = Loop()
    relay = Relay(loop, Stats(0), 43000, 43000 + 8 * n_sessions + 8, n_sessions, 60)
    calls = []
    for i in range(n_sessions):
        a, b = phone("127.0.0.1"), phone("127.0.0.2")
        s = relay.open(f"c{i}", "t", "127.0.0.1", "127.0.0.2")
        relay.add_streams(s, 1)
        relay.add_fork(s, "b")
        for side, tag, p, ip in ((CALLER, None, a, "127.0.0.1"), (CALLEE, "b", b, "127.0.0.2")):
            body = b"c=IN IP4 %s\r\nm=audio %d RTP/AVP 0\r\n" % (ip.encode(), p.getsockname()[1])
            s.learn(side, tag, sdp.streams(body), source_ip=ip)
        calls.append((a, b, ("127.0.0.1", s.ports(CALLER, "b")[0]),
                      ("127.0.0.2", s.ports(CALLEE)[0])))
    payload = b"\x80" * 172
    cpu = 0.0
    readers = loop._readers
    for _ in range(0, packets, burst):
        for a, b, to_a, to_b in calls:
            for _ in range(burst):
                a.sendto(payload, to_a)
                b.sendto(payload, to_b)
        want = relay.stats.counters["rtp_packets"] + 2 * burst * len(calls)
        deadline = time.monotonic() + 5
        while relay.stats.counters["rtp_packets"] < want and time.monotonic() < deadline:
            t0 = time.process_time()
            for fd, _ in loop.wait(100):
                readers[fd]()
            cpu += time.process_time() - t0
        for a, b, _, _ in calls:
            for p in (a, b):
                try:
                    while p.recv(2048):
                        pass
                except BlockingIOError:
                    pass
    relayed = relay.stats.counters["rtp_packets"]
    relay.close_all()
    loop.close()
    for a, b, _, _ in calls:
        a.close()
        b.close()
    return cpu, relayed


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    packets = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    burst = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    best = None
    for _ in range(rounds):
        cpu, relayed = run(n, packets, burst)
        per = cpu / relayed * 1e6
        best = per if best is None else min(best, per)
    print(f"{n} sessions, {relayed} packets relayed per round: "
          f"{best:.1f} us CPU per packet, {best:.0f} ms per 1000 packets (best of {rounds}, "
          f"bursts of {burst})")


if __name__ == "__main__":
    main()
