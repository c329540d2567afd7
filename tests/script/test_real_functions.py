"""has_totag, subst_uri, subst_user and dynamic arguments, with serlite's real module tables
(core, textops, sl, tm) on real parsed messages."""

import pytest

import serlite.log
from serlite.modules import sl as sl_module
from serlite.modules import tm as tm_module
from serlite.modules.export import ONREPLY_ROUTE, REQUEST_ROUTE
from serlite.proxy.context import Source
from serlite.script.compiler import compile_config
from serlite.script.errors import ConfigError, ScriptRuntimeError

from .fakes import Ctx, FakeCore
from .test_pvars import INVITE, RINGING, msg

MODULES = '\nloadmodule "sl"\nloadmodule "tm"\nloadmodule "textops"\n'


def script_of(routes):
    return compile_config(routes + MODULES, "t.cfg")


def run(routes, m=None):
    ctx = Ctx(m if m is not None else msg(), Source("udp", "192.168.1.20", 5062), FakeCore(),
              REQUEST_ROUTE)
    value = script_of(routes).run_request(ctx)
    return value, ctx


def error_of(routes):
    with pytest.raises(ConfigError) as info:
        script_of(routes)
    return info.value.line, info.value.col, info.value.message


# --- has_totag ----------------------------------------------------------------------------------

BYE = INVITE.replace("INVITE sip:100@home.lan;transport=udp", "BYE sip:alice@192.168.1.20:5062") \
    .replace("CSeq: 314159 INVITE", "CSeq: 314160 BYE") \
    .replace('To: "Bob" <sip:bob@example.org>', 'To: "Bob" <sip:bob@example.org>;tag=a6c85cf')


@pytest.mark.parametrize("text, expected", [(INVITE, "new"), (BYE, "in-dialog")])
def test_has_totag(text, expected):
    _, ctx = run('route { if (has_totag()) $du = "sip:in-dialog"; else $du = "sip:new"; }',
                 msg(text))
    assert ctx.dst_uri == "sip:" + expected


def test_has_totag_route_blocks():
    script_of('route { }\nfailure_route[1] { if (has_totag()) drop; }')
    assert error_of('route { }\nonreply_route { if (has_totag()) drop; }') == \
        (2, 21, "'has_totag' is not allowed in onreply_route")


# --- subst_uri, subst_user ----------------------------------------------------------------------

@pytest.mark.parametrize("call, ruri, result", [
    (r"subst_uri('/^sip:([0-9]+)@[^;]*/sip:\1@10.0.0.2/')", "sip:100@10.0.0.2;transport=udp", 1),
    (r"subst_uri('/^sip:(.*)@(.*);transport=udp$/sips:\2@\1/')", "sips:home.lan@100", 1),
    (r"subst_uri('/^sip:bob@/sip:carol@/')", None, -1),                   # no match
    (r"subst_uri('/HOME/gw/')", None, -1),                               # case matters ...
    (r"subst_uri('/HOME/gw/i')", "sip:100@gw.lan;transport=udp", 1),     # ... without i
    (r"subst_user('/^1([0-9]+)$/+49\1/')", "sip:+4900@home.lan;transport=udp", 1),
    (r"subst_user('/0/9/')", "sip:190@home.lan;transport=udp", 1),       # the first only ...
    (r"subst_user('/0/9/g')", "sip:199@home.lan;transport=udp", 1),      # ... unless g
    (r"subst_user('/^.*$//')", "sip:home.lan;transport=udp", 1),         # empty: no user
    (r"subst_user('/^alice$/bob/')", None, -1),
    (r"subst_user('|^1|+1|')", "sip:+100@home.lan;transport=udp", 1),    # any delimiter
])
def test_subst_uri_and_subst_user(call, ruri, result):
    value, ctx = run(f"route {{ if ({call}) return(1); return(-1); }}")
    assert value == result
    assert ctx.new_uri == ruri


def test_subst_user_sees_earlier_rewrites():
    _, ctx = run(r"route { $rU = 'alice'; subst_user('/^(.*)$/\1-home/'); }")
    assert ctx.ruri == "sip:alice-home@home.lan;transport=udp"


@pytest.mark.parametrize("call, message", [
    ("subst_uri('/a/b/x')", "bad subst flags 'x': only g and i"),
    ("subst_user('/(/b/')", "bad regular expression '(': missing ), unterminated subpattern "
                            "at position 0"),
    ("subst_uri('/a/b')", "bad subst expression '/a/b': expected /re/repl/flags"),
])
def test_subst_errors_are_found_at_start_up(call, message):
    assert error_of(f"route {{ {call}; }}") == (1, 9, message)


def test_subst_functions_are_not_for_replies():
    assert error_of("route { }\nonreply_route { subst_uri('/a/b/'); }")[2] == \
        "'subst_uri' is not allowed in onreply_route"


# --- dynamic arguments to the real core and textops ---------------------------------------------

def test_dynamic_log_rewriteuri_append_hf_append_branch(monkeypatch):
    lines = []
    monkeypatch.setattr(serlite.log, "log", lambda level, text: lines.append((level, text)))
    _, ctx = run('route {\n'
                 '  log(1, "call from " + $fu + " (" + $ua + ")\\n");\n'
                 '  log("cseq " + $cs);\n'
                 '  append_branch("sip:" + $fU + "@" + $si);\n'
                 '  rewriteuri("sip:" + $rU + "@gw.lan");\n'
                 '  append_hf("X-Orig: " + $si + "\\r\\n");\n'
                 '}')
    assert lines == [(1, "call from sip:alice@home.lan (Yealink SIP-T46S 66.85.0.5)\n"),
                     (serlite.log.ERR, "cseq 314159")]
    assert [b.uri for b in ctx.branches] == ["sip:alice@192.168.1.20"]
    assert ctx.ruri == "sip:100@gw.lan"
    assert ctx.msg.get("X-Orig") == "192.168.1.20"


def test_dynamic_log_level_goes_through_the_fixup_at_run_time():
    with pytest.raises(ScriptRuntimeError) as info:
        run('route {\n  log($cs, "x");\n}')
    assert str(info.value) == \
        "t.cfg:2: in log(): ValueError: log level must be between -3 and 4, not 314159"


def test_sl_send_reply_and_t_reply_are_declared_dynamic():
    # the two tests below rely on it (they used to skip themselves while it was not)
    assert sl_module.EXPORTS.functions["sl_send_reply"].dynamic
    assert tm_module.EXPORTS.functions["t_reply"].dynamic


def test_dynamic_reason_of_sl_send_reply():
    sent = []

    class Core:
        def reply(self, ctx, code, reason, headers=()):
            sent.append((code, reason))
            return True
    script = script_of('route { sl_send_reply("404", "No " + $rU + " here"); }')
    script.modules["sl"].core = Core()
    script.run_request(Ctx(msg(), Source("udp", "192.168.1.20", 5062), FakeCore()))
    assert sent == [(404, "No 100 here")]


def test_dynamic_reason_of_t_reply(monkeypatch):
    sent = []
    monkeypatch.setattr(tm_module.Tm, "t_reply",
                        lambda self, ctx, code, reason: sent.append((code, reason)) or 1)
    script_of('route { t_reply("480", "Gone: " + $tU); }').run_request(
        Ctx(msg(), Source("udp", "192.168.1.20", 5062), FakeCore()))
    assert sent == [(480, "Gone: bob")]


def test_the_real_tables_still_refuse_pseudo_variables_where_fixups_need_literals():
    line, col, message = error_of('route { t_on_failure($rU); }')
    assert (line, col) == (1, 22)
    assert message.startswith("the arguments of t_on_failure() must be known at start-up")


def test_status_and_rs_with_the_real_tables():
    script = script_of('route { }\nonreply_route { if (status == 180 && $rs < 200) drop; }')
    ctx = Ctx(msg(RINGING), Source("udp", "10.0.0.9", 5060), FakeCore(), ONREPLY_ROUTE)
    assert script.run_reply(ctx) == 0 and ctx.dropped

