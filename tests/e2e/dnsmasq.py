"""A DNS server the tests run themselves: dnsmasq in the foreground on a loopback address and a
free port, answering only from its command line (no upstream, no /etc/hosts), and a resolv.conf
that points at it.  Also `SilentServer`, a UDP socket that reads nothing: a name server that
never answers.

    with Dnsmasq(tmp_path, ["--srv-host=_sip._udp.example.test,a.example.test,5060,10,0",
                            "--host-record=a.example.test,127.0.0.5"]) as dns:
        dns.resolv_conf   # a file with "nameserver 127.0.0.1", dns.port the port
"""

import os
import pwd
import shutil
import socket
import subprocess
import time

from . import sipnet


class Dnsmasq:
    def __init__(self, tmp_path, records, domain="example.test", address="127.0.0.1",
                 options=""):
        if shutil.which("dnsmasq") is None:
            raise sipnet.HarnessError("dnsmasq missing: tests/run installs dnsmasq-base")
        self.address = address
        self.port = sipnet.free_port("udp", socket.AF_INET6 if ":" in address
                                     else socket.AF_INET)
        self.log_path = tmp_path / f"dnsmasq-{self.port}.log"
        self.resolv_conf = tmp_path / f"resolv-{self.port}.conf"
        self.resolv_conf.write_text(f"nameserver {address}\n{options}\n")
        self.cmd = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                    "--no-poll", "--bind-interfaces", f"--listen-address={address}",
                    f"--port={self.port}", "--pid-file=", "--local-ttl=60",
                    f"--local=/{domain}/", "--log-queries", "--log-facility=-",
                    "--user=" + _user()] + list(records)
        self.proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        # ready when it answers (bounded: 5 s)
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(0.1)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                s.sendto(b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01",
                         (self.address, self.port))
                try:
                    s.recvfrom(512)
                    return self
                except OSError:
                    continue
        self.stop()
        raise sipnet.HarnessError(f"dnsmasq did not start: {self.log()}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


class SilentServer:
    """A UDP socket on loopback that never reads: queries to it are never answered."""

    def __init__(self, address="127.0.0.2", port=0):
        self.sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET,
                                  socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.address, self.port = self.sock.getsockname()[:2]

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _user():
    return pwd.getpwuid(os.getuid()).pw_name
