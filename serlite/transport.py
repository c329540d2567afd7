"""UDP and TCP sockets on IPv4 and IPv6: bytes in, bytes out (RFC 3261 18).

Owns the listening sockets (``Listener``), the TCP connection table with its limits and
deadlines, and TCP framing by Content-Length.  A TLS connection is a TCP connection whose
``tls`` is a ``tls.TlsSession``: the same table, limits, framing and deadlines (its handshake
must be done within ``tcp_msg_data_timeout``, as a TCP connection's first message must
begin), the bytes passed through the session between the socket and the framing.

The TCP table is bounded against slowloris (many connections that never finish a message), with
Kamailio's core parameters: at most ``tcp_max_connections`` in all and ``tcp_accept_iplimit``
from one source address; a new connection must send within ``tcp_msg_data_timeout`` s and a
message must be whole ``tcp_msg_read_timeout`` s after its first byte, else the connection is
closed; an idle one goes after ``tcp_connection_lifetime`` s.  When the table is full a new
connection takes the place of one that has not yet delivered a whole message (from the address
holding the most, the oldest first), so connections that only trickle cannot lock phones out;
when every one has, the least active one of the address holding the most (more than MAX_SHARE),
so a few addresses that each sent one message cannot either.  Hands every complete message to ``on_message(data,
source)`` and knows nothing of SIP beyond framing.
"""

import errno
import socket
import sys

from . import log, netif, tls as _tls
from .sip.errors import ParseError
from .sip.message import frame

UDP_MAX = 65535
# Linux: u32 [0] bytes queued to read, [1] the receive buffer's size (both as the kernel counts)
_SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
RECV_BATCH = 64            # datagrams read per wake-up: batch work, but stay fair to TCP/timers
_UDP_SOURCES_MAX = 1024    # peer addresses whose Source is kept (see Transport._udp_sources)
UDP_RCVBUF = 512 * 1024    # room for a burst while the loop is busy (Kamailio's default too)
_ROUTE_CACHE_MAX = 256     # mhomed: destination IPs whose source address is kept


class Source:
    """Where a message came from: transport (``"udp"``/``"tcp"``), peer ip and port, and the
    local listening socket (``Listener``) or TCP connection it arrived on."""

    __slots__ = ("proto", "ip", "port", "local", "conn")

    def __init__(self, proto, ip, port, local=None, conn=None):
        self.proto = proto
        self.ip = ip
        self.port = port
        self.local = local
        self.conn = conn

    def __repr__(self):
        return f"Source({self.proto}:{self.ip}:{self.port})"


class Listener:
    """One bound socket: ``udp:127.0.0.1:5060``.  ``host`` is what goes into Via/Record-Route."""

    __slots__ = ("proto", "family", "ip", "port", "sock", "name", "host", "backlog")

    def __init__(self, proto, family, ip, port, sock):
        self.proto = proto
        self.family = family
        self.ip = ip
        self.port = port
        self.sock = sock
        self.host = f"[{ip}]" if family == socket.AF_INET6 else ip
        self.name = f"{proto}:{self.host}:{port}"
        self.backlog = 0.0      # UDP: how full its receive buffer was after the last read

    def __repr__(self):
        return f"Listener({self.name})"


class ListenSpecError(ValueError):
    pass


def parse_listen(spec, default_port=5060):
    """``udp:127.0.0.1:5060``, ``tcp:[::1]:5070``, ``127.0.0.1``, ``eth0``, ``udp:eth0:5060`` ->
    list of (proto, ip, port).  Without a protocol both UDP and TCP are bound, as SER does."""
    spec = spec.strip().strip('"')
    protos = ("udp", "tcp")
    head, sep, rest = spec.partition(":")
    if sep and head.lower() in ("udp", "tcp", "tls", "sctp"):
        if head.lower() == "sctp":
            raise ListenSpecError(f"{spec}: {head} is not supported (udp, tcp and tls are)")
        protos = (head.lower(),)
        if protos == ("tls",) and default_port == 5060:
            default_port = _tls.DEFAULT_PORT      # RFC 3261 19.1.2
        spec = rest
    port = default_port
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0:
            raise ListenSpecError(f"{spec}: unterminated IPv6 reference")
        host, tail = spec[1:end], spec[end + 1:]
        if tail:
            if not tail.startswith(":") or not tail[1:].isdigit():
                raise ListenSpecError(f"{spec}: bad port")
            port = int(tail[1:])
    elif spec.count(":") == 1:
        host, p = spec.split(":")
        if not p.isdigit():
            raise ListenSpecError(f"{spec}: bad port {p!r}")
        port = int(p)
    else:
        host = spec  # a bare IPv6 address has several colons and no port
    if not 0 < port < 65536:
        raise ListenSpecError(f"{spec}: port {port} out of range")
    ips = interface_addresses(host)
    if ips is None:
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        except OSError:
            raise ListenSpecError(f"{host!r} is neither an IP address nor a network interface "
                                  f"(interfaces: {', '.join(n for _, n in socket.if_nameindex())})")
        ips = [host]
    return [(proto, ip, port) for ip in ips for proto in protos]


def interface_addresses(name):
    """The IPv4 and IPv6 addresses of interface ``name``, or None if there is no such interface."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return None
    return [address for address, _, _ in netif.addresses([name])]


def all_interface_specs(port):
    """Every address of every interface, SER's default when no ``listen=`` is given."""
    out = []
    for ip, _, _ in netif.addresses():
        out += [("udp", ip, port), ("tcp", ip, port)]
    return out


MAX_SHARE = 2       # connections of one address never evicted for a newcomer from another


class TcpConnection:
    __slots__ = ("sock", "ip", "port", "listener", "inbuf", "outbuf", "last", "connecting",
                 "closed", "opened", "started", "proven", "tls", "proto")

    def __init__(self, sock, ip, port, listener, now, connecting=False, tls=None):
        self.sock = sock
        self.ip = ip
        self.port = port
        self.listener = listener
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.last = now
        self.connecting = connecting
        self.closed = False
        self.opened = now
        self.started = 0.0      # when the first byte of the unfinished message came (0: none)
        # a whole message came over it (or serlite opened it): never evicted for a newcomer
        self.proven = connecting
        self.tls = tls          # its TlsSession, or None for plain TCP
        self.proto = "tcp" if tls is None else "tls"


def _filled(sock, before):
    """How full UDP socket ``sock``'s receive buffer is with unread datagrams, 0.0-1.0 (kernel
    accounting, its overhead per datagram included): Linux's SO_MEMINFO; elsewhere a guess
    of 1 kB a datagram for each full batch in a row (``before``: the last answer) while any
    is waiting."""
    try:
        meminfo = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 8)
        queued = int.from_bytes(meminfo[:4], sys.byteorder)
        size = int.from_bytes(meminfo[4:8], sys.byteorder)
        return queued / size if size else 0.0
    except OSError:
        pass
    try:
        waiting = sock.recv(1, socket.MSG_PEEK)
        size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    except OSError:         # BlockingIOError: nothing (an ICMP error: nothing to read)
        return 0.0
    return min(1.0, before + RECV_BATCH * 1024 / size) if waiting and size else 0.0


class Transport:
    """All sockets of the server.  ``on_message(data: bytes, source: Source)`` gets each message;
    ``on_bad_frame(head: bytes, source, error: ParseError)`` gets the header part of a TCP
    message that cannot be framed (over the size limit: 513; a bad Content-Length: 400), just
    before its connection is closed."""

    def __init__(self, loop, on_message, on_bad_frame=None, max_message=65535,
                 max_connections=256, idle_timeout=120.0, per_address=32,
                 msg_read_timeout=10.0, msg_data_timeout=10.0):
        self.loop = loop
        self.on_message = on_message
        self.on_bad_frame = on_bad_frame
        self.max_message = max_message
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.per_address = per_address
        self.msg_read_timeout = msg_read_timeout
        self.msg_data_timeout = msg_data_timeout
        # the sweep looks at every connection this often: a deadline is kept within a quarter
        self._sweep_every = max(0.25, min(idle_timeout, msg_read_timeout, msg_data_timeout) / 4)
        self.listeners = []
        self.connections = {}        # (ip, port) -> TcpConnection
        self._per_ip = {}            # ip -> how many of the connections are with it
        # Listener -> {peer address: Source}: a phone sends every datagram from the same
        # address, so its Source is made once (Sources are never changed once made)
        self._udp_sources = {}
        self._sweep = None
        # SER's mhomed: 1 sends from the listener whose address the kernel's routing table
        # gives as the source toward the destination (_routed_source); 0 from the first one
        self.mhomed = False
        self._route_sources = {}     # destination IP -> source IP the kernel chose (or None)
        self.tls = None              # tls.TlsContexts when TLS is configured (the server sets it)
        # on_connect_failed(proto, ip, port, reason): a connection serlite opened failed before
        # it carried anything (refused, TLS certificate refused): tm fails its branches at once
        self.on_connect_failed = None

    # -- set-up -----------------------------------------------------------------------------
    def bind(self, proto, ip, port):
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
        try:
            if proto != "udp":  # TIME_WAIT must not block a restart; UDP must not double-bind
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            else:               # the kernel caps it at net.core.rmem_max: a wish, not a must
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((ip, port))
            if proto != "udp":
                sock.listen(64)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        listener = Listener(proto, family, ip, sock.getsockname()[1], sock)
        self.listeners.append(listener)
        if proto == "udp":
            self.loop.add_reader(sock.fileno(), lambda: self._read_udp(listener))
        else:
            self.loop.add_reader(sock.fileno(), lambda: self._accept(listener))
        return listener

    def close(self):
        for conn in list(self.connections.values()):
            self._close_conn(conn)
        for lst in self.listeners:
            self.loop.remove_reader(lst.sock.fileno())
            lst.sock.close()
        self.listeners = []
        self._udp_sources = {}

    def listener_for(self, proto, family, ip=None):
        """Our socket of ``proto`` and ``family`` to send to ``ip`` from: with ``mhomed`` the
        one on the address the kernel would send from (its route toward ``ip``), else (or
        when none is on it) the first one, as SER does."""
        if ip is not None and self.mhomed:
            source = self._route_sources.get(ip, False)
            if source is False:
                source = self._routed_source(family, ip)
            if source is not None:
                for lst in self.listeners:
                    if lst.ip == source and lst.proto == proto:
                        return lst
        for lst in self.listeners:
            if lst.proto == proto and lst.family == family:
                return lst
        return None

    def _routed_source(self, family, ip):
        """The address the kernel picks as the source toward ``ip``: connect() of a UDP socket
        only looks up the route (it sends nothing and never blocks), getsockname() tells.
        Kept per destination, in a bounded table (cleared when full: routes rarely change)."""
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((ip, 9))
                source = probe.getsockname()[0]
        except OSError:         # no route (yet): the first listener, and ask again next time
            return None
        if ":" in source:
            source = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6,
                                                                        source.split("%")[0]))
        if len(self._route_sources) >= _ROUTE_CACHE_MAX:
            self._route_sources.clear()
        self._route_sources[ip] = source
        return source

    # -- UDP --------------------------------------------------------------------------------
    def _read_udp(self, listener):
        recv = listener.sock.recvfrom
        sources = self._udp_sources.get(listener)
        if sources is None:
            sources = self._udp_sources[listener] = {}
        for _ in range(RECV_BATCH):
            try:
                data, addr = recv(UDP_MAX)
            except (BlockingIOError, InterruptedError):
                listener.backlog = 0.0
                return
            except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
                log.debug(f"{listener.name}: recvfrom: {exc}")
                continue
            if len(data) < 4:   # keepalive pings (CRLF, 4-byte NAT pings): nothing to route
                continue
            source = sources.get(addr)
            if source is None:
                if len(sources) >= _UDP_SOURCES_MAX:
                    sources.clear()     # bounded: a flood from many addresses costs no memory
                source = sources[addr] = Source("udp", addr[0], addr[1], listener)
            self.on_message(data, source)
        # how full this socket's receive buffer was left after a full read batch (0.0-1.0; 0
        # once a read finds it empty): how far the server is behind what this socket is
        # offered, before the kernel drops its datagrams (tm sheds new requests that come in
        # on a socket past its shed_backlog)
        listener.backlog = _filled(listener.sock, listener.backlog)

    # -- TCP --------------------------------------------------------------------------------
    def _accept(self, listener):
        for _ in range(16):
            try:
                sock, addr = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.limited(("accept", listener.name), log.WARN, f"{listener.name}: accept: {exc}")
                return
            if self._per_ip.get(addr[0], 0) >= self.per_address:
                log.limited(("tcp-iplimit", addr[0]), log.WARN,
                            f"{listener.name}: {addr[0]} has {self.per_address} TCP connections "
                            f"(tcp_accept_iplimit), refusing one more")
                sock.close()
                continue
            if len(self.connections) >= self.max_connections and \
                    not self._evict_one(addr[0]):
                log.limited("tcp-limit", log.WARN,
                            f"{listener.name}: {len(self.connections)} TCP connections open, "
                            f"refusing {addr[0]}:{addr[1]}")
                sock.close()
                continue
            sock.setblocking(False)
            session = None
            if listener.proto == "tls":
                if self.tls is None or self.tls.server is None:     # the start refuses this
                    sock.close()
                    continue
                session = self.tls.server_session()
            conn = TcpConnection(sock, addr[0], addr[1], listener, self.loop.time(),
                                 tls=session)
            self._add_conn(conn)

    def _add_conn(self, conn):
        old = self.connections.get((conn.ip, conn.port))
        if old is not None:
            self._close_conn(old)
        self.connections[(conn.ip, conn.port)] = conn
        self._per_ip[conn.ip] = self._per_ip.get(conn.ip, 0) + 1
        self.loop.add_reader(conn.sock.fileno(), lambda: self._read_tcp(conn))
        if self._sweep is None:
            self._sweep = self.loop.call_later(self._sweep_every, self._sweep_idle)

    def _close_conn(self, conn):
        if conn.closed:
            return
        conn.closed = True
        fd = conn.sock.fileno()
        self.loop.remove_reader(fd)
        self.loop.remove_writer(fd)
        conn.sock.close()
        if self.connections.get((conn.ip, conn.port)) is conn:
            del self.connections[(conn.ip, conn.port)]
            left = self._per_ip[conn.ip] - 1
            if left:
                self._per_ip[conn.ip] = left
            else:
                del self._per_ip[conn.ip]

    def _evict_one(self, newcomer):
        """The table is full: close the connection that has not yet delivered a whole message,
        from the address holding the most connections, the oldest first; when every one has,
        the least recently active of the address holding the most, if that is more than
        MAX_SHARE and more than the ``newcomer``'s address would then hold.  False when there
        is none (phones, or the newcomer's own: the newcomer is refused instead)."""
        per_ip = self._per_ip
        victim, worst = None, None
        for conn in self.connections.values():
            if conn.proven:
                continue
            rank = (per_ip[conn.ip], -conn.opened)
            if worst is None or rank > worst:
                victim, worst = conn, rank
        why = "which has not sent a whole message"
        if victim is None:
            # Every one has: one message is cheap, so a few addresses holding
            # tcp_accept_iplimit connections each would still lock everyone else out.  The
            # address holding the most gives up its least recently active, if it holds more
            # than MAX_SHARE (a phone holds one, two with one we opened to it) and more than
            # the newcomer's would then (not one of its own for another of its own).
            floor = max(MAX_SHARE, per_ip.get(newcomer, 0) + 1)
            for conn in self.connections.values():
                n = per_ip[conn.ip]
                if n <= floor:
                    continue
                rank = (n, -conn.last)
                if worst is None or rank > worst:
                    victim, worst = conn, rank
            why = f"the least active of {worst[0]} from its address" if victim else why
        if victim is None:
            return False
        log.limited(("tcp-evict", victim.ip), log.WARN,
                    f"TCP table full ({len(self.connections)}): closing {victim.ip}:{victim.port}, "
                    f"{why}, for a new connection")
        self._close_conn(victim)
        return True

    def _sweep_idle(self):
        now = self.loop.time()
        for conn in list(self.connections.values()):
            if conn.tls is not None and not conn.tls.established and \
                    now - conn.opened > self.msg_data_timeout:
                # a connection of ours too: a peer that never finishes the handshake holds
                # the request that waits for it
                why = f"TLS handshake unfinished after {self.msg_data_timeout:g} s"
                log.limited(("tls-deadline", conn.ip), log.WARN,
                            f"closing TLS connection {conn.ip}:{conn.port}: {why}")
                self._fail_conn(conn, why)
                continue
            if conn.outbuf:
                continue
            if conn.started and now - conn.started > self.msg_read_timeout:
                why = f"a message unfinished after {self.msg_read_timeout:g} s"
            elif not conn.proven and not conn.started and \
                    now - conn.opened > self.msg_data_timeout:
                why = f"nothing sent for {self.msg_data_timeout:g} s"
            elif now - conn.last > self.idle_timeout:
                why = "idle"
            else:
                continue
            log.limited(("tcp-deadline", conn.ip), log.DBG if why == "idle" else log.WARN,
                        f"closing {conn.proto.upper()} connection {conn.ip}:{conn.port}: {why}")
            self._close_conn(conn)
        # re-arm only while there are connections: an idle server must not wake up
        self._sweep = (self.loop.call_later(self._sweep_every, self._sweep_idle)
                       if self.connections else None)

    def _read_tcp(self, conn):
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug(f"{conn.proto.upper()} {conn.ip}:{conn.port}: {exc}")
            self._fail_conn(conn, exc.strerror or str(exc))
            return
        if not data:
            self._fail_conn(conn, "closed by the peer")
            return
        conn.last = self.loop.time()
        if conn.tls is not None:
            data = self._tls_in(conn, data)
            if not data:
                return
        if not conn.inbuf:
            conn.started = conn.last    # the first byte of a message: tcp_msg_read_timeout
        conn.inbuf += data
        source = Source(conn.proto, conn.ip, conn.port, conn.listener, conn)
        while conn.inbuf and not conn.closed:
            try:
                size = frame(conn.inbuf, self.max_message)
            except ParseError as exc:
                # framing is lost (too large: 513; Content-Length missing, negative, past
                # 2**31, not a number: 400): answer, then close (RFC 3261 18.3)
                if self.on_bad_frame is not None:
                    end = conn.inbuf.find(b"\r\n\r\n")
                    # the header section may itself be what is too large: answer from what came
                    head = bytes(conn.inbuf[:end + 4] if end >= 0 else conn.inbuf)
                    self.on_bad_frame(head, source, exc)
                log.limited(("tcp-frame", conn.ip), log.WARN,
                            f"TCP {conn.ip}:{conn.port}: {exc.reason}, closing")
                self._close_conn(conn)
                return
            if size is None:
                if len(conn.inbuf) > self.max_message:
                    self._close_conn(conn)
                return
            msg = bytes(conn.inbuf[:size])
            del conn.inbuf[:size]
            # what is left is the start of the next message: its deadline runs from now
            conn.started = conn.last if conn.inbuf else 0.0
            if msg.strip():
                conn.proven = True
                self.on_message(msg, source)

    def _tls_in(self, conn, data):
        """Ciphertext read from ``conn`` -> the plaintext it carried (b"" while the handshake
        runs); what TLS has to answer (handshake, tickets) is queued to send.  A TLS failure
        closes the connection and is logged with the peer and why (rate-limited)."""
        session = conn.tls
        was = session.established
        try:
            data, out = session.receive(data)
        except _tls.TlsClosed:
            self._close_conn(conn)
            return b""
        except _tls.TlsError as exc:
            # a client session (ours, outbound) knows the name it checks the certificate for
            way = f"to {conn.ip}:{conn.port} ({session.server_name})" if session.server_name \
                else f"from {conn.ip}:{conn.port}"
            what = "certificate refused" if exc.verify else "TLS failed"
            log.limited(("tls-fail", conn.ip), log.WARN, f"TLS {way}: {what}: {exc.reason}")
            self._fail_conn(conn, f"TLS: {what}: {exc.reason}")
            return b""
        if session.established and not was and log.level >= log.DBG:
            log.debug(f"TLS {conn.ip}:{conn.port}: handshake done ({session.peer() or '-'})")
        if out:
            conn.outbuf += out
            if not conn.connecting:
                self._flush(conn)
        return data

    def _fail_conn(self, conn, why):
        """Close ``conn``; when serlite opened it and it never carried a message, tell
        ``on_connect_failed`` so that what waits for it fails now, not at its timer."""
        opened_by_us = conn.connecting or (conn.tls is not None and conn.proven
                                           and not conn.tls.established)
        self._close_conn(conn)
        if opened_by_us and self.on_connect_failed is not None:
            self.on_connect_failed(conn.proto, conn.ip, conn.port, why)

    def _connect(self, ip, port, proto="tcp", server_name=None):
        if len(self.connections) >= self.max_connections and not self._evict_one(ip):
            log.limited("tcp-limit-out", log.WARN, "too many TCP connections, cannot connect")
            return None
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        session = None
        if proto == "tls":
            if self.tls is None:
                log.limited("tls-off", log.WARN, f"no TLS configured: cannot connect to "
                            f"{ip}:{port} (loadmodule \"tls.so\")")
                return None
            session = self.tls.client_session(server_name or ip)
        listener = self.listener_for(proto, family, ip)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect((ip, port))
        except BlockingIOError:
            pass
        except OSError as exc:
            sock.close()
            log.limited(("connect", ip, port), log.WARN, f"TCP connect to {ip}:{port}: {exc}")
            return None
        conn = TcpConnection(sock, ip, port, listener, self.loop.time(), connecting=True,
                             tls=session)
        if session is not None:
            conn.outbuf += session.start()      # the ClientHello, sent once connected
        self._add_conn(conn)
        return conn

    def _flush(self, conn):
        if conn.closed:
            return
        try:
            sent = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            log.limited(("send", conn.ip, conn.port), log.WARN,
                        f"{conn.proto.upper()} send to {conn.ip}:{conn.port}: {exc}")
            self._fail_conn(conn, exc.strerror or str(exc))
            return
        conn.connecting = False
        del conn.outbuf[:sent]
        fd = conn.sock.fileno()
        if conn.outbuf:
            if len(conn.outbuf) > 4 * self.max_message:  # a peer that never reads
                self._close_conn(conn)
                return
            self.loop.add_writer(fd, lambda: self._flush(conn))
        else:
            self.loop.remove_writer(fd)

    # -- sending ----------------------------------------------------------------------------
    def send(self, proto, ip, port, data, local=None, conn=None, server_name=None):
        """Send one message.  ``local`` is the Listener to send from (UDP), ``conn`` a TCP
        or TLS connection to prefer (RFC 3261 18.2.2: a response goes back on the one its
        request came on); else one to ``ip``:``port`` of that protocol is reused or opened
        (TLS: ``server_name``, the URI's host, is what the certificate must name).  Returns
        False when it could not be sent at all."""
        if proto != "udp":
            if conn is None or conn.closed or conn.proto != proto:
                conn = self.connections.get((ip, port))
                if conn is None or conn.proto != proto:
                    conn = self._connect(ip, port, proto, server_name)
                if conn is None:
                    return False
            if conn.tls is not None:
                if len(conn.tls.pending) > 4 * self.max_message:    # a handshake that stalls
                    return False
                try:        # b"" while the handshake runs: kept in TlsSession.pending
                    data = conn.tls.send(data)
                except _tls.TlsError as exc:
                    self._fail_conn(conn, f"TLS: {exc.reason}")
                    return False
            conn.outbuf += data
            conn.last = self.loop.time()
            if conn.connecting:
                self.loop.add_writer(conn.sock.fileno(), lambda: self._flush(conn))
            else:
                self._flush(conn)
            return True
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        if local is None or local.proto != "udp" or local.family != family:
            local = self.listener_for("udp", family, ip)
            if local is None:
                log.limited(("nolistener", family), log.WARN,
                            f"no UDP socket for {ip}: cannot send")
                return False
        try:
            local.sock.sendto(data, (ip, port))
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNREFUSED):
                log.limited(("sendto", ip), log.WARN, f"sendto {ip}:{port}: {exc}")
            return False
