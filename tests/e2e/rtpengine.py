"""A real rtpengine (Debian's rtpengine-daemon) started by a test, in userspace (no kernel
module: ``--table=-1``), with no config file of this machine, its rtpproxy-protocol control
socket (``--listen-udp``, what serlite's rtpproxy_sock speaks) and its CLI (``--listen-cli``,
for ``rtpengine-ctl list numsessions``), on loopback or inside a test's network namespace.

Interfaces are rtpengine's logical names: ``internal`` and ``external``, which the rtpproxy
protocol's direction flags ``I`` and ``E`` select (Kamailio's ``i``/``e``)."""

import re
import shutil
import socket
import subprocess
import time

from . import sipnet


class RtpEngine:
    def __init__(self, workdir, *, internal, external, control_ip="127.0.0.1", port_min,
                 port_max, prefix=(), inside=None):
        """``prefix``: a command prefix (``ip netns exec NS``); ``inside``: a context manager
        factory to open the test's own sockets there (netns.Net.inside)."""
        if shutil.which("rtpengine") is None:
            raise AssertionError("rtpengine is not installed: run tests/run, which installs "
                                 "rtpengine-daemon")
        self.workdir = workdir
        self.prefix = list(prefix)
        self.inside = inside
        self.control_ip = control_ip
        self.port = sipnet.free_port()
        self.cli_port = sipnet.free_port()
        self.log_path = workdir / "rtpengine.log"
        self.args = [*self.prefix, "rtpengine", "--config-file=none", "--foreground",
                     "--log-stderr", "--table=-1", f"--pidfile={workdir / 'rtpengine.pid'}",
                     f"--interface=internal/{internal}", f"--interface=external/{external}",
                     f"--listen-udp={control_ip}:{self.port}",
                     f"--listen-cli={control_ip}:{self.cli_port}",
                     f"--port-min={port_min}", f"--port-max={port_max}",
                     "--delete-delay=0", "--num-threads=1", "--log-level=6"]
        self.proc = None

    @property
    def sock(self):
        return f"udp:{self.control_ip}:{self.port}"

    def start(self, timeout=10):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:          # ready: it answers V
            if self.proc.poll() is not None:
                raise AssertionError(f"rtpengine exited {self.proc.returncode}:\n"
                                     + self.tail())
            if self.command("V", 0.2) == "20040107":
                return self
        raise AssertionError("rtpengine did not answer V within "
                             f"{timeout} s:\n{self.tail()}")

    def command(self, text, timeout=1.0):
        """One rtpproxy-protocol command, the reply's text after the cookie (None: none)."""
        def ask():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.sendto(f"t{time.monotonic_ns()} {text}".encode(),
                         (self.control_ip, self.port))
                try:
                    return s.recv(2048).decode().split(None, 1)[1].strip()
                except (OSError, IndexError):
                    return None
        if self.inside is None:
            return ask()
        with self.inside():
            return ask()

    def sessions(self):
        """How many calls rtpengine holds (``list numsessions``)."""
        out = subprocess.run([*self.prefix, "rtpengine-ctl", "-ip", self.control_ip,
                              "-port", str(self.cli_port), "list", "numsessions"],
                             capture_output=True, text=True, timeout=10)
        m = re.search(r"Current sessions total: (\d+)", out.stdout)
        assert m, f"rtpengine-ctl: {out.stdout}{out.stderr}"
        return int(m.group(1))

    def tail(self, lines=60):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self.log.close()
