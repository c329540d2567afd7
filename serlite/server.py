"""The composition root: reads the config, builds the loop, the sockets, the core, the modules and
the script, handles signals (SIGTERM: save and exit; SIGHUP: reload the config), and runs.
"""

import os
import signal
import sys

from . import __version__, log
from .control.stats import Stats
from .loop import Loop
from .proxy.core import Core
from .script.compiler import compile_file
from .script.errors import ConfigError
from .transport import ListenSpecError, Transport, all_interface_specs, parse_listen


class StartError(Exception):
    """The server cannot start (sockets, pid file); the message says why."""


class Server:
    def __init__(self, cfg_path, listen=(), pidfile=None, foreground=True, debug_extra=0,
                 force_stderr=False):
        self.cfg_path = cfg_path
        self.listen_override = list(listen)
        self.pidfile = pidfile
        self.foreground = foreground
        self.debug_extra = debug_extra
        self.force_stderr = force_stderr
        self.loop = None
        self.transport = None
        self.core = None
        self.script = None
        self.control = None
        self.exit_status = 0    # 1 when a module failed to stop cleanly (bindings not saved)

    # -- set-up -------------------------------------------------------------------------------
    def _configure_log(self, script):
        g = script.globals
        debug = int(g.get("debug", 0) or 0) + self.debug_extra
        to_stderr = self.force_stderr or _truthy(g.get("log_stderror", g.get("log_stderr", 0)))
        log.configure(debug=min(debug, log.DBG), stderr=to_stderr)

    def _listen_specs(self, script):
        port = int(script.globals.get("port", 5060) or 5060)
        if not 0 < port < 65536:
            raise StartError(f"port {port} out of range (1-65535)")
        specs = []
        raw = self.listen_override or script.globals.get("listen") or []
        try:
            for item in raw:
                specs += parse_listen(str(item), port)
        except ListenSpecError as exc:
            raise StartError(f"listen: {exc}")
        if not specs:
            specs = all_interface_specs(port)
            if script.globals.get("enable_tls"):    # Kamailio's: TLS on every address too
                tls_port = int(script.globals.get("tls_port_no", 5061))
                specs += [("tls", ip, tls_port) for proto, ip, _ in specs if proto == "tcp"]
        if any(spec[0] == "tls" for spec in specs):
            self._check_tls(script)
        seen, unique = set(), []
        for spec in specs:
            if spec not in seen:
                seen.add(spec)
                unique.append(spec)
        return unique

    def _check_tls(self, script):
        """A TLS listener (``-l tls:...``; the config's own are checked by the compiler, at
        their line) needs ssl and the tls module with a certificate."""
        from . import tls
        if not tls.AVAILABLE:
            raise StartError(f"listen: tls: {tls.NEEDS}")
        module = script.modules.get("tls")
        if module is None or module.contexts.server is None:
            raise StartError('listen: tls: needs loadmodule "tls.so" with modparam("tls", '
                             '"certificate", ...) and "private_key" in the config')

    def check(self):
        """``ser -c``: what start() refuses before it binds, without binding, forking or writing
        anything: the config compiles, the listen addresses parse, there is one at least.
        Returns the compiled script; raises ConfigError or StartError with start()'s words."""
        script = compile_file(self.cfg_path)
        if not self._listen_specs(script):
            raise StartError("no address to listen on")
        return script

    def start(self):
        script = compile_file(self.cfg_path)      # ConfigError goes to the caller
        self._configure_log(script)
        for note in script.notes:
            log.info(note)
        self.loop = Loop()
        started = self.loop.wall()
        self.core = Core(self.loop, None, Stats(started))
        g = script.globals
        if "server_header" in g:
            name, _, value = str(g["server_header"]).partition(":")
            self.core.server_header = (name.strip(), value.strip())
        self.transport = Transport(self.loop, self.core.receive, self._bad_frame,
                                   max_message=int(g.get("max_message_size", 65535) or 65535),
                                   max_connections=int(g.get("tcp_max_connections", 256)),
                                   idle_timeout=float(g.get("tcp_connection_lifetime", 120)),
                                   per_address=int(g.get("tcp_accept_iplimit", 32)),
                                   msg_read_timeout=float(g.get("tcp_msg_read_timeout", 10)),
                                   msg_data_timeout=float(g.get("tcp_msg_data_timeout", 10)))
        self.core.transport = self.transport
        if "tls" in script.modules:
            self.transport.tls = script.modules["tls"].contexts
        for proto, ip, port in self._listen_specs(script):
            try:
                listener = self.transport.bind(proto, ip, port)
            except OSError as exc:
                self.transport.close()
                raise StartError(f"cannot listen on {proto}:{ip}:{port}: {exc.strerror}")
            log.announce(f"listening on {listener.name}")
        if not self.transport.listeners:
            raise StartError("no address to listen on")
        self.core.set_identity(self.transport.listeners, g.get("alias") or [])
        self.core.dns = self._dns_client(g)
        self._start_script(script, None)
        if not self.foreground and _truthy(g.get("fork", "no")):
            _daemonize()
        if self.pidfile:
            _write_pidfile(self.pidfile)
        self._open_control(g)
        self.loop.add_signal(signal.SIGTERM, self.stop)
        self.loop.add_signal(signal.SIGINT, self.stop)
        self.loop.add_signal(signal.SIGHUP, self.reload)
        _settle_gc()
        log.announce(f"serlite {__version__} ready (pid {os.getpid()}), config {self.cfg_path}")

    def _dns_client(self, g):
        """The resolver in the loop (dns_client.py): names are never looked up blocking once
        the server runs.  Families and transports of our listeners (an AAAA is of no use
        without an IPv6 socket, unless dns_try_ipv6 says so); Kamailio's dns_* parameters;
        serlite's dns_resolv_conf, dns_hosts_file, dns_port.  Kept across SIGHUP (lookups in
        flight go on; its parameters are read at start only)."""
        from .dns import message as dns_message
        from .dns_client import DnsClient, options_from_globals
        listeners = self.transport.listeners
        kw = options_from_globals(g)
        if "families" not in kw:
            kw["families"] = ((dns_message.A, dns_message.AAAA)
                              if any(":" in lst.ip for lst in listeners) else (dns_message.A,))
        protos = tuple(p for p in ("udp", "tcp", "tls") if any(lst.proto == p
                                                               for lst in listeners))
        return DnsClient(self.loop, str(g.get("dns_resolv_conf") or "/etc/resolv.conf"),
                         str(g.get("dns_hosts_file") or "/etc/hosts"),
                         port=int(g.get("dns_port") or 53), protos=protos or ("udp",), **kw)

    def _open_control(self, g):
        """The control socket (SER's unix_sock): the config's path, else $SER_UNIX_SOCK, else
        /var/run/ser/ser.sock.  Without it SIP still works, so a failure is only logged."""
        from .control import commands
        from .control.unixsock import DEFAULT_PATH, ControlSocket
        path = str(g.get("unix_sock") or os.environ.get("SER_UNIX_SOCK") or DEFAULT_PATH)
        control = ControlSocket(self.loop, path, commands.build(self))
        try:
            control.open()
        except OSError as exc:
            log.error(f"control socket {path}: {exc.strerror or exc}; ser-ctl and the status "
                      f"page will not reach this server")
            return
        self.control = control
        log.info(f"control socket {path}")

    def _start_script(self, script, previous):
        core = self.core
        hooks = core.source_filters, core.response_handlers, core.double_rr
        core.source_filters, core.response_handlers = [], {}     # the new modules add theirs
        core.double_rr = None                                   # rr sets it again
        core.use_script(script)     # so that a starting module sees the others (core.module)
        # before the modules start: uac's registrations take their Contact address from the
        # socket mhomed picks toward the provider (the WAN's, not the first listener's)
        mhomed = self.transport.mhomed
        self.transport.mhomed = bool(script.globals.get("mhomed", 0))   # SIGHUP changes it too
        started = []
        try:
            for name, module in script.modules.items():
                old = previous.modules.get(name) if previous is not None else None
                module.start(self.core, old)
                started.append(module)
        except Exception:
            for module in started:
                try:
                    module.stop()
                except Exception as exc:
                    log.error(f"{module.name}: stop failed: {exc}")
            core.source_filters, core.response_handlers, core.double_rr = hooks
            self.transport.mhomed = mhomed
            if previous is not None:
                core.use_script(previous)
            raise
        self.script = script

    def _bad_frame(self, head, source, exc):
        """A TCP request that cannot be framed: 513 when over the size limit (RFC 3261
        18.1.1/21.5.14), 400 for a Content-Length that is missing, negative, too large or not
        a number (18.3); the transport closes the connection after."""
        from .sip.errors import ParseError
        if head[:4] == b"SIP/":
            return                  # a response is never answered
        if exc.status == 513:
            exc = ParseError("Message Too Large", 513)
        self.core._answer_unparsable(head, source, exc)

    # -- signals ------------------------------------------------------------------------------
    def reload(self):
        """SIGHUP: compile the config again; if it fails the running one stays.  Returns the
        error (a string) or None."""
        try:
            script = compile_file(self.cfg_path)
        except ConfigError as exc:
            log.error(f"reload failed, keeping the running config: {exc}")
            return str(exc)
        except (RecursionError, MemoryError, UnicodeError, OSError) as exc:
            # what the parser's limits should have caught: still no reload and no crash
            log.error(f"reload failed, keeping the running config: {self.cfg_path}: {exc!r}")
            return f"{self.cfg_path}: {exc!r}"
        old = self.script
        try:
            self._start_script(script, old)
        except Exception as exc:
            log.error(f"reload failed, keeping the running config: {exc}")
            return str(exc)
        self._configure_log(script)
        log.notice(f"config {self.cfg_path} reloaded")
        return None

    def stop(self):
        log.announce("stopping")
        self.loop.stop()

    # -- running ------------------------------------------------------------------------------
    def run(self):
        """Serve until SIGTERM/SIGINT; returns the exit status: 0, or 1 when the final save
        failed (a full disk), so that procd and the owner learn of it."""
        try:
            self.loop.run()
        finally:
            self.shutdown()
        return self.exit_status

    def shutdown(self):
        if self.script is not None:
            for module in reversed(list(self.script.modules.values())):
                try:
                    module.stop()
                except Exception as exc:
                    log.error(f"{module.name}: stop failed: {exc}")
                    self.exit_status = 1
            self.script = None
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.core is not None and self.core.dns is not None:
            self.core.dns.close()
            self.core.dns = None
        if self.transport is not None:
            self.transport.close()
        if self.pidfile:
            try:
                os.unlink(self.pidfile)
            except OSError:
                pass


def _settle_gc():
    """A full garbage collection walks every object: with 100 000 bindings that stalls the loop
    for tens of milliseconds, long enough for a UDP burst to overflow the socket buffer.  What
    exists at start-up (modules, the compiled script, the loaded table) lives as long as the
    server, so it is frozen out of the collector's view; and full collections are made rarer
    (the young generations still free the reference cycles of finished transactions)."""
    import gc
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)


def _truthy(value):
    return str(value).lower() in ("1", "yes", "true", "on")


def _write_pidfile(path):
    try:
        from .store.files import make_dirs
        make_dirs(os.path.dirname(path) or ".", 0o755)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise StartError(f"cannot write pid file {path}: {exc.strerror}")


def _daemonize():
    """SER's fork=yes without -D: detach from the terminal (never under procd, which passes -D)."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    if not log._to_stderr:
        os.dup2(devnull, 2)
    sys.stdin = open(os.devnull)
