"""The CGI alone, run as the web server runs it (a new python3-light process with the CGI
variables) against a serlite with phones and traffic, and the request handled in-process.

How fast that is, is a benchmark, not a test: `python3 -m bench.webui` prints the medians.
"""

import io
import subprocess
import time

from serlite import webui

from .conftest import CGI, cgi_env_base
from .test_status_page import register_phones, send_options, start

RUNS = 3


def cgi_environ(server, tmp_path):
    return {"REQUEST_METHOD": "GET", "QUERY_STRING": "", "SCRIPT_NAME": "/cgi-bin/ser",
            "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1", "REMOTE_USER": "admin",
            "SER_WEBUI_CONF": str(tmp_path / "none.conf"), "SER_UNIX_SOCK": server.ctl_sock,
            "SER_WEBUI_SECRET": str(tmp_path / "webui.secret"), "SER_WEBUI_UBUS": ""}


def test_the_cgi_runs_as_the_web_server_runs_it(ser, tmp_path, pybin):
    server = start(ser, tmp_path)
    send_options(server, 7)
    register_phones(server, tmp_path)
    environ = cgi_environ(server, tmp_path)

    env = dict(cgi_env_base(pybin), **environ)
    for _ in range(RUNS):
        out = subprocess.run([str(CGI)], env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, timeout=30)
        assert out.returncode == 0 and out.stdout.startswith(b"Status: 200 OK"), out.stderr
        assert b'id="phones"' in out.stdout
        response = webui.handle(environ, io.BytesIO(), time.time())
        assert response.status == 200
