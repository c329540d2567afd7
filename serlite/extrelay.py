"""An external media relay's control socket (rtpproxy, rtpengine ``--listen-udp``): the I/O
edge of serlite.media.rtpp (beside relay.py, the built-in relay's sockets).

One non-blocking UDP socket, connected to ``rtpproxy_sock`` and registered with the server's
one poll loop.  ``send(command, callback)`` never waits: the command goes out with a fresh
cookie, is sent again every ``timeout`` seconds up to ``tries`` times in all (Kamailio's
``rtpproxy_tout`` and ``rtpproxy_retr``), and ``callback(tokens)`` gets the reply's tokens,
matched by cookie, or ``callback(None)`` when no reply came, the relay refused the socket
(ICMP port unreachable: nothing listens there) or we are closing.  A relay that failed so is
left alone for ``disable_time`` seconds (Kamailio's ``rtpproxy_disable_tout``): ``send``
returns False at once and the caller goes on without it; after that the next command tries
again.  Cookies are a random prefix (new at each start: the relay keeps its replies by cookie
for a while) and a counter.  Bounded: ``MAX_PENDING`` commands in flight; past it ``send``
returns False.

At start (``check``) ``V`` and ``VF`` are sent the same way and their answers logged: the
loop never waits for the relay, not even at start-up.

Counters (``ser-ctl stats``): rtpp_commands (sent, first tries), rtpp_retransmissions,
rtpp_timeouts (commands without a reply), rtpp_errors (replies that said no), rtpp_unrelayed
(messages that went on with their SDP unchanged: counted by the rtpproxy module).
"""

import errno
import os
import socket

from . import log
from .media import rtpp

MAX_PENDING = 256
_BUF = 4096


class _Command:
    __slots__ = ("data", "callback", "tries", "timer", "sent_at")

    def __init__(self, data, callback, tries):
        self.data = data
        self.callback = callback
        self.tries = tries
        self.timer = None
        self.sent_at = 0.0


class ExternalRelay:
    def __init__(self, loop, stats, sock, timeout, tries, disable_time):
        """``sock``: a media.rtpp.Sock (its host an address, or a name looked up once, here,
        at start)."""
        self.loop = loop
        self.stats = stats
        self.sock_spec = sock
        self.timeout = float(timeout)
        self.tries = int(tries)
        self.disable_time = float(disable_time)
        self.pending = {}           # cookie -> _Command
        self.down_until = None      # the relay failed: left alone until then
        self._prefix = os.urandom(4).hex()
        self._seq = 0
        family = socket.AF_INET6 if sock.family == "udp6" else socket.AF_INET
        host = sock.host
        if host.lower() == "localhost":
            host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        try:
            # an address only (AI_NUMERICHOST asks no resolver): a name would be looked up
            # blocking, at start and at every SIGHUP, in the loop's thread
            info = socket.getaddrinfo(host, sock.port, family, socket.SOCK_DGRAM, 0,
                                      socket.AI_NUMERICHOST)
        except OSError:
            raise ValueError(f"rtpproxy_sock {sock}: name the relay by its address "
                             f"(udp:127.0.0.1:7722, udp6:[::1]:7722), not "
                             f"{sock.host!r}") from None
        self.address = info[0][4]
        self.ip = self.address[0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        # connected: only the relay's datagrams are read, and an ICMP port unreachable is
        # reported (ECONNREFUSED) rather than waited out
        self.sock.connect(self.address)
        loop.add_reader(self.sock.fileno(), self._read)
        for name in ("rtpp_commands", "rtpp_retransmissions", "rtpp_timeouts", "rtpp_errors",
                     "rtpp_unrelayed"):
            stats.counters.setdefault(name, 0)

    def __str__(self):
        return str(self.sock_spec)

    # -- commands ---------------------------------------------------------------------------
    def cookie(self):
        self._seq += 1
        return f"{self._prefix}_{self._seq}"

    def usable(self):
        """False while the relay is left alone after a failure."""
        if self.down_until is None:
            return True
        if self.loop.time() >= self.down_until:
            self.down_until = None
            return True
        return False

    def send(self, build, callback):
        """Send the command ``build(cookie)`` makes; ``callback(tokens or None)`` later (never
        from within this call).  False, and no callback, when it cannot go now (the relay is
        left alone, too many in flight, the socket refused it)."""
        if self.sock is None or not self.usable() or len(self.pending) >= MAX_PENDING:
            return False
        cookie = self.cookie()
        command = _Command(build(cookie), callback, self.tries)
        self.pending[cookie] = command
        self.stats.counters["rtpp_commands"] += 1
        self._transmit(cookie, command)
        return True

    def _transmit(self, cookie, command):
        command.tries -= 1
        command.sent_at = self.loop.time()
        command.timer = self.loop.call_at(command.sent_at + self.timeout, self._expire, cookie)
        try:
            self.sock.send(command.data)
        except (BlockingIOError, InterruptedError):
            pass                    # as good as lost: the timer sends it again
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                self.loop.call_later(0, self._refused)  # not from within send()
            else:
                log.limited(("rtpp-send",), log.WARN,
                            f"rtpproxy: cannot send to {self}: {exc}")

    def _expire(self, cookie):
        command = self.pending.get(cookie)
        if command is None:
            return
        if command.tries > 0:
            self.stats.counters["rtpp_retransmissions"] += 1
            self._transmit(cookie, command)
            return
        del self.pending[cookie]
        self.stats.counters["rtpp_timeouts"] += 1
        self._failed(f"no reply from {self} in {self.tries} tries "
                     f"{self.timeout:g} s apart")
        command.callback(None)

    def _failed(self, why):
        if self.disable_time > 0 and self.down_until is None:
            self.down_until = self.loop.time() + self.disable_time
            why += f"; not asked for {self.disable_time:g} s"
        log.limited(("rtpp-down",), log.WARN, f"rtpproxy: {why} (calls go on without the "
                                              f"relay)")

    def _refused(self):
        """ICMP port unreachable: nothing listens on the relay's socket; every command in
        flight fails now rather than after its tries."""
        self._failed(f"{self} refuses commands (is the relay running?)")
        self.fail_all()

    def fail_all(self):
        pending, self.pending = self.pending, {}
        for command in pending.values():
            if command.timer is not None:
                command.timer.cancel()
            command.callback(None)

    # -- replies ----------------------------------------------------------------------------
    def _read(self):
        for _ in range(64):
            try:
                data = self.sock.recv(_BUF)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNREFUSED:
                    self._refused()
                    continue
                return
            try:
                cookie, tokens = rtpp.split_reply(data)
            except rtpp.RtppError:
                continue
            command = self.pending.pop(cookie, None)
            if command is None:
                continue            # a reply to a retransmission answered already
            command.timer.cancel()
            command.callback(tokens)

    # -- start and end ----------------------------------------------------------------------
    def check(self):
        """``V`` and ``VF``: what the relay is, logged when it answers (nothing waits)."""
        def version(tokens):
            if tokens is None:
                return      # _failed logged it
            got = b" ".join(tokens)
            if got != rtpp.PROTOCOL_VERSION:
                log.limited(("rtpp-version",), log.WARN,
                            f"rtpproxy: {self} speaks protocol {got[:40]!r}, not "
                            f"{rtpp.PROTOCOL_VERSION.decode()}: it may not understand us")
            else:
                log.info(f"rtpproxy: the relay at {self} speaks protocol {got.decode()}")

        def capability(tokens):
            if tokens is not None and tokens[:1] != [b"1"]:
                log.limited(("rtpp-cap",), log.NOTICE,
                            f"rtpproxy: {self} lacks capability "
                            f"{rtpp.CAP_DIRECTIONS.decode()} (the i/e direction flags)")
        self.send(rtpp.version, version)
        self.send(rtpp.capability, capability)

    def close(self):
        if self.sock is None:
            return
        self.fail_all()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.sock = None
