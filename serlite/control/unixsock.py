"""The control socket: a Unix stream socket speaking JSON lines (SER's unix_sock, modernised).

A client writes one request a line, ``{"cmd": "stats", "args": []}``, and reads one answer a
line, ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.  Everything is
non-blocking and bounded (clients, line length, output, idle time), so a slow or broken client
can never stall the SIP loop: it is dropped instead.
"""

import errno
import json
import os
import socket
import stat

from .. import log
from ..store.files import make_dirs

MAX_CLIENTS = 16
MAX_LINE = 64 * 1024
MAX_OUTPUT = 4 * 1024 * 1024
IDLE_TIMEOUT = 30.0
DEFAULT_PATH = "/var/run/ser/ser.sock"


class ControlError(Exception):
    """A command failed in a way the client should be told about."""


class _Client:
    __slots__ = ("sock", "inbuf", "outbuf", "last", "closed")

    def __init__(self, sock, now):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.last = now
        self.closed = False


class ControlSocket:
    """Serves ``commands`` (name -> callable(*args) returning something JSON can encode)."""

    def __init__(self, loop, path, commands):
        self.loop = loop
        self.path = path
        self.commands = commands
        self.sock = None
        self.clients = {}       # fd -> _Client
        self._sweep = None

    def open(self):
        """Bind the socket, mode 0600.  A stale socket file (no server behind it) is replaced;
        a live one means another server runs: OSError."""
        directory = os.path.dirname(self.path)
        if directory:
            make_dirs(directory, 0o755)    # parents too: never 0777 under umask 0
        if os.path.exists(self.path):
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise OSError(errno.EEXIST, f"{self.path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
            except OSError:
                os.unlink(self.path)        # stale: left by a server that died
            else:
                raise OSError(errno.EADDRINUSE, f"{self.path}: another server is running")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)         # created 0600: only root may steer the server
        try:
            sock.bind(self.path)
        finally:
            os.umask(old_umask)
        sock.listen(8)
        sock.setblocking(False)
        self.sock = sock
        self.loop.add_reader(sock.fileno(), self._accept)

    def close(self):
        for client in list(self.clients.values()):
            self._drop(client)
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
            try:
                os.unlink(self.path)
            except OSError:
                pass
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    # -- connections ----------------------------------------------------------------------
    def _accept(self):
        try:
            sock, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        if len(self.clients) >= MAX_CLIENTS:
            log.limited("ctl-full", log.WARN, "control socket: too many clients, refusing one")
            sock.close()
            return
        sock.setblocking(False)
        client = _Client(sock, self.loop.time())
        self.clients[sock.fileno()] = client
        self.loop.add_reader(sock.fileno(), lambda: self._read(client))
        if self._sweep is None:
            self._sweep = self.loop.call_later(IDLE_TIMEOUT / 3, self._sweep_idle)

    def _sweep_idle(self):
        now = self.loop.time()
        for client in list(self.clients.values()):
            if now - client.last > IDLE_TIMEOUT:
                self._drop(client)
        self._sweep = (self.loop.call_later(IDLE_TIMEOUT / 3, self._sweep_idle)
                       if self.clients else None)

    def _drop(self, client):
        if client.closed:
            return
        client.closed = True
        fd = client.sock.fileno()
        self.loop.remove_reader(fd)
        self.loop.remove_writer(fd)
        self.clients.pop(fd, None)
        client.sock.close()

    def _read(self, client):
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.last = self.loop.time()
        client.inbuf += data
        while not client.closed:
            end = client.inbuf.find(b"\n")
            if end < 0:
                if len(client.inbuf) > MAX_LINE:     # told why, then dropped: it never ends
                    self._send(client, _answer(False, f"bad request: line longer than "
                                                      f"{MAX_LINE} bytes"))
                    self._drop(client)
                return
            line = bytes(client.inbuf[:end])
            del client.inbuf[:end + 1]
            if line.strip():
                self._send(client, self.execute(line))

    def _send(self, client, answer):
        client.outbuf += answer
        if len(client.outbuf) > MAX_OUTPUT:     # a client that never reads
            self._drop(client)
            return
        self._flush(client)

    def _flush(self, client):
        if client.closed:
            return
        try:
            sent = client.sock.send(client.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(client)
            return
        del client.outbuf[:sent]
        fd = client.sock.fileno()
        if client.outbuf:
            self.loop.add_writer(fd, lambda: self._flush(client))
        else:
            self.loop.remove_writer(fd)

    # -- commands -------------------------------------------------------------------------
    def execute(self, line):
        """One request line -> one answer line (bytes, newline-terminated)."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            name = request.get("cmd")
            args = request.get("args") or []
            if not isinstance(name, str) or not isinstance(args, list):
                raise ValueError('expected {"cmd": NAME, "args": [...]}')
        except ValueError as exc:         # UnicodeDecodeError too
            return _answer(False, f"bad request: {exc}")
        except RecursionError:      # json nests by recursion: 100 000 '[' must not kill the line
            return _answer(False, "bad request: nested too deeply")
        command = self.commands.get(name)
        if command is None:
            return _answer(False, f"unknown command {name!r} (commands: "
                                  f"{', '.join(sorted(self.commands))})")
        try:
            return _answer(True, command(*args))
        except TypeError as exc:
            return _answer(False, f"{name}: bad arguments ({exc})")
        except ControlError as exc:
            return _answer(False, f"{name}: {exc}")
        except Exception as exc:    # a command's own fault: the client still gets its line
            log.limited(("ctl-fail", name), log.ERR, f"control command {name}: {exc!r}")
            return _answer(False, f"{name}: failed ({type(exc).__name__})")


def _answer(ok, value):
    body = {"ok": True, "result": value} if ok else {"ok": False, "error": value}
    return (json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n").encode()
