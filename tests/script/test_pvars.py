"""Pseudo-variables, assignments, '+' and dynamic function arguments, on real parsed messages
(the module tables are the fakes of fakes.py: every call is recorded in ``rec.calls``)."""

import pytest

from serlite.modules.export import FAILURE_ROUTE, ONREPLY_ROUTE, REQUEST_ROUTE
from serlite.proxy.context import Source
from serlite.script.compiler import compile_config
from serlite.script.errors import ConfigError, ScriptRuntimeError
from serlite.sip.message import parse

from .fakes import Ctx, FakeCore

MODULES = 'loadmodule "sl"\nloadmodule "tm"\nloadmodule "textops"\nloadmodule "usrloc"\n' \
          'loadmodule "registrar"\n'

INVITE = (
    "INVITE sip:100@home.lan;transport=udp SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK776asdhds;rport\r\n"
    "Max-Forwards: 70\r\n"
    'To: "Bob" <sip:bob@example.org>\r\n'
    "From: Alice <sip:alice@home.lan>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.home.lan\r\n"
    "CSeq: 314159 INVITE\r\n"
    "User-Agent: Yealink SIP-T46S 66.85.0.5\r\n"
    "Contact: <sip:alice@192.168.1.20:5062>\r\n"
    "X-Code: 999\r\n"
    "Content-Length: 0\r\n\r\n")

RINGING = (
    "SIP/2.0 180 Ringing\r\n"
    "Via: SIP/2.0/UDP 192.168.1.1;branch=z9hG4bKserlite.1\r\n"
    "Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK776asdhds;rport=5062\r\n"
    'To: "Bob" <sip:bob@example.org>;tag=a6c85cf\r\n'
    "From: Alice <sip:alice@home.lan>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.home.lan\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Content-Length: 0\r\n\r\n")

BUSY = RINGING.replace("180 Ringing", "486 Busy Here")


def msg(text=INVITE, **replace):
    for old, new in replace.items():
        text = text.replace(old, new)
    return parse(text.encode("latin-1"))


def ctx_of(m=None, route_type=REQUEST_ROUTE, ip="192.168.1.20", port=5062):
    return Ctx(m if m is not None else msg(), Source("udp", ip, port), FakeCore(),
               route_type)


def script_of(routes):
    # the modules go last, so that line numbers in messages are those of ``routes``
    return compile_config(routes + "\n" + MODULES, "t.cfg")


def error_of(routes):
    with pytest.raises(ConfigError) as info:
        script_of(routes)
    e = info.value
    return e.line, e.col, e.message, e.hint


def logged(rec):
    return [args[-1] for name, args in rec.calls if name == "log"]


def taken(cond, rec, ctx=None):
    """Whether ``if (cond)`` is true in the main route for ``ctx`` (the INVITE by default)."""
    s = script_of(f"route {{ if ({cond}) append_hf(\"yes\"); }}")
    rec.calls.clear()
    s.run_request(ctx or ctx_of())
    return rec.names() == ["append_hf"]


# --- reading ------------------------------------------------------------------------------------

@pytest.mark.parametrize("pv, text", [
    ("$ru", "sip:100@home.lan;transport=udp"),
    ("$rU", "100"),
    ("$rd", "home.lan"),
    ("$rp", "5060"),                     # not written: the default of sip:
    ("$du", ""),                         # null, as text
    ("$fu", "sip:alice@home.lan"),
    ("$fU", "alice"),
    ("$fd", "home.lan"),
    ("$tu", "sip:bob@example.org"),
    ("$tU", "bob"),
    ("$td", "example.org"),
    ("$si", "192.168.1.20"),
    ("$sp", "5062"),
    ("$ci", "a84b4c76e66710@pc33.home.lan"),
    ("$cs", "314159"),
    ("$rm", "INVITE"),
    ("$ua", "Yealink SIP-T46S 66.85.0.5"),
    ("$hdr(User-Agent)", "Yealink SIP-T46S 66.85.0.5"),
    ("$hdr(user-agent)", "Yealink SIP-T46S 66.85.0.5"),
    ("$hdr(v)", "SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK776asdhds;rport"),   # compact
    ("$hdr(X-Absent)", ""),
])
def test_every_pseudo_variable_as_text(rec, pv, text):
    s = script_of(f"route {{ log(1, {pv}); }}")
    s.run_request(ctx_of())
    assert logged(rec) == [text]


@pytest.mark.parametrize("cond, expected", [
    ('$rU == "100"', True),
    ("$rU == 100", True),                # a number: text that spells it compares numerically
    ('$rU != "100"', False),
    ('$fU == "Alice"', False),           # == on text is exact (case-sensitive)
    ('$fU =~ "^ALICE$"', True),          # regular expressions ignore case, as everywhere
    ('$si =~ "^192\\.168\\."', True),
    ('$si !~ "^10\\."', True),
    ('$hdr(User-Agent) =~ "Yealink"', True),
    ("$ru != $tu", True),
    ("$fd == $rd", True),
    ("$rp == 5060", True),
    ('$rp == "5060"', True),
    ("$rp != 5060", False),
    ("$sp > 5000 && $sp <= 5062", True),
    ("$cs >= 314159", True),
    ('$rm == "INVITE"', True),
    ("$du == null", True),
    ("$du != null", False),
    ("$ua != null", True),
    ("$hdr(X-Absent) == null", True),
    ('$hdr(X-Absent) == ""', False),     # null is not the empty string
    ('$hdr(X-Absent) =~ ".*"', False),   # nor does it match anything
    ('$hdr(X-Absent) !~ "x"', True),
    ("$hdr(X-Absent) != 5", True),
    ("$hdr(X-Absent) < 5", False),
    ('$hdr(X-Code) > 900', True),
    ('$ru == "sip:" + $rU + "@home.lan;transport=udp"', True),
])
def test_comparisons(rec, cond, expected):
    assert taken(cond, rec) is expected


@pytest.mark.parametrize("ruri, rp", [
    ("sip:100@home.lan:5070", "5070"),
    ("sips:100@home.lan", "5061"),
    ("sip:100@home.lan;transport=TLS", "5061"),
    ("sip:[2001:db8::1]", "5060"),
    ("tel:+4930123", ""),                 # null
])
def test_rp_is_the_port_or_the_default(rec, ruri, rp):
    s = script_of("route { log(1, $rp); }")
    s.run_request(ctx_of(msg(**{"sip:100@home.lan;transport=udp SIP": f"{ruri} SIP"})))
    assert logged(rec) == [rp]


def test_uri_parts_of_a_from_with_another_scheme_are_null(rec):
    m = msg(**{"<sip:alice@home.lan>": "<mailto:alice@home.lan>"})
    s = script_of('route { log(1, $fu); if ($fU == null && $fd == null) log(1, "null"); }')
    s.run_request(ctx_of(m))
    assert logged(rec) == ["mailto:alice@home.lan", "null"]


def test_pseudo_variables_see_the_rewritten_ruri(rec):
    s = script_of('route { rewriteuri("x"); $ru = "sip:200@gw.lan:5070"; '
                  'log(1, $rU + " " + $rd + " " + $rp); }')
    ctx = ctx_of()
    s.run_request(ctx)
    assert logged(rec) == ["200 gw.lan 5070"]
    assert ctx.msg.ruri == "sip:100@home.lan;transport=udp"     # the message is not touched


def test_source_can_be_missing_in_a_reply_route(rec):
    s = script_of('route { }\nonreply_route { if ($si == null) log(1, "no source " + $sp); }')
    ctx = Ctx(msg(RINGING), None, FakeCore(), ONREPLY_ROUTE)
    s.run_reply(ctx)
    assert logged(rec) == ["no source "]


# --- replies: status, $rs, $rr, $rm -------------------------------------------------------------

def test_status_rs_rr_rm_in_onreply_route(rec):
    s = script_of('route { }\nonreply_route { if (status =~ "^18") log(1, "ringing"); '
                  'if ($rs == 180 && $rr == "Ringing") log(1, $rs + " " + $rr); '
                  'if ($rm == "INVITE") log(1, "cseq method"); }')
    s.run_reply(Ctx(msg(RINGING), Source("udp", "10.0.0.9", 5060), FakeCore(), ONREPLY_ROUTE))
    assert logged(rec) == ["ringing", "180 Ringing", "cseq method"]


def failure_ctx(reply, status):
    ctx = ctx_of()
    ctx.route_type = FAILURE_ROUTE
    ctx.reply = reply
    ctx.reply_status = status
    return ctx


def test_status_in_failure_route_is_the_winning_reply(rec):
    s = script_of('route { t_on_failure("1"); t_relay(); }\n'
                  'failure_route[1] { if (status == 486) log(1, "busy"); '
                  'if (status =~ "^4") log(1, "4xx"); '
                  'log(1, $rs + " " + $rr); '
                  'if ($rm == "INVITE" && $fU == "alice") log(1, "the request"); }')
    s.run(FAILURE_ROUTE, "1", failure_ctx(msg(BUSY), 486))
    assert logged(rec) == ["busy", "4xx", "486 Busy Here", "the request"]


def test_a_locally_made_408_has_a_status_and_no_reason(rec):
    s = script_of('route { }\nfailure_route[1] { if (status == 408 && $rr == null) '
                  'log(1, "timeout " + $rs); }')
    s.run(FAILURE_ROUTE, "1", failure_ctx(None, 408))
    assert logged(rec) == ["timeout 408"]


def test_status_in_a_route_called_from_both_reply_blocks(rec):
    s = script_of('route { }\nroute[2] { if (status == 486) log(1, "busy " + $rs); }\n'
                  'failure_route[1] { route(2); }\nonreply_route { route(2); }')
    s.run(FAILURE_ROUTE, "1", failure_ctx(None, 486))
    s.run_reply(Ctx(msg(BUSY), Source("udp", "10.0.0.9", 5060), FakeCore(), ONREPLY_ROUTE))
    assert logged(rec) == ["busy 486", "busy 486"]


# --- assignments --------------------------------------------------------------------------------

@pytest.mark.parametrize("stmt, ruri", [
    ('$ru = "sip:" + $rU + "@10.0.0.2";', "sip:100@10.0.0.2"),
    ('$rU = "alice";', "sip:alice@home.lan;transport=udp"),       # parameters kept
    ('$rd = "10.0.0.2";', "sip:100@10.0.0.2;transport=udp"),
    ('$rd = "GW.Example.ORG";', "sip:100@gw.example.org;transport=udp"),
    ("$rU = null;", "sip:home.lan;transport=udp"),
    ('$rU = "";', "sip:home.lan;transport=udp"),
    ("$rU = 200;", "sip:200@home.lan;transport=udp"),
    ('$rU = "+49" + $rU; $rd = $fd;', "sip:+49100@home.lan;transport=udp"),
    ('$ru = "sip:x@a"; $rU = "y";', "sip:y@a"),
])
def test_assigning_the_ruri(rec, stmt, ruri):
    ctx = ctx_of()
    script_of(f"route {{ {stmt} }}").run_request(ctx)
    assert ctx.ruri == ruri
    assert ctx.msg.ruri == "sip:100@home.lan;transport=udp"


def test_assigning_du(rec):
    s = script_of('route { $du = "sip:10.0.0.2:5070"; log(1, $du); $du = null; '
                  'if ($du == null) log(1, "cleared"); $du = "sip:" + $si; log(1, $du); '
                  '$du = ""; }')
    ctx = ctx_of()
    s.run_request(ctx)
    assert logged(rec) == ["sip:10.0.0.2:5070", "cleared", "sip:192.168.1.20"]
    assert ctx.dst_uri is None


@pytest.mark.parametrize("stmt, message", [
    ('$ru = "not a uri";', "$ru = 'not a uri': ParseError: 400 malformed URI 'not a uri'"),
    ('$rd = "bad host!";', "$rd = 'bad host!': ValueError: 'bad host!' is not a host"),
    ('$rU = "a b";', "$rU = 'a b': ValueError: 'a b' is not a URI user part"),
    ("$ru = $hdr(X-Absent);", "$ru = None: ValueError: $ru cannot be null"),
])
def test_assignment_failing_at_run_time(rec, stmt, message):
    s = script_of(f"route {{\n  {stmt}\n}}")
    with pytest.raises(ScriptRuntimeError) as info:
        s.run_request(ctx_of())
    assert str(info.value) == f"t.cfg:2: {message}"
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("stmt, error", [
    ('$fu = "sip:x@y";', (1, 9, "$fu is read-only",
                          "assignable: $ru, $rU, $rd, $du")),
    ('$hdr(X) = "1";', (1, 9, "$hdr(X) is read-only", "assignable: $ru, $rU, $rd, $du")),
    ("$ru = null;", (1, 15, "$ru cannot be null", None)),
    ("$rd = null;", (1, 15, "$rd cannot be null", None)),
    ('$ru == "x";', (1, 13, "expected '=' after '$ru', got '=='",
                     "comparisons go in a condition: if ($ru == ...) ...")),
    ("$ru = ;", (1, 15, "expected a value after '$ru =', got ';'", None)),
    ('$ru = "a" "b";', (1, 18, "missing ';' after the assignment to $ru", None)),
    ("$ru = udp;", (1, 15, "expected a quoted string, a number or a pseudo-variable, got udp",
                    'write "udp"')),
])
def test_assignment_errors(rec, stmt, error):
    assert error_of(f"route {{ {stmt} }}") == error


def test_assigning_the_ruri_in_a_reply_route_is_an_error(rec):
    assert error_of('route { }\nonreply_route { $rU = "x"; }')[:3] == \
        (2, 17, "assigning $rU is not allowed in onreply_route")


# --- '+' and dynamic arguments ------------------------------------------------------------------

def test_plus_of_literals_is_folded_at_start_up(rec):
    # so it works for any function, with its fixup run once (the fake fixup makes 404 an int)
    s = script_of('route { sl_send_reply("404", "Not " + "Found"); lookup("loc" + "ation"); '
                  'log(1, "port " + 5060 + "\\n"); }')
    s.run_request(ctx_of())
    assert rec.calls == [("sl_send_reply", (404, "Not Found")), ("lookup", ("location",)),
                         ("log", (1, "port 5060\n"))]


def test_dynamic_arguments(rec):
    s = script_of('route {\n'
                  '  log(1, "call from " + $fu + " to " + $ru + "\\n");\n'
                  '  rewriteuri("sip:" + $rU + "@gw");\n'
                  '  append_hf("X-Orig: " + $si + ":" + $sp + "\\r\\n");\n'
                  '  append_branch($fu);\n'
                  '  sl_send_reply("404", "Nobody " + $rU + $hdr(X-Absent));\n'
                  '  t_reply(480, $ua);\n'
                  '}')
    s.run_request(ctx_of())
    assert rec.calls == [
        ("log", (1, "call from sip:alice@home.lan to sip:100@home.lan;transport=udp\n")),
        ("rewriteuri", ("sip:100@gw",)),
        ("append_hf", ("X-Orig: 192.168.1.20:5062\r\n",)),
        ("append_branch", ("sip:alice@home.lan",)),
        ("sl_send_reply", (404, "Nobody 100")),           # the fixup ran, at run time
        ("t_reply", (480, "Yealink SIP-T46S 66.85.0.5")),
    ]


def test_a_dynamic_call_as_a_condition(rec):
    rec.results["log"] = -1
    s = script_of('route { if (!log(1, $rU)) append_hf("no"); }')
    s.run_request(ctx_of())
    assert rec.calls == [("log", (1, "100")), ("append_hf", ("no",))]


def test_a_fixup_refusing_a_run_time_value_is_a_runtime_error(rec):
    s = script_of('route {\n  sl_send_reply($hdr(X-Code), "odd");\n}')
    with pytest.raises(ScriptRuntimeError) as info:
        s.run_request(ctx_of())
    assert str(info.value) == "t.cfg:2: in sl_send_reply(): ValueError: bad reply code '999'"


def test_pseudo_variables_only_for_functions_that_take_them(rec):
    line, col, message, hint = error_of('route { lookup("loc" + $rU); }')
    assert (line, col) == (1, 16)
    assert message == "the arguments of lookup() must be known at start-up " \
                      "(quoted strings, numbers, or strings joined with '+')"
    assert hint == "pseudo-variables can be passed to: append_branch, append_hf, log, " \
                   "rewriteuri, sl_reply, sl_send_reply, t_reply"


@pytest.mark.parametrize("text, error", [
    ("log(1 + 2);", (1, 17, "'+' joins text, and the script has no arithmetic",
                     'to join two numbers as text start with a string: "" + 1 + 2')),
    ("log($cs + 1);", (1, 19, "'+' joins text, and the script has no arithmetic",
                       'to join two numbers as text start with a string: "" + $cs + 1')),
    ('log("a" + null);', (1, 19, "null cannot be joined with '+'", None)),
    ('log("a" + );', (1, 19, "expected a value after '+' at 1:17, got ')'", None)),
    ('log("a" + udp);', (1, 19, "expected a quoted string, a number or a pseudo-variable, "
                                "got udp", 'write "udp"')),
])
def test_plus_errors(rec, text, error):
    assert error_of(f"route {{ {text} }}") == error


# --- names and route blocks ---------------------------------------------------------------------

@pytest.mark.parametrize("cond, error", [
    ('$fuu == "1"', (1, 13, "unknown pseudo-variable $fuu — did you mean '$fu'?", None)),
    ('$RU == "1"', (1, 13, "unknown pseudo-variable $RU — did you mean '$rU' or '$ru'?",
                    "pseudo-variable names are case-sensitive")),
    ('$hdr == "1"', (1, 13, "$hdr needs a header name", "write $hdr(User-Agent)")),
    ('$hdr() == "1"', (1, 13, "$hdr needs a header name", "write $hdr(User-Agent)")),
    ('$ru(x) == "1"', (1, 13, "$ru takes no argument", None)),
    ('$hdr(a:b) == "1"', (1, 13, "bad header name 'a:b' in $hdr(a:b)", None)),
    ('$rs == 200', (1, 13, "'$rs' is not allowed in route", None)),
    ('$rU =~ $fU', (1, 20, "a regular expression must be a quoted string", None)),
    ('$rU =~ "("', (1, 20, "bad regular expression: missing ), unterminated subpattern "
                           "at position 0", None)),
    ('$rU < "abc"', (1, 13, "'<' cannot compare $rU with a string; use ==, !=, =~, !~", None)),
    ('$rU > null', (1, 13, "'>' cannot compare $rU with null; use ==, !=", None)),
    ('$rp == "x"', (1, 20, "$rp is a number: compare it with a number", None)),
    ("$rU", (1, 16, "expected an operator (==, !=, =~ ...) after '$rU', got ')'",
             "test for a value with $rU != null")),
])
def test_condition_errors(rec, cond, error):
    assert error_of(f"route {{ if ({cond}) log(1, \"x\"); }}") == error


def test_unknown_pseudo_variable_without_a_close_name(rec):
    _, _, message, hint = error_of('route { if ($frobnicate == "1") log(1, "x"); }')
    assert message == "unknown pseudo-variable $frobnicate"
    assert hint.startswith("serlite has: $ru $rU $rd $rp $du")


def test_ruri_pseudo_variables_are_not_in_onreply_route(rec):
    assert error_of('route { }\nonreply_route { log(1, "to " + $ru); }') == \
        (2, 32, "'$ru' is not allowed in onreply_route", None)


def test_route_check_follows_route_calls(rec):
    assert error_of('route { }\nroute[2] { if ($du == null) log(1, "x"); }\n'
                    'onreply_route { route(2); }') == \
        (2, 16, "'$du' is not allowed in onreply_route",
         "this route block is run from onreply_route through route()")
