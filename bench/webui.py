"""How fast the status page is made: the CGI run as the web server runs it (a new process
with the CGI variables, python3-light's module set) against a serlite with phones and traffic,
and the request handled in-process.  Prints medians; asserts nothing.

    python3 -m bench.webui [RUNS]
"""

import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from serlite import webui                       # noqa: E402
from tests.e2e import sipnet                    # noqa: E402

CGI = REPO / "webui" / "www" / "cgi-bin" / "ser"
PYLIGHT = sipnet.PYLIGHT


def main(argv):
    runs = int(argv[1]) if len(argv) > 1 else 20
    work = Path(tempfile.mkdtemp(prefix="serlite-webui-bench"))
    config = (REPO / "tests" / "webui" / "webui.cfg").read_text()
    server = sipnet.SerServer(work / "ser", config.replace("@DB_URL@", f"dbtext://{work}/db"))
    server.start()
    try:
        with sipnet.UdpPeer() as peer:
            for user in ("alice", "bob", "carol"):
                uri = f"sip:{user}@127.0.0.1:{server.port}"
                peer.send(sipnet.make_request(
                    "REGISTER", f"sip:127.0.0.1:{server.port}", via=(peer.host, peer.port),
                    to=uri, headers=[f"Contact: <sip:{user}@127.0.0.1:5071>"]), server.addr)
                peer.recv_until(sipnet.is_final, 5)
            for _ in range(7):
                peer.send(sipnet.options(server.addr, peer), server.addr)
                peer.recv_until(sipnet.is_final, 5)
        environ = {"REQUEST_METHOD": "GET", "QUERY_STRING": "", "SCRIPT_NAME": "/cgi-bin/ser",
                   "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
                   "HTTP_HOST": "127.0.0.1", "REMOTE_USER": "admin",
                   "SER_WEBUI_CONF": str(work / "none.conf"), "SER_UNIX_SOCK": server.ctl_sock,
                   "SER_WEBUI_SECRET": str(work / "webui.secret"), "SER_WEBUI_UBUS": ""}
        bindir = work / "bin"
        bindir.mkdir()
        (bindir / "python3").symlink_to(sys.executable)     # the CGI's shebang finds it
        env = dict(environ, PATH=f"{bindir}:/usr/bin:/bin", LANG="C.UTF-8",
                   PYTHONPATH=str(PYLIGHT) if PYLIGHT.is_dir() else "")
        times = []
        for _ in range(runs + 1):               # the first run also writes the .pyc files
            t0 = time.perf_counter()
            out = subprocess.run([str(CGI)], env=env, stdin=subprocess.DEVNULL,
                                 capture_output=True, timeout=30)
            times.append((time.perf_counter() - t0) * 1000)
            if not out.stdout.startswith(b"Status: 200 OK"):
                sys.exit(f"the CGI failed: {out.stderr.decode(errors='replace')}")
        process_ms = statistics.median(times[1:])
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            webui.handle(environ, io.BytesIO(), time.time())
            times.append((time.perf_counter() - t0) * 1000)
        print(f"status page, median of {runs}: the CGI as a process {process_ms:.1f} ms "
              f"(python3-light module set: {'yes' if PYLIGHT.is_dir() else 'no'}), "
              f"in-process {statistics.median(times):.2f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    os.chdir(REPO)
    main(sys.argv)
