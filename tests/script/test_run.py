"""Running compiled routes on fake contexts: SER's semantics of conditions and statements."""

import pathlib
import traceback

import pytest

from serlite.modules.export import BRANCH_ROUTE, FAILURE_ROUTE, ONREPLY_ROUTE, REQUEST_ROUTE
from serlite.script.compiler import MAX_ROUTE_DEPTH, compile_config, compile_file
from serlite.script.errors import ScriptRuntimeError

from .fakes import FakeResponse, make_ctx

SEED = pathlib.Path(__file__).resolve().parent.parent / "data" / "configs" / "valid" / "seed.cfg"

MODULES = 'loadmodule "sl"\nloadmodule "tm"\nloadmodule "rr"\nloadmodule "textops"\n' \
          'loadmodule "usrloc"\nloadmodule "registrar"\n'


def script_of(routes, modules=MODULES):
    return compile_config(modules + routes, "t.cfg")


def run(script, rec, **ctx_args):
    """Run the main route on a fresh context; returns (value, names called, ctx)."""
    rec.calls.clear()
    ctx = make_ctx(**ctx_args)
    value = script.run_request(ctx)
    return value, rec.names(), ctx


# --- the seed config ----------------------------------------------------------------------------

@pytest.fixture
def seed(rec):
    rec.results["loose_route"] = -1
    return compile_file(str(SEED))


def test_seed_register_to_myself_saves_without_record_route(seed, rec):
    value, called, _ = run(seed, rec, method="REGISTER", ruri="sip:home.lan")
    assert called == ["loose_route", "save"]
    assert rec.calls[-1] == ("save", ("location",))
    assert value == 1


def test_seed_invite_to_a_registered_user(seed, rec):
    value, called, _ = run(seed, rec, method="INVITE", ruri="sip:bob@home.lan")
    assert called == ["record_route", "loose_route", "lookup", "t_relay"]
    assert value == 1


def test_seed_invite_to_an_unknown_user_gets_404_and_stops(seed, rec):
    rec.results["lookup"] = -1
    value, called, _ = run(seed, rec, method="INVITE", ruri="sip:nobody@home.lan")
    assert called == ["record_route", "loose_route", "lookup", "sl_send_reply"]
    assert rec.calls[-1] == ("sl_send_reply", (404, "Not Found"))   # the fixup's conversion
    assert value == 1


def test_seed_invite_elsewhere_is_relayed(seed, rec):
    _, called, _ = run(seed, rec, method="INVITE", ruri="sip:carol@example.org")
    assert called == ["record_route", "loose_route", "t_relay"]


def test_seed_in_dialog_request_follows_route_set(seed, rec):
    rec.results["loose_route"] = 1
    _, called, _ = run(seed, rec, method="BYE", ruri="sip:bob@10.0.0.9")
    assert called == ["record_route", "loose_route", "t_relay"]


# --- conditions ---------------------------------------------------------------------------------

def test_not_negates_the_comparison(rec):
    s = script_of('route { if (!method == "REGISTER") record_route(); }')
    assert run(s, rec, method="INVITE")[1] == ["record_route"]
    assert run(s, rec, method="REGISTER")[1] == []


def test_method_compares_case_insensitively(rec):
    s = script_of('route { if (method == "invite") record_route(); '
                  'if (method == INVITE) loose_route(); }')
    assert run(s, rec, method="INVITE")[1] == ["record_route", "loose_route"]


@pytest.mark.parametrize("a, b, expect_and, expect_or", [
    (1, 1, ["a", "b"], ["a"]),
    (1, -1, ["a", "b"], ["a"]),
    (-1, 1, ["a"], ["a", "b"]),
    (-1, -1, ["a"], ["a", "b"]),
])
def test_and_or_short_circuit(rec, a, b, expect_and, expect_or):
    modules = 'loadmodule "textops"\n'
    rec.results.update(search=lambda ctx, which: a if which == "a" else b)
    calls = {}
    for op in ("&&", "||"):
        s = script_of(f'route {{ if (search("a") {op} search("b")) append_hf("yes"); }}', modules)
        rec.calls.clear()
        s.run_request(make_ctx())
        calls[op] = [args[0] for name, args in rec.calls if name == "search"]
        taken = ("append_hf", ("yes",)) in rec.calls
        assert taken == ((a > 0 and b > 0) if op == "&&" else (a > 0 or b > 0))
    assert calls == {"&&": expect_and, "||": expect_or}


@pytest.mark.parametrize("cond, ip, expected", [
    ("src_ip == 192.168.0.0/16", "192.168.1.20", True),
    ("src_ip == 192.168.0.0/16", "192.169.0.1", False),
    ("src_ip == 192.168.0.0/16", "::ffff:192.168.3.4", True),     # IPv4-mapped counts as v4
    ("src_ip == 192.168.0.0/16", "fe80::1", False),
    ("src_ip == 172.16.0.0/255.240.0.0", "172.31.255.255", True),
    ("src_ip == 10.0.0.1", "10.0.0.1", True),
    ("src_ip == 10.0.0.1", "10.0.0.10", False),
    ("src_ip != 10.0.0.1", "10.0.0.10", True),
    ("src_ip == ::1", "::1", True),
    ("src_ip == [::1]", "::1", True),
    ("src_ip == fe80::/10", "fe80::abcd", True),
    ("src_ip == fe80::/10", "2001:db8::1", False),
    ("src_ip == myself", "192.168.1.1", True),
    ("src_ip == myself", "192.168.1.2", False),
    ('src_ip == "10.0.0.7"', "10.0.0.7", True),
    ('src_ip =~ "^10\\."', "10.0.0.7", True),
    ("src_ip == 10.0.0.0/8", "not-an-ip", False),
])
def test_src_ip(rec, cond, ip, expected):
    s = script_of(f"route {{ if ({cond}) record_route(); }}")
    assert (run(s, rec, ip=ip)[1] == ["record_route"]) is expected


@pytest.mark.parametrize("cond, ruri, expected", [
    ('uri =~ "^sip:[0-9]+@"', "sip:1234@home.lan", True),
    ('uri =~ "^sip:[0-9]+@"', "sip:bob@home.lan", False),
    ('uri =~ "@HOME\\.lan$"', "sip:bob@home.lan", True),        # regexes ignore case
    ('uri !~ "^sip:[0-9]+@"', "sip:bob@home.lan", True),
    ('uri == "SIP:bob@home.lan"', "sip:bob@home.lan", True),    # case-insensitive equality
    ('uri != "sip:bob@home.lan"', "sip:bob@home.lan", False),
    ("uri == myself", "sip:bob@home.lan", True),
    ("uri == myself", "sip:bob@example.org", False),
    ("uri != myself", "sip:bob@example.org", True),
])
def test_uri(rec, cond, ruri, expected):
    s = script_of(f"route {{ if ({cond}) record_route(); }}")
    assert (run(s, rec, ruri=ruri)[1] == ["record_route"]) is expected


def test_uri_sees_the_rewritten_request_uri(rec):
    rec.results["prefix"] = lambda ctx, p: (ctx.set_ruri("sip:00123@home.lan"), 1)[1]
    s = script_of('route { prefix("00"); if (uri =~ "^sip:00") record_route(); }')
    assert run(s, rec, ruri="sip:123@home.lan")[1] == ["prefix", "record_route"]


def test_from_and_to_uri(rec):
    s = script_of('route { if (from_uri =~ "^sip:alice@") record_route(); '
                  'if (to_uri == myself) loose_route(); '
                  'if (from_uri != myself) t_relay(); }')
    assert run(s, rec, from_uri="sip:alice@home.lan", to_uri="sip:bob@example.org")[1] == \
        ["record_route"]
    assert run(s, rec, from_uri="sip:eve@evil.org", to_uri="sip:bob@home.lan")[1] == \
        ["loose_route", "t_relay"]


@pytest.mark.parametrize("cond, kw, expected", [
    ("src_port == 5060", {"port": 5060}, True),
    ("src_port >= 1024", {"port": 1023}, False),
    ("src_port < 1024", {"port": 1023}, True),
    ("proto == udp", {"proto": "udp"}, True),
    ("proto == tcp", {"proto": "udp"}, False),
    ("proto != tcp", {"proto": "udp"}, True),
    ("af == inet6", {"ip": "::1"}, True),
    ("af == inet", {"ip": "::1"}, False),
    ("af == inet", {"ip": "10.0.0.1"}, True),
    ("1", {}, True),
    ("0", {}, False),
    ("-1", {}, True),             # SER: any non-zero number is true
])
def test_port_proto_af_and_constants(rec, cond, kw, expected):
    s = script_of(f"route {{ if ({cond}) record_route(); }}")
    assert (run(s, rec, **kw)[1] == ["record_route"]) is expected


@pytest.mark.parametrize("op, n, length, expected", [
    (">=", 2048, 2048, True), (">=", 2048, 2047, False), (">", 2048, 2048, False),
    ("<", 100, 99, True), ("<", 100, 100, False), ("<=", 100, 100, True),
    ("==", 100, 100, True), ("==", 100, 101, False), ("!=", 100, 100, False),
    ("!=", 100, 7, True),
])
def test_msg_len_uses_the_core_len_gt(rec, op, n, length, expected):
    rec.results["len_gt"] = lambda ctx, limit: 1 if length > limit else -1
    s = script_of(f"route {{ if (msg:len {op} {n}) record_route(); }}")
    assert (run(s, rec)[1][-1:] == ["record_route"]) is expected


def test_else_if_chain(rec):
    s = script_of('route { if (method == "A") append_hf("a"); '
                  'else if (method == "B") append_hf("b"); '
                  'else if (method == "C") { append_hf("c"); } '
                  'else append_hf("other"); append_hf("end"); }')
    for method, branch in (("A", "a"), ("B", "b"), ("C", "c"), ("D", "other")):
        run(s, rec, method=method)
        assert rec.calls == [("append_hf", (branch,)), ("append_hf", ("end",))]


# --- function results, control flow -------------------------------------------------------------

def test_function_returning_zero_stops_the_script(rec):
    rec.results["record_route"] = 0
    s = script_of("route { record_route(); t_relay(); }")
    value, called, _ = run(s, rec)
    assert (value, called) == (0, ["record_route"])


def test_function_returning_zero_in_a_condition_stops_the_script(rec):
    rec.results["loose_route"] = 0
    s = script_of("route { if (!loose_route()) record_route(); t_relay(); }")
    assert run(s, rec)[:2] == (0, ["loose_route"])


def test_break_and_return_end_only_the_current_route(rec):
    s = script_of("route { route(1); route(2); t_relay(); } "
                  "route[1] { record_route(); break; loose_route(); } "
                  "route[2] { record_route(); return; loose_route(); }")
    value, called, _ = run(s, rec)
    assert (value, called) == (1, ["record_route", "record_route", "t_relay"])


def test_exit_ends_the_whole_script_from_a_sub_route(rec):
    s = script_of("route { route(1); t_relay(); } route[1] { record_route(); exit; }")
    assert run(s, rec)[:2] == (0, ["record_route"])


def test_drop_marks_the_context_and_stops(rec):
    s = script_of("route { route(1); t_relay(); } route[1] { drop; }")
    value, called, ctx = run(s, rec)
    assert (value, called, ctx.dropped) == (0, [], True)


def test_return_values(rec):
    s = script_of("route { if (route(1)) record_route(); if (!route(2)) loose_route(); "
                  "return(7); } route[1] { return 3; } route[2] { return(-1); }")
    value, called, _ = run(s, rec)
    assert (value, called) == (7, ["record_route", "loose_route"])
    assert s.run(REQUEST_ROUTE, "1", make_ctx()) == 3
    assert s.run(REQUEST_ROUTE, 2, make_ctx()) == -1


def test_return_zero_stops_the_script(rec):
    s = script_of("route { route(1); t_relay(); } route[1] { return(0); }")
    assert run(s, rec)[:2] == (0, [])


def test_named_routes(rec):
    s = script_of('route { route(relay); route("relay"); } route[relay] { t_relay(); }')
    assert run(s, rec)[1] == ["t_relay", "t_relay"]


def test_route_zero_is_the_main_route(rec):
    s = script_of("route[0] { t_relay(); }")
    assert run(s, rec)[1] == ["t_relay"]
    assert s.has_route(REQUEST_ROUTE, "0") and s.has_route(REQUEST_ROUTE, 0)


def test_recursion_is_limited(rec):
    s = script_of("route { route(1); } route[1] { if (method == \"INVITE\") { route(1); } }")
    with pytest.raises(ScriptRuntimeError) as info:
        run(s, rec)
    assert str(info.value) == \
        f"t.cfg:7: route(1): more than {MAX_ROUTE_DEPTH} nested route() calls"
    assert s._depth == [0]                  # the counter unwinds after the error
    assert run(s, rec, method="ACK")[0] == 1


def test_deep_but_bounded_recursion_runs(rec):
    rec.results["search"] = lambda ctx, s: 1 if len(rec.calls) < MAX_ROUTE_DEPTH - 1 else -1
    s = script_of('route { route(1); } route[1] { if (search("x")) { route(1); } }',
                  'loadmodule "textops"\n')
    assert run(s, rec)[0] == 1
    assert len(rec.calls) == MAX_ROUTE_DEPTH - 1


def test_a_module_exception_names_the_call(rec):
    def boom(ctx, table):
        raise KeyError("x")
    rec.results["lookup"] = boom
    s = script_of('route {\n  if (!lookup("location")) break;\n}')
    with pytest.raises(ScriptRuntimeError) as info:
        run(s, rec)
    assert str(info.value) == "t.cfg:8: in lookup(): KeyError: 'x'"
    assert isinstance(info.value.__cause__, KeyError)
    # the traceback goes on into the module, so a log line can name where it really failed
    assert traceback.extract_tb(info.value.__traceback__)[-1].name == "boom"


def test_raw_forward_arguments_reach_the_function_as_strings(rec):
    s = script_of("route { forward(uri:host, uri:port); forward(10.0.0.2, 5060); }", "")
    run(s, rec)
    assert rec.calls == [("forward", ("uri:host", "uri:port")), ("forward", ("10.0.0.2", 5060))]


# --- other route blocks -------------------------------------------------------------------------

def test_reply_failure_and_branch_routes(rec):
    s = script_of('route { t_relay(); } '
                  'onreply_route { if (status =~ "^18[0-9]$") search("ringing"); '
                  '  if (status >= 200 && status < 300) search("ok"); '
                  '  if (status == "486") drop; } '
                  'onreply_route[2] { search("two"); } '
                  'failure_route[1] { if (t_check_status("486")) t_relay(); } '
                  'branch_route[1] { append_hf("X: y\\r\\n"); }')
    for code, expected in ((180, ["search"]), (200, ["search"]), (404, [])):
        rec.calls.clear()
        ctx = make_ctx(msg=FakeResponse(code), )
        assert s.run_reply(ctx) == 1
        assert rec.names() == expected
    ctx = make_ctx(msg=FakeResponse(486))
    assert (s.run_reply(ctx), ctx.dropped) == (0, True)
    rec.calls.clear()
    assert s.run(ONREPLY_ROUTE, "2", make_ctx(msg=FakeResponse(200))) == 1
    assert s.run(FAILURE_ROUTE, "1", make_ctx()) == 1
    assert s.run(BRANCH_ROUTE, "1", make_ctx()) == 1
    assert rec.names() == ["search", "t_check_status", "t_relay", "append_hf"]
    assert rec.calls[-1] == ("append_hf", ("X: y\r\n",))
    with pytest.raises(KeyError):
        s.run(FAILURE_ROUTE, "9", make_ctx())


def test_run_reply_without_a_reply_route(rec):
    s = script_of("route { t_relay(); } onreply_route[1] { }")
    assert s.run_reply(make_ctx(msg=FakeResponse(200))) == 1
