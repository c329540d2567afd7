"""Syntax tree to a runnable ``Script`` of Python closures; every name is resolved here, once.

Owns: the table of known globals; ``loadmodule`` (path -> module name -> ``serlite.modules.spec``),
``modparam`` checking and conversion, building module instances; resolving function calls
against the loaded modules' export tables (argument counts, allowed route blocks, fixups);
checking ``route(N)`` targets and which route blocks each request route can run in; regexes
and IP networks compiled at start-up; pseudo-variables (resolved against ``pvars.PVARS``),
``+`` and assignments; and the run-time semantics of statements and conditions.

Run time, as in SER: a function returns > 0 (true), < 0 (false) or 0 (stop the script).
Each statement is a closure ``f(ctx)`` returning None to go on, or an int to leave the current
route with that value (``break``, ``return``); ``exit``, ``drop``, a function returning 0 and
``return(0)`` raise ``_Stop``, which only ``Script.run`` catches.  An exception from a module
function (or from its fixup, run per message for a call with dynamic arguments) or from an
assignment to a pseudo-variable is re-raised as ``ScriptRuntimeError`` naming the file and line,
with the original as ``__cause__`` and its traceback kept (so the last frame is where the module
failed); the ``try`` is free in CPython 3.11+ when nothing is raised.  Nothing else is wrapped.

Expressions (function arguments, the right side of ``$pv OP ...`` and of assignments) are
compiled by ``_Compiler.expr`` into an ``_Expr``: a constant (literals and ``+`` of literals are
folded at start-up) or a getter closure.  A call whose arguments are all constants is fixed up at
start-up as before; one with a pseudo-variable in an argument needs ``Function.dynamic`` and runs
the fixup on every call (the slow path).
"""

from __future__ import annotations

import operator
import re

from .. import modules as _modules   # attribute access: tests replace spec/AVAILABLE
from ..routes import BRANCH_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE, REQUEST_ROUTE, ROUTE_NAMES
from . import nodes as N
from .errors import ConfigError, ScriptRuntimeError
from .parser import parse
from .pvars import PVARS

MAX_ROUTE_DEPTH = 100   # nested route() calls, as SER's ROUTE_MAX_REC_LEV

_KINDS = (REQUEST_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE, BRANCH_ROUTE)

# --- globals ------------------------------------------------------------------------------------
# name -> (type, note).  Types: "int", "bool", "str" (quoted or a bare word/address), "list"
# (repeatable, collected as a list of raw strings).  A note means serlite accepts the setting
# but does not act on it; it is recorded in Script.notes.
_ONE_PROCESS = "serlite runs one process"
_PROCD = "procd sets the user and process limits"
GLOBALS = {
    "debug": ("int", None),
    "fork": ("bool", None),
    "log_stderror": ("bool", None),
    "log_facility": ("str", None),
    "listen": ("list", None),
    "alias": ("list", None),
    "port": ("int", None),
    "children": ("int", _ONE_PROCESS),
    "tcp_children": ("int", _ONE_PROCESS),
    "unix_sock_children": ("int", _ONE_PROCESS),
    "dns": ("bool", None),
    "rev_dns": ("bool", None),
    "mhomed": ("int", None),        # SER's: a number, 0 or 1 (cfg.y: MHOMED EQUAL NUMBER)
    "check_via": ("bool", None),
    "sip_warning": ("bool", None),
    "server_signature": ("bool", None),
    "user_agent_header": ("str", None),
    "server_header": ("str", None),
    "reply_to_via": ("bool", None),
    "advertised_address": ("str", None),
    "advertised_port": ("int", None),
    "unix_sock": ("str", None),
    "unix_tx_timeout": ("int", None),
    "fifo": ("str", None),
    "fifo_mode": ("int", None),
    "maxbuffer": ("int", None),
    "max_message_size": ("int", None),
    "disable_tcp": ("bool", None),
    "tcp_accept_aliases": ("bool", None),
    "tcp_connect_timeout": ("int", None),
    "tcp_send_timeout": ("int", None),
    "tcp_connection_lifetime": ("int", None),
    "tcp_max_connections": ("int", None),
    "tcp_accept_iplimit": ("int", None),
    "tcp_msg_read_timeout": ("int", None),
    "tcp_msg_data_timeout": ("int", None),
    "disable_tls": ("bool", None),  # SER's: the inverse of enable_tls (stored as enable_tls)
    "enable_tls": ("bool", None),   # Kamailio's: TLS on every address when no listen= names one
    "tls_port_no": ("int", None),
    "tos": ("int", None),
    "user": ("str", _PROCD),
    "group": ("str", _PROCD),
    "chroot": ("str", "not supported"),
    "workdir": ("str", "not supported"),
    "memlog": ("int", "serlite has no shared-memory pools"),
    "syn_branch": ("bool", "branches are always RFC 3261 magic-cookie branches"),
    "disable_core_dump": ("bool", _PROCD),
    "open_files_limit": ("int", _PROCD),
    # DNS (Kamailio's core parameters; dns_client.options_from_globals): read at start
    "dns_retr_time": ("int", None),
    "dns_retr_no": ("int", None),
    "dns_servers_no": ("int", None),
    "dns_try_ipv6": ("bool", None),
    "dns_try_naptr": ("bool", None),
    "dns_srv_lb": ("bool", None),
    "use_dns_cache": ("bool", None),
    "dns_cache_min_ttl": ("int", None),
    "dns_cache_max_ttl": ("int", None),
    "dns_cache_negative_ttl": ("int", None),
    "dns_cache_max_entries": ("int", None),
    "dns_use_search_list": ("bool", "SIP hosts are fully qualified: search is not used"),
    # serlite's own: the resolver's files and the name servers' port (tests run their own)
    "dns_resolv_conf": ("str", None),
    "dns_hosts_file": ("str", None),
    "dns_port": ("int", None),
}
# The numbers a core parameter may take (inclusive), checked at -c and start: a value out of
# range would be cut to 32 bits, wrap, or mean "no limit" somewhere down the line.
GLOBAL_RANGES = {
    "port": (1, 65535),
    "advertised_port": (1, 65535),
    "tls_port_no": (1, 65535),
    "mhomed": (0, 1),
    "tcp_max_connections": (1, 65535),
    "tcp_accept_iplimit": (1, 65535),
    "tcp_connection_lifetime": (1, 7 * 86400),
    "tcp_msg_read_timeout": (1, 3600),
    "tcp_msg_data_timeout": (1, 3600),
    "dns_port": (1, 65535),
    "dns_retr_time": (1, 30),
    "dns_retr_no": (1, 5),
    "dns_servers_no": (1, 3),
    "dns_cache_max_entries": (0, 65536),
}

# Other spellings seen in SER configs -> SER's name (the value is stored under SER's name).
GLOBAL_ALIASES = {"log_stderr": "log_stderror"}

_TRUE_WORDS = frozenset(("yes", "true", "on", "enable"))
_FALSE_WORDS = frozenset(("no", "false", "off", "disable"))

# SER's core forward actions take unquoted hosts and forward(uri:host, uri:port); their raw
# arguments reach the fixup as strings ("uri:host", "10.0.0.1").  Every other function needs
# quoted strings or numbers, as SER's module calls do.
RAW_ARG_FUNCTIONS = frozenset(("forward", "forward_udp", "forward_tcp", "forward_tls",
                               "send", "send_tcp"))

# ``status``: in onreply_route the reply's code; in failure_route that of the winning final
# reply, which tm leaves in ctx.reply_status (also for a 408 it made up).  Same as ``$rs``.
_STATUS_ROUTES = ONREPLY_ROUTE | FAILURE_ROUTE


class _Stop(Exception):
    """exit, drop, return(0) or a function returning 0: ends the whole script run."""


def _nop(ctx):
    return None


# --- the compiled script ------------------------------------------------------------------------

class Script:
    """A compiled config: its globals, module instances (in load order, ``core`` first), notes,
    and the route blocks as closures.  ``run*`` return the route's value: 1 when it ends
    normally or by ``break``/``return``, N for ``return(N)``, 0 when the script was stopped
    (``exit``, ``drop``, a function returning 0); ``drop`` also sets ``ctx.dropped = True``."""

    def __init__(self, filename):
        self.filename = filename
        self.globals = {}
        self.modules = {}
        self.notes = []
        self._routes = {kind: {} for kind in _KINDS}
        self._main = None
        self._reply = None
        self._depth = [0]          # current route() nesting, shared by all route-call closures

    def has_route(self, kind, name):
        """Whether a route block of ``kind`` named ``name`` exists (main route: ``"0"``)."""
        return str(name) in self._routes.get(kind, ())

    def route_names(self, kind):
        return sorted(self._routes.get(kind, ()))

    def run(self, kind, name, ctx):
        """Run route block (kind, name) on ctx; KeyError if there is no such block."""
        body = self._routes[kind][str(name)]
        try:
            r = body(ctx)
        except _Stop:
            return 0
        return 1 if r is None else r

    def run_request(self, ctx):
        """Run the main request route."""
        try:
            r = self._main(ctx)
        except _Stop:
            return 0
        return 1 if r is None else r

    def run_reply(self, ctx):
        """Run the catch-all ``onreply_route`` if there is one (else 1)."""
        body = self._reply
        if body is None:
            return 1
        try:
            r = body(ctx)
        except _Stop:
            return 0
        return 1 if r is None else r


def compile_config(text, filename):
    """Compile config ``text`` (``filename`` is for messages); raises ConfigError."""
    return _Compiler(filename).compile(parse(text, filename))


def compile_file(path):
    """Read and compile the config file at ``path``; raises ConfigError (also when the file
    cannot be read)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read the config: {e.strerror or e}", path, None, None)
    except UnicodeDecodeError as e:
        raise ConfigError(f"the config is not UTF-8 text ({e.reason} at byte {e.start})",
                          path, None, None)
    return compile_config(text, path)


def route_label(kind, name):
    """How messages name a route block: ``route``, ``route[2]``, ``failure_route[1]``."""
    if name == "0" and kind in (REQUEST_ROUTE, ONREPLY_ROUTE):
        return ROUTE_NAMES[kind]
    return f"{ROUTE_NAMES[kind]}[{name}]"


def _close_match(word, candidates):
    """The likeliest intended name among ``candidates``, or None.  difflib and ipaddress are
    imported only when needed: they cost start-up time on a router."""
    import difflib
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return close[0] if close else None


def _did_you_mean(word, candidates):
    close = _close_match(word, candidates)
    return f" — did you mean '{close}'?" if close else ""


def _count_text(counts):
    counts = sorted(set(counts))
    words = [str(c) for c in counts]
    text = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    return text + (" argument" if counts == [1] else " arguments")


def _module_name(path):
    base = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return base[:-3] if base.endswith(".so") else base


# --- the compiler -------------------------------------------------------------------------------

class _Compiler:
    def __init__(self, filename):
        self.filename = filename
        self.script = Script(filename)
        self.specs = {}          # loaded module name -> ModuleSpec, load order
        self.load_pos = {}       # module name -> LoadModule node
        self.params = {}         # module name -> {param: value}
        self.functions = {}      # function name -> (Function, module name)
        self.route_defs = {}     # (kind, name) -> RouteDef
        # while compiling one route body:
        self.tls_at = None       # the first setting that asks for TLS (listen=tls:, enable_tls)
        self.kinds = 0           # the route blocks it can run in (bit set)
        self.via = {}            # kind -> label of the route block it is reached from

    def err(self, message, node, hint=None):
        return ConfigError(message, self.filename, node.line, node.col, hint)

    # --- whole file -----------------------------------------------------------------------------

    def compile(self, config):
        script = self.script
        core = _modules.spec("core")
        self.specs["core"] = core
        self.params["core"] = {k: p.default for k, p in core.params.items()}
        for item in config.items:
            if isinstance(item, N.Global):
                self.global_(item)
            elif isinstance(item, N.LoadModule):
                self.loadmodule(item)
            elif isinstance(item, N.ModParam):
                self.modparam(item)
            else:
                key = (item.kind, item.name)
                first = self.route_defs.get(key)
                if first is not None:
                    raise self.err(f"{route_label(*key)} is defined twice", item,
                                   hint=f"first defined at line {first.line}")
                self.route_defs[key] = item
                script._routes[item.kind][item.name] = None   # known to has_route from now on
        if (REQUEST_ROUTE, "0") not in self.route_defs:
            raise self.err("no main route", config,
                           hint="add a request route: route { ... }")
        for name, spec in self.specs.items():
            for dep in spec.depends:
                if dep not in self.specs:
                    raise self.err(f"module '{name}' needs module '{dep}'", self.load_pos[name],
                                   hint=f'loadmodule "{dep}" first')
        for name, spec in self.specs.items():
            try:
                script.modules[name] = spec.factory(self.params[name])
            except ValueError as e:      # a module refusing its params
                raise self.err(f"module '{name}': {e}", self.load_pos.get(name, config))
            for fn in spec.functions.values():
                self.functions.setdefault(fn.name, (fn, name))
        self.check_tls()
        kinds, via = self.reachability()
        slots = {key: [None] for key in self.route_defs}
        self.slots = slots
        for key, rdef in self.route_defs.items():
            if key[0] == REQUEST_ROUTE:
                self.kinds = kinds[key[1]]
                self.via = via.get(key[1], {})
            else:
                self.kinds = key[0]
                self.via = {}
            slots[key][0] = self.block(rdef.body)
        for (kind, name), slot in slots.items():
            script._routes[kind][name] = slot[0]
        script._main = script._routes[REQUEST_ROUTE]["0"]
        script._reply = script._routes[ONREPLY_ROUTE].get("0")
        return script

    # --- globals, loadmodule, modparam ----------------------------------------------------------

    def global_(self, node):
        name = GLOBAL_ALIASES.get(node.name, node.name)
        entry = GLOBALS.get(name)
        if entry is None:
            raise self.err(f"unknown global '{node.name}'"
                           + _did_you_mean(node.name, list(GLOBALS) + list(GLOBAL_ALIASES)),
                           node)
        gtype, note = entry
        v = node.value
        if gtype == "int":
            if v.kind != "int":
                raise self.err(f"'{node.name}' takes a number", v)
            value = v.value
            bounds = GLOBAL_RANGES.get(name)
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise self.err(f"'{node.name}' must be between {bounds[0]} and {bounds[1]}, "
                               f"not {value}", v)
        elif gtype == "bool":
            if v.kind == "int":
                value = v.value != 0
            elif v.kind == "word" and v.value.lower() in _TRUE_WORDS:
                value = True
            elif v.kind == "word" and v.value.lower() in _FALSE_WORDS:
                value = False
            else:
                raise self.err(f"'{node.name}' takes yes or no", v)
        elif v.kind == "int":
            raise self.err(f"'{node.name}' takes a string", v,
                           hint=f'write {node.name}="{v.value}"')
        else:
            value = v.value
        text = f'"{v.value}"' if v.kind == "str" else str(v.value)
        if name == "disable_tls":
            name, value = "enable_tls", not value
        if self.tls_at is None and (
                (name == "enable_tls" and value) or
                (name == "listen" and str(value).strip().strip('"')[:4].lower() == "tls:")):
            self.tls_at = (v, f"{node.name}={text}")
        if gtype == "list":
            self.script.globals.setdefault(name, []).append(value)
        else:
            self.script.globals[name] = value
        if name != node.name:
            self.note(node, f"{node.name} read as {name}")
        if note:
            self.note(node, f"{node.name}={text} ignored ({note})")

    def check_tls(self):
        """``listen=tls:...`` or ``enable_tls=yes`` need Python's ssl (python3-openssl on
        OpenWrt) and the tls module with our certificate: said here, at the setting's line,
        at ``-c`` and at start."""
        if self.tls_at is None:
            return
        node, setting = self.tls_at
        from .. import tls
        if not tls.AVAILABLE:
            raise self.err(f"{setting}: {tls.NEEDS}", node,
                           hint="or remove the TLS setting: udp and tcp work without ssl")
        module = self.script.modules.get("tls")
        if module is None:
            raise self.err(f"{setting} needs the tls module", node,
                           hint='loadmodule "tls.so" and modparam("tls", "certificate", '
                                '"/etc/ser/tls/server.pem"), modparam("tls", "private_key", '
                                '"/etc/ser/tls/server.key")')
        if module.contexts.server is None:
            raise self.err(f"{setting} needs our certificate", node,
                           hint='modparam("tls", "certificate", "/etc/ser/tls/server.pem") '
                                'and modparam("tls", "private_key", "/etc/ser/tls/server.key")')

    def note(self, node, text):
        self.script.notes.append(f"{self.filename}:{node.line}: {text}")

    def loadmodule(self, node):
        name = _module_name(node.path)
        if name in self.specs:
            if name != "core":
                self.note(node, f"module '{name}' loaded twice (ignored)")
            return
        try:
            spec = _modules.spec(name)
        except KeyError:
            close = _close_match(name, _modules.AVAILABLE)
            if close:
                raise self.err(f"no module '{name}' — did you mean '{close}'?", node)
            raise self.err(f"no module '{name}'", node,
                           hint="serlite has: " + ", ".join(_modules.AVAILABLE))
        except ImportError as e:
            raise self.err(f"module '{name}' failed to import: {e}", node)
        self.specs[name] = spec
        self.load_pos[name] = node
        self.params[name] = {k: p.default for k, p in spec.params.items()}

    def modparam(self, node):
        mod = node.module.value
        if mod in self.specs and mod != "core":
            targets = [mod]
        else:
            targets = self._modparam_regex(node) if set(mod) & set("|*.[(^$+?") else []
            if not targets:
                hint = None
                close = _close_match(mod, [m for m in self.specs if m != "core"])
                if close:
                    hint = f"did you mean '{close}'?"
                raise self.err(f"modparam for module '{mod}' which is not loaded "
                               f"(loadmodule it first?)", node.module, hint=hint)
        pname = node.param.value
        if len(targets) > 1 or targets[0] != mod:     # a regex: every module with that param
            targets = [m for m in targets if pname in self.specs[m].params]
            if not targets:
                raise self.err(f"no module matching '{mod}' has a parameter '{pname}'",
                               node.param)
        for m in targets:
            param = self.specs[m].params.get(pname)
            if param is None:
                raise self.err(f"module '{m}' has no parameter '{pname}'"
                               + _did_you_mean(pname, self.specs[m].params), node.param)
            if param.type is list:      # repeatable (uac's credential): each adds one
                self.params[m][pname] = (*self.params[m][pname],
                                         self.param_value(m, pname, param, node.value))
                continue
            self.params[m][pname] = self.param_value(m, pname, param, node.value)

    def _modparam_regex(self, node):
        try:
            rx = re.compile(node.module.value, re.I)
        except re.error as e:
            raise self.err(f"bad regular expression in modparam: {e}", node.module)
        return [m for m in self.specs if m != "core" and rx.fullmatch(m)]

    def param_value(self, module, pname, param, v):
        ptype = param.type if isinstance(param.type, str) else \
            getattr(param.type, "__name__", "")
        what = f"modparam '{pname}' of module '{module}'"
        if ptype == "int":
            if v.kind == "int":
                value = v.value
            elif v.kind == "word" and v.value.lower() in ("yes", "no"):
                value = 1 if v.value.lower() == "yes" else 0
            else:
                hint = f"write {v.value} without quotes" if v.kind == "str" and \
                    v.value.lstrip("-").isdigit() else None
                raise self.err(f"{what} takes a number", v, hint=hint)
            if param.out_of_range(value):
                shown = str(value) if len(str(value)) <= 24 else \
                    f"{str(value)[:12]}... ({len(str(value))} digits)"
                hint = f"write a number in {param.range_text()}" + \
                    (f" ({pname}: {param.doc})" if param.doc else "")
                raise self.err(f'modparam("{module}", "{pname}"): {shown} is out of range '
                               f"{param.range_text()}", v, hint=hint)
            return value
        if ptype == "bool":
            if v.kind == "int" and v.value in (0, 1):
                return bool(v.value)
            if v.kind == "word" and v.value.lower() in _TRUE_WORDS:
                return True
            if v.kind == "word" and v.value.lower() in _FALSE_WORDS:
                return False
            raise self.err(f"{what} takes yes or no", v)
        if ptype in ("str", "list"):
            if v.kind == "str":
                return v.value
            raise self.err(f"{what} takes a string", v, hint=f'write "{v.value}" in quotes')
        return v.value

    # --- which route blocks each request route runs in ------------------------------------------

    def reachability(self):
        """For each request route: the bit set of route kinds it can run in (through route()
        calls from the main route or from failure/onreply/branch routes; REQUEST_ROUTE for
        routes nobody calls), and for each kind but REQUEST the label of a block it comes
        from.  Also checks that every route() target exists."""
        calls = {}
        for key, rdef in self.route_defs.items():
            calls[key] = targets = []
            self._collect_calls(rdef.body, targets)
        kinds = {name: 0 for (k, name) in self.route_defs if k == REQUEST_ROUTE}
        via = {}
        work = [("0", REQUEST_ROUTE, "route")]
        for (k, name), targets in calls.items():
            if k != REQUEST_ROUTE:
                work.extend((t, k, route_label(k, name)) for t in targets)
        while work:
            name, kind, label = work.pop()
            if kinds[name] & kind:
                continue
            kinds[name] |= kind
            via.setdefault(name, {})[kind] = label
            work.extend((t, kind, label) for t in calls[(REQUEST_ROUTE, name)])
        for name in kinds:
            kinds[name] = kinds[name] or REQUEST_ROUTE
        return kinds, via

    def _collect_calls(self, node, out):
        if isinstance(node, N.RouteCall):
            if (REQUEST_ROUTE, node.name) not in self.route_defs:
                names = [n for (k, n) in self.route_defs if k == REQUEST_ROUTE]
                raise self.err(f"unknown route '{node.name}'" + _did_you_mean(node.name, names),
                               node, hint=f"route({node.name}) needs a route[{node.name}] block")
            out.append(node.name)
        elif isinstance(node, N.Block):
            for s in node.stmts:
                self._collect_calls(s, out)
        elif isinstance(node, N.If):
            self._collect_calls(node.cond, out)
            self._collect_calls(node.then, out)
            if node.orelse is not None:
                self._collect_calls(node.orelse, out)
        elif isinstance(node, (N.And, N.Or)):
            self._collect_calls(node.left, out)
            self._collect_calls(node.right, out)
        elif isinstance(node, N.Not):
            self._collect_calls(node.expr, out)

    def check_route_kind(self, what, allowed, node):
        """Raise unless ``allowed`` (a bit set) covers every block the current route runs in."""
        for kind in _KINDS:
            if self.kinds & kind and not allowed & kind:
                label = self.via.get(kind)
                hint = None
                if label and kind != REQUEST_ROUTE:
                    hint = f"this route block is run from {label} through route()"
                raise self.err(f"{what} is not allowed in {ROUTE_NAMES[kind]}", node, hint=hint)

    # --- statements -----------------------------------------------------------------------------

    def stmt(self, node):
        method = getattr(self, "stmt_" + type(node).__name__)
        return method(node)

    def block(self, node):
        fs = [self.stmt(s) for s in node.stmts if not isinstance(s, N.Nop)]
        if not fs:
            return _nop
        if len(fs) == 1:
            return fs[0]
        if len(fs) == 2:
            a, b = fs

            def block2(ctx):
                r = a(ctx)
                if r is not None:
                    return r
                return b(ctx)
            return block2
        fs = tuple(fs)

        def block_n(ctx):
            for s in fs:
                r = s(ctx)
                if r is not None:
                    return r
            return None
        return block_n

    stmt_Block = block

    def stmt_Nop(self, node):
        return _nop

    def stmt_If(self, node):
        if node.orelse is None and isinstance(node.cond, N.Not):
            # ``if (!cond) ...`` (the seed config's ``!method == "REGISTER"`` and
            # ``!lookup(...)``): the negation in this closure, one call fewer per run
            inner = self.cond(node.cond.expr)
            then = self.stmt(node.then)

            def if_not(ctx):
                if not inner(ctx):
                    return then(ctx)
                return None
            return if_not
        cond = self.cond(node.cond)
        then = self.stmt(node.then)
        if node.orelse is None:
            def if_(ctx):
                if cond(ctx):
                    return then(ctx)
                return None
            return if_
        orelse = self.stmt(node.orelse)

        def if_else(ctx):
            if cond(ctx):
                return then(ctx)
            return orelse(ctx)
        return if_else

    def stmt_Break(self, node):
        return _break

    def stmt_Exit(self, node):
        return _exit

    def stmt_Drop(self, node):
        return _drop

    def stmt_Return(self, node):
        value = 1 if node.value is None else node.value
        if value == 0:
            return _exit          # return(0) stops the script, as in SER 2 / Kamailio

        def return_(ctx):
            return value
        return return_

    def stmt_RouteCall(self, node):
        run = self.route_caller(node)

        def route_stmt(ctx):
            run(ctx)
            return None
        return route_stmt

    def stmt_Call(self, node):
        return self.call(node, as_cond=False)

    def stmt_Assign(self, node):
        target = node.target
        label = target.text()
        spec = self.pv_spec(target)
        if spec.set is None:
            writable = ", ".join("$" + n for n, p in PVARS.items() if p.set is not None)
            raise self.err(f"{label} is read-only", target, hint=f"assignable: {writable}")
        self.check_route_kind(f"assigning {label}", spec.routes, target)
        value = self.expr(node.value)
        if value.type == "null" and not spec.nullable:
            raise self.err(f"{label} cannot be null", node.value)
        setter = spec.set
        filename, line = self.filename, node.line
        if value.get is None:
            const = None if value.value is None else str(value.value)

            def assign(ctx):
                try:
                    setter(ctx, const)
                except Exception as e:
                    raise ScriptRuntimeError(f"{label} = {const!r}: {type(e).__name__}: {e}",
                                             filename, line).with_traceback(e.__traceback__) \
                        from e
            return assign
        get = value.get if value.type == "str" else _nullable_text(value.get)

        def assign_dynamic(ctx):
            v = get(ctx)
            try:
                setter(ctx, v)
            except Exception as e:
                raise ScriptRuntimeError(f"{label} = {v!r}: {type(e).__name__}: {e}",
                                         filename, line).with_traceback(e.__traceback__) from e
        return assign_dynamic

    # --- expressions and pseudo-variables -------------------------------------------------------

    def pv_spec(self, node):
        """The PVar of PV ``node``; ConfigError for an unknown name or a wrong argument."""
        spec = PVARS.get(node.name)
        label = node.text()
        if spec is None:
            same = sorted(n for n in PVARS if n.lower() == node.name.lower())
            if same:
                hint = " or ".join(f"'${n}'" for n in same)
                raise self.err(f"unknown pseudo-variable {label} — did you mean {hint}?", node,
                               hint="pseudo-variable names are case-sensitive")
            close = _close_match(node.name, PVARS)
            raise self.err(f"unknown pseudo-variable {label}"
                           + (f" — did you mean '${close}'?" if close else ""), node,
                           hint=None if close else "serlite has: "
                           + " ".join("$" + n for n in PVARS))
        if spec.takes_arg and not node.arg:
            raise self.err(f"${node.name} needs a header name", node,
                           hint=f"write ${node.name}(User-Agent)")
        if not spec.takes_arg and node.arg is not None:
            raise self.err(f"${node.name} takes no argument", node)
        return spec

    def pv(self, node):
        """(getter, type) of PV ``node``, checked against the route blocks it runs in."""
        spec = self.pv_spec(node)
        self.check_route_kind(f"'{node.text()}'", spec.routes, node)
        try:
            get = spec.make(node.arg, self.kinds)
        except ValueError as e:
            raise self.err(str(e), node)
        return get, spec.type

    def expr(self, node):
        """Compile a Value, PV or Concat into an _Expr.  Bare words other than ``null`` and
        glued addresses are refused (they need quotes)."""
        if isinstance(node, N.PV):
            get, type_ = self.pv(node)
            return _Expr(get, None, type_)
        if isinstance(node, N.Concat):
            return self.concat(node)
        if node.kind == "str":
            return _Expr(None, node.value, "str")
        if node.kind == "int":
            return _Expr(None, node.value, "int")
        if node.kind == "word" and node.value == "null":
            return _Expr(None, None, "null")
        raise self.err(f"expected a quoted string, a number or a pseudo-variable, "
                       f"got {node.value}", node, hint=f'write "{node.value}"')

    def concat(self, node):
        parts = [self.expr(p) for p in node.parts]
        for p, part in zip(node.parts, parts):
            if part.type == "null":
                raise self.err("null cannot be joined with '+'", p)
        if parts[0].type == "int" and parts[1].type == "int":
            a, b = node.parts[0], node.parts[1]
            raise self.err("'+' joins text, and the script has no arithmetic", b,
                           hint=f'to join two numbers as text start with a string: '
                                f'"" + {_source(a)} + {_source(b)}')
        pieces = []           # str constants (adjacent ones folded) and text getters
        for part in parts:
            if part.get is None:
                text = str(part.value)
                if pieces and type(pieces[-1]) is str:
                    pieces[-1] += text
                else:
                    pieces.append(text)
            else:
                pieces.append(_text(part.get, part.type))
        if len(pieces) == 1 and type(pieces[0]) is str:
            return _Expr(None, pieces[0], "str")
        return _Expr(_joiner(pieces), None, "str")

    def cmp_pv(self, node):
        """``$pv OP right``: see docs/config-language.md for the rules."""
        get, type_ = self.pv(node.left)
        op = node.op
        label = node.left.text()
        right = self.expr(node.right)
        if op in ("=~", "!~"):
            if right.get is not None or right.type != "str":
                raise self.err("a regular expression must be a quoted string", node.right)
            try:
                search = re.compile(right.value, re.IGNORECASE).search
            except re.error as e:
                raise self.err(f"bad regular expression: {e}", node.right)
            if type_ == "str":
                def match(ctx):
                    v = get(ctx)
                    return v is not None and search(v) is not None
            else:
                def match(ctx):
                    v = get(ctx)
                    return v is not None and search(str(v)) is not None
            return match if op == "=~" else _negate(match)
        ordering = op not in ("==", "!=")
        if right.get is None:
            want = right.value
            if right.type == "null":
                if ordering:
                    raise self._bad_op_pv(node, op, "null", ("==", "!="))
                if op == "==":
                    return lambda ctx: get(ctx) is None
                return lambda ctx: get(ctx) is not None
            if right.type == "str" and (ordering or type_ == "int"):
                number = _as_int(want)
                if number is None:
                    if ordering:
                        raise self._bad_op_pv(node, op, "a string", ("==", "!=", "=~", "!~"))
                    raise self.err(f"{label} is a number: compare it with a number", node.right)
                want = number
                right = _Expr(None, number, "int")
            if right.type == "int":
                cmp = _INT_OPS["==" if op == "!=" else op]     # != is "not ==" (null != 5)
                if type_ == "int":
                    def test(ctx):
                        v = get(ctx)
                        return v is not None and cmp(v, want)
                else:
                    def test(ctx):
                        v = _as_int(get(ctx))
                        return v is not None and cmp(v, want)
            elif op == "==":         # str pseudo-variable == "text": exact
                return lambda ctx: get(ctx) == want
            else:
                return lambda ctx: get(ctx) != want
        else:
            rget = right.get
            if ordering:
                cmp = _INT_OPS[op]

                def test(ctx):
                    a = _as_int(get(ctx))
                    b = _as_int(rget(ctx))
                    return a is not None and b is not None and cmp(a, b)
                return test
            if type_ == "str" and right.type == "str":
                def test(ctx):
                    return get(ctx) == rget(ctx)
            else:
                lget, rget = _nullable_text(get), _nullable_text(rget)

                def test(ctx):
                    return lget(ctx) == rget(ctx)
        if op == "!=":
            return _negate(test)
        return test

    def _bad_op_pv(self, node, op, what, ops):
        return self.err(f"'{op}' cannot compare {node.left.text()} with {what}; use "
                        + ", ".join(ops), node)

    # --- route() --------------------------------------------------------------------------------

    def route_caller(self, node):
        """A closure running request route ``node.name`` and returning its value, guarding the
        nesting depth."""
        slot = self.slots[(REQUEST_ROUTE, node.name)]
        depth = self.script._depth
        filename, line, name = self.filename, node.line, node.name

        def run_route(ctx):
            d = depth[0]
            if d >= MAX_ROUTE_DEPTH:
                raise ScriptRuntimeError(
                    f"route({name}): more than {MAX_ROUTE_DEPTH} nested route() calls",
                    filename, line)
            depth[0] = d + 1
            try:
                r = slot[0](ctx)
            finally:
                depth[0] = d
            return 1 if r is None else r
        return run_route

    # --- function calls -------------------------------------------------------------------------

    def call(self, node, as_cond):
        name = node.name
        entry = self.functions.get(name)
        if entry is None:
            raise self.unknown_function(node)
        fn, modname = entry
        nargs = len(node.args)
        if nargs not in fn.nargs:
            raise self.err(f"{name} takes {_count_text(fn.nargs)}, got {nargs}", node)
        self.check_route_kind(f"'{name}'", fn.routes, node)
        instance = self.script.modules[modname]
        exprs = []
        for a in node.args:
            if isinstance(a, N.Value):
                if a.kind in ("word", "raw") and name not in RAW_ARG_FUNCTIONS:
                    raise self.err(f"the arguments of {name}() must be quoted strings or numbers",
                                   a, hint=f'write "{a.value}"')
                exprs.append(_Expr(None, a.value, a.kind))
            else:
                e = self.expr(a)
                if e.get is not None and not fn.dynamic:
                    dyn = sorted(f for f, (g, _) in self.functions.items()
                                 if g.dynamic)
                    raise self.err(f"the arguments of {name}() must be known at start-up "
                                   f"(quoted strings, numbers, or strings joined with '+')", a,
                                   hint="pseudo-variables can be passed to: " + ", ".join(dyn)
                                   if dyn else None)
                exprs.append(e)
        if any(e.get is not None for e in exprs):
            return self.dynamic_call(node, fn, instance, exprs, as_cond)
        args = tuple(e.value for e in exprs)
        if fn.fixup is not None:
            try:
                fixed = fn.fixup(instance, args, self.script)
            except ValueError as e:
                raise self.err(str(e), node)
            args = tuple(fixed)
        meth = getattr(instance, fn.method)
        return _make_call(meth, args, name, self.filename, node.line, as_cond)

    def dynamic_call(self, node, fn, instance, exprs, as_cond):
        """A call with run-time arguments: evaluate them (pseudo-variables as text, null as
        ""), run the fixup on them, call.  A fixup's ValueError becomes a ScriptRuntimeError."""
        getters = tuple(_const(e.value) if e.get is None else _text(e.get, e.type)
                        for e in exprs)
        meth = getattr(instance, fn.method)
        fixup, script = fn.fixup, self.script
        if fixup is None:
            def call_dynamic(ctx):
                return meth(ctx, *[g(ctx) for g in getters])
        else:
            def call_dynamic(ctx):
                return meth(ctx, *fixup(instance, tuple([g(ctx) for g in getters]), script))
        return _make_call(call_dynamic, (), node.name, self.filename, node.line, as_cond)

    def unknown_function(self, node):
        name = node.name
        # Exported by a module serlite has but the config did not load?
        for mod in _modules.AVAILABLE:
            if mod in self.specs:
                continue
            try:
                spec = _modules.spec(mod)
            except Exception:     # a broken module must not hide the config's error
                continue
            if name in spec.functions:
                return self.err(f"unknown function '{name}'", node,
                                hint=f'did you loadmodule "{mod}"?')
        return self.err(f"unknown function '{name}'" + _did_you_mean(name, self.functions), node)

    # --- conditions -----------------------------------------------------------------------------

    def cond(self, node):
        return getattr(self, "cond_" + type(node).__name__)(node)

    def cond_Not(self, node):
        inner = self.cond(node.expr)

        def not_(ctx):
            return not inner(ctx)
        return not_

    def cond_And(self, node):
        left, right = self.cond(node.left), self.cond(node.right)

        def and_(ctx):
            return left(ctx) and right(ctx)
        return and_

    def cond_Or(self, node):
        left, right = self.cond(node.left), self.cond(node.right)

        def or_(ctx):
            return left(ctx) or right(ctx)
        return or_

    def cond_Const(self, node):
        value = node.value != 0      # SER: any non-zero number is true
        return (lambda ctx: True) if value else (lambda ctx: False)

    def cond_Call(self, node):
        return self.call(node, as_cond=True)

    def cond_RouteCall(self, node):
        run = self.route_caller(node)

        def route_cond(ctx):
            return run(ctx) > 0
        return route_cond

    def cond_Compare(self, node):
        if isinstance(node.left, N.PV):
            return self.cmp_pv(node)
        compile_left = getattr(self, "cmp_" + node.left.replace(":", "_"))
        return compile_left(node, node.op, node.right)

    # Each cmp_<left> returns a closure ctx -> bool.

    def _bad_op(self, node, op, ops):
        return self.err(f"'{op}' cannot compare {node.left}; use " + ", ".join(ops), node)

    def _regex(self, v):
        if v.kind != "str":
            raise self.err("a regular expression must be a quoted string", v)
        try:
            return re.compile(v.value, re.IGNORECASE)
        except re.error as e:
            raise self.err(f"bad regular expression: {e}", v)

    def _string_cmp(self, node, op, v, get, myself=None):
        """==, !=, =~, !~ on a string (case-insensitive), and == myself when ``myself`` is a
        function (core, text) -> bool."""
        if op in ("=~", "!~"):
            search = self._regex(v).search
            if op == "=~":
                return lambda ctx: search(get(ctx)) is not None
            return lambda ctx: search(get(ctx)) is None
        if op not in ("==", "!="):
            raise self._bad_op(node, op, ("==", "!=", "=~"))
        if v.kind == "word" and v.value == "myself":
            if myself is None:
                raise self.err(f"{node.left} cannot be compared with myself", v)
            if op == "==":
                return lambda ctx: myself(ctx)
            return lambda ctx: not myself(ctx)
        if v.kind != "str":
            raise self.err(f"expected a quoted string after '{node.left} {op}'", v)
        want = v.value.lower()
        if op == "==":
            return lambda ctx: get(ctx).lower() == want
        return lambda ctx: get(ctx).lower() != want

    def cmp_method(self, node, op, v):
        if op in ("==", "!=") and (v.kind == "str" or v.kind == "word" and v.value != "myself"):
            want = v.value.upper()          # SER: method names compare case-insensitively
            if op == "==":
                return lambda ctx: ctx.msg.method.upper() == want
            return lambda ctx: ctx.msg.method.upper() != want
        return self._string_cmp(node, op, v, lambda ctx: ctx.msg.method)

    def cmp_uri(self, node, op, v):
        if op == "==" and v.kind == "word" and v.value == "myself":
            return lambda ctx: ctx.core.is_myself_uri(ctx.uri)      # the common case, inlined
        return self._string_cmp(node, op, v, lambda ctx: ctx.ruri,
                                lambda ctx: ctx.core.is_myself_uri(ctx.uri))

    def cmp_from_uri(self, node, op, v):
        return self._string_cmp(node, op, v, lambda ctx: ctx.msg.from_.uri_text,
                                lambda ctx: ctx.core.is_myself_uri(ctx.msg.from_.uri_text))

    def cmp_to_uri(self, node, op, v):
        return self._string_cmp(node, op, v, lambda ctx: ctx.msg.to.uri_text,
                                lambda ctx: ctx.core.is_myself_uri(ctx.msg.to.uri_text))

    def cmp_src_ip(self, node, op, v):
        if op in ("=~", "!~") or v.kind == "str":
            return self._string_cmp(node, op, v, lambda ctx: ctx.source.ip)
        if op not in ("==", "!="):
            raise self._bad_op(node, op, ("==", "!=", "=~"))
        if v.kind == "word" and v.value == "myself":
            if op == "==":
                return lambda ctx: ctx.core.is_myself_ip(ctx.source.ip)
            return lambda ctx: not ctx.core.is_myself_ip(ctx.source.ip)
        import ipaddress
        text = str(v.value)
        addr, slash, mask = text.partition("/")
        if addr.startswith("[") and addr.endswith("]"):
            addr = addr[1:-1]
        try:
            net = ipaddress.ip_network(addr + slash + mask, strict=False)
        except ValueError:
            looks_like_name = ":" not in text and any(c.isalpha() for c in text)
            raise self.err(f"'{text}' is not an IP address or network", v,
                           hint="serlite does not resolve host names in the config"
                           if looks_like_name else None)
        version = net.version
        bits = int(net.netmask)
        base = int(net.network_address)
        cache = _IP_CACHE

        def in_net(ctx):
            ip = ctx.source.ip
            key = cache.get(ip)
            if key is None:
                key = _ip_key(ip)
            return key[0] == version and (key[1] & bits) == base
        if op == "==":
            return in_net
        return lambda ctx: not in_net(ctx)

    def cmp_dst_ip(self, node, op, v):
        raise self.err("dst_ip is not supported yet", node)

    def cmp_src_port(self, node, op, v):
        cmp, want = _INT_OPS[op], v.value
        if cmp is None:
            raise self._bad_op(node, op, ("==", "!=", "<", ">", "<=", ">="))
        if v.kind != "int":
            raise self.err("src_port compares with a number", v)
        return lambda ctx: cmp(ctx.source.port, want)

    def cmp_proto(self, node, op, v):
        if op not in ("==", "!="):
            raise self._bad_op(node, op, ("==", "!="))
        want = str(v.value).lower()
        if v.kind not in ("word", "str") or want not in ("udp", "tcp", "tls", "sctp"):
            raise self.err("proto compares with udp, tcp, tls or sctp", v)
        if op == "==":
            return lambda ctx: ctx.source.proto == want
        return lambda ctx: ctx.source.proto != want

    def cmp_af(self, node, op, v):
        if op not in ("==", "!="):
            raise self._bad_op(node, op, ("==", "!="))
        if v.kind != "word" or v.value.lower() not in ("inet", "inet6"):
            raise self.err("af compares with inet or inet6", v)
        want6 = v.value.lower() == "inet6"
        if op == "==":
            return lambda ctx: (":" in ctx.source.ip) == want6
        return lambda ctx: (":" in ctx.source.ip) != want6

    def cmp_msg_len(self, node, op, v):
        """SER 0.9's ``msg:len OP N``, done with the core's ``len_gt(N)`` (message length > N)
        so that only the core knows how a message's length is measured."""
        if v.kind != "int":
            raise self.err("msg:len compares with a number", v)
        if op in ("=~", "!~"):
            raise self._bad_op(node, op, ("==", "!=", "<", ">", "<=", ">="))
        n = v.value
        gt = {">": n, ">=": n - 1, "<": n - 1, "<=": n}.get(op)

        def len_gt(limit):
            call = N.Call("len_gt", [N.Value("int", limit, line=v.line, col=v.col)],
                          line=node.line, col=node.col)
            if "len_gt" not in self.functions:
                raise self.err("msg:len needs the core function len_gt, which this serlite "
                               "lacks", node)
            return self.call(call, as_cond=True)
        if op == ">" or op == ">=":
            return len_gt(gt)
        if op == "<" or op == "<=":
            inner = len_gt(gt)
            return lambda ctx: not inner(ctx)
        longer_or_equal, longer = len_gt(n - 1), len_gt(n)
        if op == "==":
            return lambda ctx: longer_or_equal(ctx) and not longer(ctx)
        return lambda ctx: not longer_or_equal(ctx) or longer(ctx)

    def cmp_status(self, node, op, v):
        try:
            self.check_route_kind("'status'", _STATUS_ROUTES, node)
        except ConfigError as e:
            e.hint = e.hint or "status is the code of the reply being routed (onreply_route) " \
                "or of the winning reply (failure_route)"
            raise
        get = PVARS["rs"].make(None, self.kinds)
        if op in ("=~", "!~"):
            search = self._regex(v).search
            if op == "=~":
                return lambda ctx: search(str(get(ctx))) is not None
            return lambda ctx: search(str(get(ctx))) is None
        if v.kind == "str" and v.value.isdigit():
            want = int(v.value)
        elif v.kind == "int":
            want = v.value
        else:
            raise self.err("status compares with a number or a regular expression", v)
        cmp = _INT_OPS[op]
        return lambda ctx: cmp(get(ctx), want)


class _Expr:
    """A compiled expression: ``get`` a closure ctx -> value, or None when the value is the
    constant ``value``; ``type`` is "str", "int" or "null" (a getter of either type may still
    give None)."""

    __slots__ = ("get", "value", "type")

    def __init__(self, get, value, type_):
        self.get = get
        self.value = value
        self.type = type_


def _source(node):
    """How an expression term was written (for hints)."""
    if isinstance(node, N.PV):
        return node.text()
    return f'"{node.value}"' if node.kind == "str" else str(node.value)


def _const(value):
    return lambda ctx: value


def _negate(test):
    return lambda ctx: not test(ctx)


def _as_int(v):
    """An int, or the int a decimal string spells; None otherwise."""
    if type(v) is int:
        return v
    if v and v.isascii() and (v.isdigit() or v[0] == "-" and v[1:].isdigit()):
        return int(v)
    return None


def _text(get, type_):
    """A getter giving text: null becomes "", numbers their decimal text."""
    if type_ == "str":
        def text(ctx):
            v = get(ctx)
            return "" if v is None else v
    else:
        def text(ctx):
            v = get(ctx)
            return "" if v is None else str(v)
    return text


def _nullable_text(get):
    """A getter giving text or None (numbers as decimal text)."""
    def text(ctx):
        v = get(ctx)
        return v if v is None or type(v) is str else str(v)
    return text


def _joiner(pieces):
    """A getter joining ``pieces`` (str constants and text getters)."""
    fs = tuple(_const(p) if type(p) is str else p for p in pieces)
    if len(fs) == 2:
        a, b = fs
        return lambda ctx: a(ctx) + b(ctx)
    if len(fs) == 3:
        a, b, c = fs
        return lambda ctx: a(ctx) + b(ctx) + c(ctx)
    return lambda ctx: "".join([f(ctx) for f in fs])


_INT_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
            "<=": operator.le, ">=": operator.ge, "=~": None, "!~": None}


def _break(ctx):
    return 1


def _exit(ctx):
    raise _Stop


def _drop(ctx):
    ctx.dropped = True
    raise _Stop


# --- source IP matching -------------------------------------------------------------------------
# ctx.source.ip (a str) -> (version, int); IPv4-mapped IPv6 counts as IPv4.  A small cache keeps
# the ipaddress parse off the per-message path: a home router sees few distinct peers.

_IP_CACHE = {}
_IP_CACHE_MAX = 1024


def _ip_key(text):
    import ipaddress
    try:
        addr = ipaddress.ip_address(text[1:-1] if text.startswith("[") else text)
    except ValueError:
        key = (0, 0)
    else:
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        key = (addr.version, int(addr))
    if len(_IP_CACHE) >= _IP_CACHE_MAX:
        _IP_CACHE.clear()
    _IP_CACHE[text] = key
    return key


# --- function-call closures ---------------------------------------------------------------------

# One template makes every call closure.  Its arguments are written out (``meth(ctx, a0)``):
# ``meth(ctx, *args)`` would build a tuple each call, ~50 ns more a call on CPython 3.11, and a
# script runs several calls per message; so each argument count gets its own variant, made
# from the template on first use (``_call_maker``).  A statement returns None (go on); a
# condition whether rv > 0; rv == 0 stops the script either way.
_CALL_TEMPLATE = """\
def make(meth, args, failed, ScriptRuntimeError, _Stop):
    {unpack} = args
    def call(ctx):
        try:
            rv = meth(ctx{args})
        except ScriptRuntimeError:
            raise
        except Exception as e:
            raise failed(e).with_traceback(e.__traceback__) from e
{result}
    return call
"""
_STATEMENT_RESULT = """\
        if rv == 0:
            raise _Stop"""
_CONDITION_RESULT = """\
        if rv > 0:
            return True
        if rv == 0:
            raise _Stop
        return False"""
_CALL_MAKERS = {}       # (argument count, as_cond) -> make(meth, args, ...)


def _call_maker(n, as_cond):
    key = (n, as_cond)
    make = _CALL_MAKERS.get(key)
    if make is None:
        names = [f"a{i}" for i in range(n)]
        source = _CALL_TEMPLATE.format(
            unpack="(" + "".join(f"{a}, " for a in names) + ")",
            args="".join(f", {a}" for a in names),
            result=_CONDITION_RESULT if as_cond else _STATEMENT_RESULT)
        namespace = {}
        exec(compile(source, f"<script call of {n} arguments>", "exec"), namespace)
        make = _CALL_MAKERS[key] = namespace["make"]
    return make


def _make_call(meth, args, name, filename, line, as_cond):
    """The closure calling ``meth(ctx, *args)`` for a script's call of function ``name`` (see
    ``_CALL_TEMPLATE``); an exception from it (other than a ScriptRuntimeError) becomes a
    ScriptRuntimeError naming the call's ``filename:line``, its traceback going on into the
    module."""

    def failed(e):
        return ScriptRuntimeError(f"{type(e).__name__}: {e}", filename, line, name)

    call = _call_maker(len(args), as_cond)(meth, tuple(args), failed, ScriptRuntimeError, _Stop)
    # Name the closure after the script function: a traceback then reads "in lookup".
    call.__name__ = call.__qualname__ = name
    return call
