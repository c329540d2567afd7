"""Fixtures for the status page tests: the e2e harness's serlite (`ser`), a real busybox httpd
serving webui/www/ with the CGI, and a restart hook that restarts serlite through the harness.

busybox httpd gives a CGI its own environment plus the CGI variables, so the httpd is started
with the settings file in SER_WEBUI_CONF and PYTHONPATH set to tools/pylight: the
CGI then runs with exactly OpenWrt's python3-light modules, found through its own shebang
(#!/usr/bin/env python3, a `python3` first on PATH being this test run's interpreter).
"""

import base64
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from tests.e2e import sipnet
from tests.e2e.conftest import pytest_runtest_makereport, ser, tools  # noqa: F401

HERE = Path(__file__).resolve().parent
REPO = sipnet.REPO
DOCROOT = REPO / "webui" / "www"
CGI = DOCROOT / "cgi-bin" / "ser"
PYLIGHT = sipnet.PYLIGHT
CONFIG = HERE / "webui.cfg"
USER, PASSWORD = "admin", "s3cret-pw"
HTTPD_TIMEOUT = 10


def server_config(db_dir):
    return CONFIG.read_text().replace("@DB_URL@", f"dbtext://{db_dir}")


def cgi_env_base(bindir):
    """What every CGI run gets beside the CGI variables: python3-light, our python3 first."""
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    env["PYTHONPATH"] = str(PYLIGHT)
    return env


@pytest.fixture(scope="session")
def pybin(tmp_path_factory):
    """A directory whose `python3` is this test run's interpreter, for the CGI's shebang."""
    bindir = tmp_path_factory.mktemp("pybin")
    (bindir / "python3").symlink_to(sys.executable)
    return bindir


@pytest.fixture(scope="session")
def busybox():
    path = shutil.which("busybox")
    if path is None:
        pytest.fail("busybox is missing: run tests/run, which installs it")
    return path


class Restarter:
    """Listens on a Unix socket for restart_hook.py; restarts `server` through the harness
    (SIGTERM, start, wait for its ready line) and answers "ok" once it is up."""

    def __init__(self, server):
        self.server = server
        self.path = os.path.join(tempfile.mkdtemp(prefix="webuihook"), "hook.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(2)
        self.restarts = 0
        self.errors = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def command(self):
        return f"{sys.executable} {HERE / 'restart_hook.py'} {self.path}"

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if conn.makefile("r").readline().strip() != "restart":
                    continue
                try:
                    self.server.restart()
                    self.restarts += 1
                    conn.sendall(b"ok\n")
                except Exception as exc:        # reported to the CGI, and to the test
                    self.errors.append(exc)
                    conn.sendall(f"error {exc}\n".encode())

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)    # wakes the accept() of the thread
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()


class Httpd:
    """`busybox httpd -f -p 127.0.0.1:PORT -h webui/www -c CONF`, basic auth on /cgi-bin
    unless auth=False."""

    def __init__(self, busybox, workdir, settings, pybin, *, auth=True):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.auth = auth
        self.conf = self.workdir / "httpd.conf"
        self.conf.write_text(f"/cgi-bin:{USER}:{PASSWORD}\n" if auth else "")
        self.webui_conf = self.workdir / "webui.conf"
        self.webui_conf.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        self.port = sipnet.free_port("tcp")
        env = dict(cgi_env_base(pybin), SER_WEBUI_CONF=str(self.webui_conf))
        self.log = open(self.workdir / "httpd.log", "wb")
        self.proc = subprocess.Popen([busybox, "httpd", "-f", "-vv", "-p", f"127.0.0.1:{self.port}",
                                      "-h", str(DOCROOT), "-c", str(self.conf)],
                                     env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        sipnet.wait_bound("tcp", sipnet.V4, self.port, HTTPD_TIMEOUT, self.proc, "busybox httpd")

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path="/cgi-bin/ser", with_auth=True):
        cred = f"{USER}:{PASSWORD}@" if self.auth and with_auth else ""
        return f"http://{cred}127.0.0.1:{self.port}{path}"

    def request(self, method, path="/cgi-bin/ser", body=None, headers=None, auth=True):
        """(status, headers dict with lower-case names, body text)."""
        hdrs = dict(headers or {})
        if auth and self.auth:
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            hdrs["Authorization"] = f"Basic {token}"
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read().decode("utf-8", "replace")
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def get(self, path="/cgi-bin/ser", **kw):
        return self.request("GET", path, **kw)

    def post(self, fields, path="/cgi-bin/ser", origin=True, headers=None, **kw):
        body = "&".join(f"{k}={v}" for k, v in fields.items())
        hdrs = dict(headers or {})
        if origin:
            hdrs.setdefault("Origin", self.origin)
        return self.request("POST", path, body=body, headers=hdrs, **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def webui(ser, tmp_path, busybox, pybin):
    """start(server, auth=True, **settings) -> a running Httpd whose CGI talks to `server`,
    restarts it through a Restarter (httpd.restarter) and keeps its secret in tmp_path."""
    started = []

    def start(server, *, auth=True, restarter=None, **settings):
        if restarter is None:
            restarter = Restarter(server)
        conf = {"SER_UNIX_SOCK": server.ctl_sock,
                "SER_WEBUI_SECRET": str(tmp_path / "webui.secret"),
                "SER_RESTART_CMD": restarter.command,
                "SER_WEBUI_UBUS": ""}
        conf.update(settings)
        httpd = Httpd(busybox, tmp_path / f"httpd{len(started) + 1}", conf, pybin, auth=auth)
        httpd.restarter = restarter
        started.append(httpd)
        return httpd

    yield start
    for httpd in started:
        httpd.stop()
        httpd.restarter.close()
