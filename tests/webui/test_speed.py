"""The page is made in well under 100 ms: the CGI alone, run as the web server runs it (a new
python3-light process with the CGI variables) against a serlite with phones and traffic, and
the request handled in-process (what the CGI does once Python has started).

Medians of RUNS; the numbers are printed (pytest -s shows them).
"""

import io
import statistics
import subprocess
import time

from serlite import webui

from .conftest import CGI, cgi_env_base
from .test_status_page import register_phones, send_options, start

RUNS = 20
LIMIT_PROCESS_MS = 100
LIMIT_IN_PROCESS_MS = 25


def cgi_environ(server, tmp_path):
    return {"REQUEST_METHOD": "GET", "QUERY_STRING": "", "SCRIPT_NAME": "/cgi-bin/ser",
            "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1", "REMOTE_USER": "admin",
            "SER_WEBUI_CONF": str(tmp_path / "none.conf"), "SER_UNIX_SOCK": server.ctl_sock,
            "SER_WEBUI_SECRET": str(tmp_path / "webui.secret"), "SER_WEBUI_UBUS": ""}


def test_the_cgi_is_fast(ser, tmp_path, pybin):
    server = start(ser, tmp_path)
    send_options(server, 7)
    register_phones(server, tmp_path)
    environ = cgi_environ(server, tmp_path)

    env = dict(cgi_env_base(pybin), **environ)
    times = []
    for _ in range(RUNS + 1):               # the first run also writes the .pyc files
        t0 = time.perf_counter()
        out = subprocess.run([str(CGI)], env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, timeout=30)
        times.append((time.perf_counter() - t0) * 1000)
        assert out.returncode == 0 and out.stdout.startswith(b"Status: 200 OK"), out.stderr
        assert b'id="phones"' in out.stdout
    process_ms = statistics.median(times[1:])

    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        response = webui.handle(environ, io.BytesIO(), time.time())
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status == 200
    in_process_ms = statistics.median(times)

    print(f"\nstatus page, median of {RUNS}: CGI process {process_ms:.1f} ms "
          f"(python3-light {'on' if 'PYTHONPATH' in env else 'off'}), "
          f"in-process {in_process_ms:.2f} ms")
    assert process_ms < LIMIT_PROCESS_MS
    assert in_process_ms < LIMIT_IN_PROCESS_MS
