"""What a TLS connection costs the server, against a plain TCP one: a real serlite process
(seed config, a TLS and a TCP listener on loopback), ``n`` clients of each kind connected
from this process, each having sent one OPTIONS and read its answer (handshake done, the
connection proven and idle); the server's VmRSS before and after each batch, per connection.
Python's tracemalloc cannot see OpenSSL's allocations, so the process's RSS is what counts.

    python3 bench/tlsmem.py [n]        (the openssl command makes a throw-away certificate)
"""

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _options(sock, port, i):
    host, lport = sock.getsockname()[:2]
    req = (f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/TCP {host}:{lport};branch=z9hG4bKm{i};rport\r\nMax-Forwards: 70\r\n"
           f"From: <sip:a@x>;tag={i}\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: m{i}@b\r\n"
           f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    sock.sendall(req.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed")
        data += chunk


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    d = tempfile.mkdtemp(prefix="tlsmem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem", "-out", "c.pem",
                    "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"],
                   cwd=d, check=True, capture_output=True)
    seed = open(os.path.join(REPO, "tests/data/configs/valid/seed.cfg")).read()
    cfg = os.path.join(d, "ser.cfg")
    with open(cfg, "w") as f:
        f.write(f'loadmodule "tls.so"\nmodparam("tls", "certificate", "{d}/c.pem")\n'
                f'modparam("tls", "private_key", "{d}/k.pem")\n'
                f'tcp_max_connections={4 * n}\ntcp_accept_iplimit={4 * n}\n{seed}')
    tcp_port, tls_port = _free_port(), _free_port()
    env = dict(os.environ, SER_UNIX_SOCK=os.path.join(d, "ctl"), PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "serlite", "-D", "-E", "-f", cfg,
                             "-l", f"tcp:127.0.0.1:{tcp_port}", "-l", f"tls:127.0.0.1:{tls_port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        ctx = ssl.create_default_context(cafile=f"{d}/c.pem")
        held = []
        warm = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tls_port)),
                               server_hostname="localhost")
        _options(warm, tls_port, 0)                 # the first handshake loads what it needs
        held.append(warm)
        for kind, port in (("tcp", tcp_port), ("tls", tls_port)):
            time.sleep(0.5)
            before = _rss_kb(proc.pid)
            for i in range(n):
                s = socket.create_connection(("127.0.0.1", port))
                if kind == "tls":
                    s = ctx.wrap_socket(s, server_hostname="localhost")
                _options(s, port, i + 1)
                held.append(s)
            time.sleep(0.5)
            after = _rss_kb(proc.pid)
            print(f"{kind}: {n} connections, server RSS {before} -> {after} kB: "
                  f"{(after - before) * 1024 / n:.0f} bytes per connection")
        for s in held:
            s.close()
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main()
