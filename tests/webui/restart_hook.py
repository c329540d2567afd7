"""SER_RESTART_CMD in the tests, standing in for ``/etc/init.d/ser restart``: asks the test
(listening on the Unix socket named by argv[1]) to restart its serlite through the harness, and
exits once that is done -- 0 if the test answered "ok"."""

import socket
import sys

with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
    sock.settimeout(30)
    sock.connect(sys.argv[1])
    sock.sendall(b"restart\n")
    reply = sock.makefile("r").readline().strip()
if reply != "ok":
    print(f"restart failed: {reply or 'no answer'}", file=sys.stderr)
    sys.exit(1)
