"""The shape of a module's export table (Kamailio's cmd_export_t / param_export_t).

Every module file ends with one ``EXPORTS = ModuleSpec(...)``.  The script compiler, `ser -c`,
and the docs read these tables; nothing else about a module is known before it is instantiated.
"""

from __future__ import annotations

# The route block types, re-exported for the module tables (they live below proxy/ and script/).
from ..routes import (ANY_ROUTE, BRANCH_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE,  # noqa: F401
                      REQUEST_ROUTE, ROUTE_NAMES)


class Function:
    """One script function a module exports.

    ``method`` names the bound method on the module instance; it is called as
    ``method(ctx, *args)`` where ``args`` are what ``fixup`` returned (or the raw string
    arguments when there is no fixup).  It returns an int: > 0 true, < 0 false, 0 stops the
    script (SER's convention).

    ``fixup(module, args, script) -> tuple`` runs once at compile time with the literal
    arguments (strings or ints as written) and the Script being compiled (its routes are known,
    e.g. for ``t_on_failure("1")``); it may raise ``ValueError("message")``, which the compiler
    turns into a ``ConfigError`` at the call's position.

    ``dynamic=True`` lets the script pass arguments only known at run time (pseudo-variables,
    ``"sip:" + $rU``).  Such a call evaluates them to strings (literal numbers stay ints) and runs
    ``fixup`` on every call, with the same contract: keep the fixup cheap and free of side
    effects, and make its checks hold for any value (a ValueError is then a run-time error).
    """

    __slots__ = ("name", "method", "nargs", "routes", "fixup", "doc", "dynamic")

    def __init__(self, name, method, nargs=(0,), routes=REQUEST_ROUTE, fixup=None, doc="",
                 dynamic=False):
        self.name = name
        self.method = method
        self.nargs = tuple(nargs)
        self.routes = routes
        self.fixup = fixup
        self.doc = doc
        self.dynamic = dynamic


class Param:
    """One ``modparam``: its type (``int``, ``str`` or ``bool``) and default.

    ``int`` accepts integers and ``yes``/``no`` (as 1/0, SER does the same); ``bool`` accepts
    ``yes``/``no``/``true``/``false``/``on``/``off``/0/1; ``str`` accepts strings only;
    ``list`` a string per ``modparam`` line, repeatable (the module gets a tuple of them, the
    default ``()``: uac's ``credential``).

    ``min``/``max`` (ints, inclusive, either may be None) bound an ``int`` param: the compiler
    refuses a value outside them at ``ser -c``, so a number the module would only choke on at
    run time (a 30-digit ``nonce_expire``) is a config error with its position.
    """

    __slots__ = ("type", "default", "doc", "min", "max")

    def __init__(self, type_, default, doc="", min=None, max=None):
        self.type = type_
        self.default = default
        self.doc = doc
        self.min = min
        self.max = max

    def out_of_range(self, value):
        """True when the int ``value`` is outside ``min``..``max``."""
        return (self.min is not None and value < self.min) or \
            (self.max is not None and value > self.max)

    def range_text(self):
        """``"1..86400"``, ``"at least 0"``, ``"at most 9"``, or "" when unbounded."""
        if self.min is not None and self.max is not None:
            return f"{self.min}..{self.max}"
        if self.min is not None:
            return f"at least {self.min}"
        if self.max is not None:
            return f"at most {self.max}"
        return ""


class ModuleSpec:
    """A module's export table.

    ``factory(params: dict) -> Module`` builds an instance; ``params`` holds every declared
    param, defaults filled in.  ``depends`` names modules that must be loaded too.
    """

    __slots__ = ("name", "factory", "functions", "params", "depends", "doc")

    def __init__(self, name, factory, functions=(), params=None, depends=(), doc=""):
        self.name = name
        self.factory = factory
        self.functions = {f.name: f for f in functions}
        self.params = dict(params or {})
        self.depends = tuple(depends)
        self.doc = doc


class Module:
    """Base class of module instances.

    ``__init__`` must do no I/O (``ser -c`` builds instances to run fixups).  ``start`` is called
    once the server is about to run the script: open files, arm timers there.  ``previous`` is the
    instance of the same module from the configuration this one replaces (SIGHUP), so a module
    can carry state (bindings, transactions) across a reload.  ``stop`` is called on exit and
    must save whatever should survive.
    """

    name = "?"

    def __init__(self, params):
        self.params = params

    def start(self, core, previous=None):
        self.core = core

    def stop(self):
        pass
