"""Flood protection against the real server: a scanner floods serlite with OPTIONS from
127.0.0.2 while a phone on 127.0.0.1 sends an OPTIONS every 50 ms and times the answers.

The probes come in turn from three addresses (127.0.0.1, .3, .4): one address sending 20
requests a second would itself be over pike's default 30 per 2 s.

The flood is 5000 requests sent by a separate process (so that it does not share the test's
GIL), in back-to-back bursts of 100 every 30 ms: a single burst of 5000 leaves the sender in
about 10 ms, mostly overflowing the server socket's receive buffer, and would overlap one
probe at most; spread over 1.5 s it overlaps all 30 probes.  The config checks every request:
after 30 in its 2 s window the scanner is blocked, and the rest of its packets are dropped
before they are parsed.

The machine is shared and noisy: the probes are judged by their maximum and median, and the
test prints both with the headroom left under the 100 ms bound (pytest -s shows them).
"""

import os
import statistics
import subprocess
import sys
import time

from . import sipnet
from .sipnet import UdpPeer, is_final, options, status_of

SCANNER = "127.0.0.2"
PHONES = ("127.0.0.1", "127.0.0.3", "127.0.0.4")
PROBES = 30
BOUND_MS = 100.0

CONFIG = """
debug=2
loadmodule "sl"
loadmodule "pike"
modparam("pike", "sampling_time_unit", 2)
modparam("pike", "reqs_density_per_unit", 30)
route {
    if (!pike_check_req()) { drop; }
    if (method == "OPTIONS") { sl_send_reply("200", "OK"); exit; }
    sl_send_reply("404", "Not Here");
}
"""

# argv: server ip, port, total, burst, gap (s).  Prints "ready", then the monotonic start and
# end of the flood, then how many answers the scanner got.
FLOODER = r"""
import socket, sys, time
host, port, total, burst, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((%r, 0))
me = s.getsockname()[1]
msgs = [(f"OPTIONS sip:scan@{host}:{port} SIP/2.0\r\n"
         f"Via: SIP/2.0/UDP %s:{me};branch=z9hG4bK-scan-{i};rport\r\n"
         f"Max-Forwards: 70\r\nFrom: <sip:scan@%s>;tag=s{i}\r\nTo: <sip:scan@{host}>\r\n"
         f"Call-ID: scan-{i}@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        for i in range(total)]
print("ready", flush=True)
sys.stdin.readline()
start = time.monotonic()
for k in range(0, total, burst):
    for m in msgs[k:k + burst]:
        try:
            s.sendto(m, (host, port))
        except OSError:
            pass
    next_burst = start + (k // burst + 1) * gap
    time.sleep(max(0.0, next_burst - time.monotonic()))
end = time.monotonic()
s.settimeout(0.5)
answers = 0
try:
    while True:
        s.recv(65535)
        answers += 1
except OSError:
    pass
print(start, end, answers, flush=True)
""" % (SCANNER, SCANNER, SCANNER)


def cpu_seconds(pid):
    """User + system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def probe(peer, addr):
    """One OPTIONS and its answer time in ms (None if none within a second)."""
    sent = time.monotonic()
    peer.send(options(addr, peer), addr)
    replies = peer.recv_until(is_final, 1.0)
    if not replies or status_of(replies[-1]) != 200:
        return sent, None
    return sent, (time.monotonic() - sent) * 1000


def test_a_flood_is_blocked_and_other_sources_are_answered_in_time(ser):
    server = ser(CONFIG)
    host, port = server.addr
    flooder = subprocess.Popen([sys.executable, "-c", FLOODER, host, str(port), "5000", "100",
                                "0.03"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert flooder.stdout.readline().strip() == "ready"
        phones = [UdpPeer(host=ip) for ip in PHONES]
        try:
            probe(phones[0], server.addr)       # warm: the first answer pays for imports
            cpu_before = cpu_seconds(server.pid)
            flooder.stdin.write("go\n")
            flooder.stdin.flush()
            results = []
            for i in range(PROBES):
                sent, ms = probe(phones[i % len(phones)], server.addr)
                results.append((sent, ms))
                time.sleep(max(0.0, sent + 0.05 - time.monotonic()))
        finally:
            for phone in phones:
                phone.close()
        out, _ = flooder.communicate(timeout=30)
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        if flooder.poll() is None:
            flooder.kill()
            flooder.wait()
    start, end, answers = out.split()
    start, end, answers = float(start), float(end), int(answers)

    during = [ms for sent, ms in results if start <= sent <= end]
    times = [ms for _, ms in results if ms is not None]
    lost = sum(ms is None for _, ms in results)
    print(f"\npike flood: 5000 requests in {end - start:.2f} s; {len(during)} of {PROBES} "
          f"probes during the flood; answer times median {statistics.median(times):.2f} ms, "
          f"max {max(times):.2f} ms, {lost} lost; headroom {BOUND_MS - max(times):.1f} ms "
          f"under {BOUND_MS:.0f} ms; server CPU {cpu * 1000:.0f} ms for flood and probes")
    assert len(during) >= PROBES - 5, (start, end, results)
    assert lost == 0, results
    assert max(times) < BOUND_MS, sorted(times)
    # the scanner got its 30 answers and nothing more, and its packets cost little: about
    # 20 ms of CPU here, where parsing and answering all 5000 costs about 340 ms
    assert answers == 30
    assert cpu < 0.2, cpu

    # blocked: a later request from its address gets no answer ...
    with UdpPeer(host=SCANNER) as scanner:
        scanner.send(options(server.addr, scanner), server.addr)
        assert scanner.recv_until(is_final, 0.5) == []
        # ... until it has been calm for a whole window (2 s): within two windows or so
        calm = time.monotonic()
        while True:
            scanner.send(options(server.addr, scanner), server.addr)
            if scanner.recv_until(is_final, 0.5):
                break
            assert time.monotonic() - calm < 8, "the scanner was never unblocked"
    # logged when blocked, then at most once per 2 s window while it lasted; then unblocked
    sipnet.wait_log(server, rf"pike: {SCANNER} unblocked")
    log = server.log()
    assert log.count(f"pike: {SCANNER} over 30 requests in 2 s: blocked") == 1
    windows = (time.monotonic() - start) / 2
    assert log.count(f"pike: {SCANNER} still flooding") <= windows + 1
    pike_lines = [line for line in log.splitlines() if "pike:" in line]
    assert all(SCANNER in line for line in pike_lines), pike_lines
