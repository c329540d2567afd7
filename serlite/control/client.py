"""Talking to a running server over its control socket: what ``ser-ctl`` and the status page
use.  One request a line, one answer a line (see ``unixsock.py``)."""

import json
import os
import socket

from .unixsock import DEFAULT_PATH


class NotRunning(Exception):
    """No server answers on the control socket."""


class CommandFailed(Exception):
    """The server answered with an error."""


def socket_path(explicit=None):
    """``-s PATH``, else $SER_UNIX_SOCK, else /var/run/ser/ser.sock."""
    return explicit or os.environ.get("SER_UNIX_SOCK") or DEFAULT_PATH


class Client:
    def __init__(self, path=None, timeout=5.0):
        self.path = socket_path(path)
        self.timeout = timeout
        self._sock = None
        self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise NotRunning(f"serlite is not running (no answer on {self.path}: "
                             f"{exc.strerror})") from None
        except OSError as exc:
            sock.close()
            raise NotRunning(f"cannot reach serlite on {self.path}: {exc.strerror or exc}") \
                from None
        self._sock = sock
        self._file = sock.makefile("rwb")

    def call(self, cmd, *args):
        """Run one command; returns its result or raises CommandFailed / NotRunning."""
        if self._sock is None:
            self.connect()
        try:
            self._file.write((json.dumps({"cmd": cmd, "args": list(args)}) + "\n").encode())
            self._file.flush()
            line = self._file.readline()
        except OSError as exc:
            raise NotRunning(f"serlite stopped answering on {self.path}: {exc}") from None
        if not line:
            raise NotRunning(f"serlite closed the control socket {self.path}")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise CommandFailed(answer.get("error", "failed"))
        return answer.get("result")

    def close(self):
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None
