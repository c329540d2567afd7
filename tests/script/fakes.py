"""Fakes for the script tests: module export tables, core, messages, contexts.

The real modules (sl, tm, rr, ...) are written elsewhere; these fakes declare the same SER
names, argument counts, route blocks and params, and record every call in ``rec.calls`` as
``(function name, args)``.  ``rec.results[name]`` sets what a function returns (an int, or a
callable ``(ctx, *args) -> int``); the default is 1.
"""

import serlite.modules
from serlite.modules.export import (ANY_ROUTE, BRANCH_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE,
                                    REQUEST_ROUTE, Function, Module, ModuleSpec, Param)
from serlite.proxy.context import Context, Source
from serlite.sip.uri import URI


class Recorder:
    def __init__(self):
        self.calls = []
        self.results = {}
        self.instances = {}

    def names(self):
        return [name for name, _ in self.calls]


class FakeModule(Module):
    """Every attribute not found is a script function that records its call."""

    def __init__(self, name, params, rec):
        super().__init__(params)
        self.name = name
        self.rec = rec
        rec.instances[name] = self

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        rec = self.rec

        def fn(ctx, *args):
            rec.calls.append((attr, args))
            result = rec.results.get(attr, 1)
            return result(ctx, *args) if callable(result) else result
        return fn


def _code_fixup(module, args, script):
    code = int(args[0]) if not isinstance(args[0], int) else args[0]
    if not 100 <= code <= 699:
        raise ValueError(f"bad reply code {args[0]!r}")
    return (code, args[1])


def _failure_fixup(module, args, script):
    name = str(args[0])
    if not script.has_route(FAILURE_ROUTE, name):
        raise ValueError(f"t_on_failure: there is no failure_route[{name}]")
    return (name,)


def _int_fixup(module, args, script):
    try:
        return (int(args[0]),)
    except ValueError:
        raise ValueError(f"expected a number, got {args[0]!r}") from None


def make_specs(rec):
    def spec(name, functions=(), params=None, depends=()):
        return ModuleSpec(name, lambda p, name=name: FakeModule(name, p, rec),
                          functions, params, depends)

    F = Function
    RF = REQUEST_ROUTE | FAILURE_ROUTE
    return {
        "core": spec("core", [
            F("forward", "forward", (0, 1, 2), RF | BRANCH_ROUTE),
            F("log", "log", (1, 2), ANY_ROUTE, dynamic=True),
            F("setflag", "setflag", (1,), ANY_ROUTE, _int_fixup),
            F("resetflag", "resetflag", (1,), ANY_ROUTE, _int_fixup),
            F("isflag", "isflag", (1,), ANY_ROUTE, _int_fixup),
            F("rewriteuri", "rewriteuri", (1,), RF | BRANCH_ROUTE, dynamic=True),
            F("rewritehost", "rewritehost", (1,), RF | BRANCH_ROUTE),
            F("strip", "strip", (1,), RF | BRANCH_ROUTE, _int_fixup),
            F("prefix", "prefix", (1,), RF | BRANCH_ROUTE),
            F("append_branch", "append_branch", (0, 1), RF, dynamic=True),
            F("force_rport", "force_rport", (0,), REQUEST_ROUTE),
            F("len_gt", "len_gt", (1,), REQUEST_ROUTE | ONREPLY_ROUTE, _int_fixup),
            F("has_totag", "has_totag", (0,), RF),
        ]),
        "sl": spec("sl", [
            F("sl_send_reply", "sl_send_reply", (2,), REQUEST_ROUTE, _code_fixup, dynamic=True),
            F("sl_reply", "sl_send_reply", (2,), REQUEST_ROUTE, _code_fixup, dynamic=True),
            F("sl_reply_error", "sl_reply_error", (0,), REQUEST_ROUTE),
        ]),
        "tm": spec("tm", [
            F("t_relay", "t_relay", (0, 2), RF),
            F("t_newtran", "t_newtran", (0,), REQUEST_ROUTE),
            F("t_reply", "t_reply", (2,), RF, _code_fixup, dynamic=True),
            F("t_on_failure", "t_on_failure", (1,), RF | BRANCH_ROUTE, _failure_fixup),
            F("t_check_status", "t_check_status", (1,), FAILURE_ROUTE | ONREPLY_ROUTE),
        ], {"fr_timer": Param(int, 30), "fr_inv_timer": Param(int, 120),
            "noisy_ctimer": Param(bool, False)}),
        "rr": spec("rr", [
            F("record_route", "record_route", (0,), REQUEST_ROUTE),
            F("loose_route", "loose_route", (0,), REQUEST_ROUTE),
        ], {"enable_full_rr": Param(int, 0), "append_fromtag": Param(int, 1)}),
        "maxfwd": spec("maxfwd", [
            F("mf_process_maxfwd_header", "mf_process_maxfwd_header", (1,), REQUEST_ROUTE,
              _int_fixup),
        ]),
        "textops": spec("textops", [
            F("search", "search", (1,), ANY_ROUTE),
            F("append_hf", "append_hf", (1,), RF | BRANCH_ROUTE, dynamic=True),
            F("subst_uri", "subst_uri", (1,), RF | BRANCH_ROUTE),
            F("subst_user", "subst_user", (1,), RF | BRANCH_ROUTE),
        ]),
        "usrloc": spec("usrloc", [], {"db_mode": Param(int, 0),
                                      "timer_interval": Param(int, 60, min=1, max=3600),
                                      "user_column": Param(str, "username")}),
        "registrar": spec("registrar", [
            F("save", "save", (1, 2), REQUEST_ROUTE),
            F("lookup", "lookup", (1,), RF),
        ], {"default_expires": Param(int, 3600), "append_branches": Param(bool, True)},
            depends=("usrloc",)),
    }


class FakeCore:
    def __init__(self, hosts=("home.lan", "192.168.1.1"), ips=("192.168.1.1", "::1")):
        self.hosts = set(hosts)
        self.ips = set(ips)

    def is_myself_uri(self, uri):
        if uri is None:         # an R-URI that did not parse
            return False
        uri = str(uri)
        host = uri.split("@", 1)[-1].split(":", 1)[-1] if "@" in uri else uri.split(":", 1)[-1]
        return host.split(";", 1)[0].split(":", 1)[0] in self.hosts

    def is_myself_ip(self, ip):
        return ip in self.ips


class FakeURIHeader:
    def __init__(self, uri_text):
        self.uri_text = uri_text


class FakeRequest:
    def __init__(self, method, ruri, from_uri="sip:alice@home.lan", to_uri="sip:bob@home.lan"):
        self.method = method
        self.ruri = ruri
        self.from_ = FakeURIHeader(from_uri)
        self.to = FakeURIHeader(to_uri)

    @property
    def uri(self):
        return URI.parse(self.ruri)


class FakeResponse:
    def __init__(self, status, method="INVITE"):
        self.status = status
        self.method = method


_MISSING = tuple(s for s in ("dropped", "reply", "reply_status") if s not in Context.__slots__)
if not _MISSING:
    Ctx = Context
else:   # until the lead adds the slots
    class Ctx(Context):
        __slots__ = _MISSING

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.dropped = False
            self.reply = None
            self.reply_status = 0


def make_ctx(method="INVITE", ruri="sip:bob@home.lan", ip="10.0.0.7", port=5060, proto="udp",
             core=None, msg=None, **kw):
    msg = msg if msg is not None else FakeRequest(method, ruri, **kw)
    return Ctx(msg, Source(proto, ip, port), core or FakeCore())


def install(monkeypatch):
    """Make serlite.modules.spec/AVAILABLE serve the fake tables; returns the Recorder."""
    rec = Recorder()
    specs = make_specs(rec)

    def spec(name):
        return specs[name]            # KeyError for unknown names, like the real one

    monkeypatch.setattr(serlite.modules, "spec", spec)
    monkeypatch.setattr(serlite.modules, "AVAILABLE", tuple(n for n in specs if n != "core"))
    return rec
