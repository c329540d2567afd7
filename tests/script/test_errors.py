"""One test per kind of ConfigError: the message, the position, the hint."""

import pytest

from serlite.script.compiler import compile_config, compile_file
from serlite.script.errors import ConfigError, ScriptRuntimeError


def error_of(text):
    with pytest.raises(ConfigError) as info:
        compile_config(text, "ser.cfg")
    e = info.value
    return e.line, e.col, e.message, e.hint


def test_str_format():
    e = ConfigError("unknown function 'lookup'", "ser.cfg", 5, 10,
                    hint='did you loadmodule "registrar"?')
    assert str(e) == 'ser.cfg:5:10: unknown function \'lookup\'\n' \
                     '  hint: did you loadmodule "registrar"?'
    assert str(ConfigError("m", "ser.cfg", 1, 2)) == "ser.cfg:1:2: m"
    assert str(ConfigError("m", "ser.cfg", None, None)) == "ser.cfg: m"
    assert str(ScriptRuntimeError("KeyError: 'x'", "ser.cfg", 7, "lookup")) == \
        "ser.cfg:7: in lookup(): KeyError: 'x'"


def test_unknown_function_with_loadmodule_hint(rec):
    assert error_of('loadmodule "tm"\nroute {\n  if (lookup("location")) t_relay();\n}') == \
        (3, 7, "unknown function 'lookup'", 'did you loadmodule "registrar"?')


def test_unknown_function_did_you_mean(rec):
    assert error_of('loadmodule "rr"\nroute { record_rout(); }')[2] == \
        "unknown function 'record_rout' — did you mean 'record_route'?"
    assert error_of("route { frobnicate(); }")[2:] == ("unknown function 'frobnicate'", None)


@pytest.mark.parametrize("call, message", [
    ('t_relay("x")', "t_relay takes 0 or 2 arguments, got 1"),
    ("save()", "save takes 1 or 2 arguments, got 0"),
    ('lookup("a", "b")', "lookup takes 1 argument, got 2"),
    ('record_route("x")', "record_route takes 0 arguments, got 1"),
    ("append_branch(1, 2)", "append_branch takes 0 or 1 arguments, got 2"),
])
def test_argument_count(rec, call, message):
    modules = 'loadmodule "tm"\nloadmodule "rr"\nloadmodule "usrloc"\nloadmodule "registrar"\n'
    assert error_of(modules + f"route {{ {call}; }}")[:3] == (5, 9, message)


def test_function_not_allowed_in_route_type(rec):
    text = 'loadmodule "sl"\nroute { }\nonreply_route[1] {\n  sl_send_reply("500", "x");\n}'
    assert error_of(text) == (4, 3, "'sl_send_reply' is not allowed in onreply_route", None)


def test_function_not_allowed_in_a_route_called_from_a_failure_route(rec):
    text = ('loadmodule "sl"\nroute { route(1); }\nroute[1] { sl_send_reply("404", "x"); }\n'
            'failure_route[1] { route(1); }')
    assert error_of(text) == (3, 12, "'sl_send_reply' is not allowed in failure_route",
                              "this route block is run from failure_route[1] through route()")


def test_route_only_called_from_a_reply_route_is_checked_as_one(rec):
    # record_route is REQUEST-only; route[1] never runs as a request route here.
    text = 'loadmodule "rr"\nroute { }\nroute[1] { record_route(); }\nonreply_route { route(1); }'
    assert error_of(text)[2] == "'record_route' is not allowed in onreply_route"


def test_unknown_global(rec):
    assert error_of("debug=3\nlisen=udp:1.2.3.4\nroute { }") == \
        (2, 1, "unknown global 'lisen' — did you mean 'listen'?", None)
    assert error_of("frobnicate=1\nroute { }")[2] == "unknown global 'frobnicate'"


@pytest.mark.parametrize("text, where, message", [
    ('debug="3"\nroute { }', (1, 7), "'debug' takes a number"),
    ("fork=maybe\nroute { }", (1, 6), "'fork' takes yes or no"),
    ("unix_sock=5\nroute { }", (1, 11), "'unix_sock' takes a string"),
])
def test_global_types(rec, text, where, message):
    assert error_of(text)[:3] == (*where, message)


def test_unterminated_string_position(rec):
    assert error_of('route {\n  log(1, "oops);\n}')[:3] == (2, 10, "unterminated string")


def test_unterminated_comment_position(rec):
    assert error_of("route { }\n\n   /* no end")[:3] == (3, 4, "unterminated comment")


def test_unknown_route_in_route_call(rec):
    assert error_of("route {\n  route(3);\n}\nroute[2] { }") == \
        (2, 3, "unknown route '3'", "route(3) needs a route[3] block")
    assert error_of("route { route(relya); }\nroute[relay] { }")[2] == \
        "unknown route 'relya' — did you mean 'relay'?"


def test_route_call_to_an_unknown_route_inside_a_condition(rec):
    assert error_of("route { if (route(9)) ; }")[2] == "unknown route '9'"


def test_duplicate_route(rec):
    assert error_of("route { }\nfailure_route[1] { }\nfailure_route[1] { }") == \
        (3, 1, "failure_route[1] is defined twice", "first defined at line 2")


def test_no_main_route(rec):
    assert error_of("route[1] { }\n")[2] == "no main route"


@pytest.mark.parametrize("cond, col", [('uri =~ "sip:(x"', 20), ('method =~ "["', 23),
                                       ('status =~ "*"', 0)])
def test_bad_regex_at_its_position(rec, cond, col):
    if cond.startswith("status"):
        line, c, message, _ = error_of(f"route {{ }}\nonreply_route {{ if ({cond}) ; }}")
        assert (line, message.split(":")[0]) == (2, "bad regular expression")
        return
    line, c, message, _ = error_of(f"route {{ if ({cond}) ; }}")
    assert (line, c) == (1, col)
    assert message.startswith("bad regular expression: ")


def test_module_errors(rec):
    assert error_of('loadmodule "/usr/lib/ser/modules/registrarr.so"\nroute { }')[:3] == \
        (1, 12, "no module 'registrarr' — did you mean 'registrar'?")
    assert error_of('loadmodule "registrar"\nroute { }') == \
        (1, 12, "module 'registrar' needs module 'usrloc'", 'loadmodule "usrloc" first')


def test_a_module_that_fails_to_import_is_a_config_error(rec, monkeypatch):
    import serlite.modules

    def spec(name):
        if name == "core":
            return real("core")
        raise ModuleNotFoundError("No module named 'serlite.modules.tm'")
    real = serlite.modules.spec
    monkeypatch.setattr(serlite.modules, "spec", spec)
    assert error_of('loadmodule "tm"\nroute { }')[2] == \
        "module 'tm' failed to import: No module named 'serlite.modules.tm'"


@pytest.mark.parametrize("line, message, hint", [
    ('modparam("tm", "fr_timer", 30)',
     "modparam for module 'tm' which is not loaded (loadmodule it first?)", None),
    ('modparam("usrlock", "db_mode", 0)',
     "modparam for module 'usrlock' which is not loaded (loadmodule it first?)",
     "did you mean 'usrloc'?"),
    ('modparam("usrloc", "db_mod", 0)',
     "module 'usrloc' has no parameter 'db_mod' — did you mean 'db_mode'?", None),
    ('modparam("usrloc", "db_mode", "0")',
     "modparam 'db_mode' of module 'usrloc' takes a number", "write 0 without quotes"),
    ('modparam("usrloc", "user_column", 5)',
     "modparam 'user_column' of module 'usrloc' takes a string", 'write "5" in quotes'),
    ('modparam("usr.*", "nothing", 5)', "no module matching 'usr.*' has a parameter 'nothing'",
     None),
])
def test_modparam_errors(rec, line, message, hint):
    assert error_of(f'loadmodule "usrloc"\n{line}\nroute {{ }}')[2:] == (message, hint)


def test_fixup_value_error_becomes_a_config_error_at_the_call(rec):
    text = 'loadmodule "tm"\nroute {\n    t_on_failure("7");\n}\nfailure_route[1] { }'
    assert error_of(text)[:3] == (3, 5, "t_on_failure: there is no failure_route[7]")


def test_bare_word_arguments_need_quotes(rec):
    text = 'loadmodule "usrloc"\nloadmodule "registrar"\nroute { save(location); }'
    assert error_of(text) == (3, 14, "the arguments of save() must be quoted strings or numbers",
                              'write "location"')


@pytest.mark.parametrize("cond, message", [
    ("dst_ip == 10.0.0.1", "dst_ip is not supported yet"),
    ('src_port == "5060"', "src_port compares with a number"),
    ("src_port =~ 5", "'=~' cannot compare src_port; use ==, !=, <, >, <=, >="),
    ("method == myself", "method cannot be compared with myself"),
    ("uri == sip", "expected a quoted string after 'uri =='"),
    ("uri == 5", "expected a quoted string after 'uri =='"),
    ("uri =~ foo", "a regular expression must be a quoted string"),
    ("uri < \"x\"", "'<' cannot compare uri; use ==, !=, =~"),
    ("src_ip == localhost", "'localhost' is not an IP address or network"),
    ("src_ip > 10.0.0.1", "'>' cannot compare src_ip; use ==, !=, =~"),
    ("af == 6", "af compares with inet or inet6"),
    ("proto =~ \"udp\"", "'=~' cannot compare proto; use ==, !="),
    ("msg:len >= \"big\"", "msg:len compares with a number"),
])
def test_comparison_errors(rec, cond, message):
    assert error_of(f"route {{ if ({cond}) ; }}")[2] == message


def test_status_outside_a_reply_route(rec):
    assert error_of("route { if (status == 200) ; }")[2:] == (
        "'status' is not allowed in route",
        "status is the code of the reply being routed (onreply_route) "
        "or of the winning reply (failure_route)")


def test_unreadable_file(tmp_path):
    path = tmp_path / "missing.cfg"
    with pytest.raises(ConfigError) as info:
        compile_file(str(path))
    assert str(info.value) == f"{path}: cannot read the config: No such file or directory"


def test_not_utf8(tmp_path, rec):
    path = tmp_path / "latin1.cfg"
    path.write_bytes(b'route { log(1, "caf\xe9"); }')
    with pytest.raises(ConfigError) as info:
        compile_file(str(path))
    assert "not UTF-8" in str(info.value)


def test_a_module_refusing_its_params_is_a_config_error(rec, monkeypatch):
    import serlite.modules
    spec = serlite.modules.spec("usrloc")

    def factory(params):
        raise ValueError("db_mode 7 is not one of 0, 1")
    monkeypatch.setattr(spec, "factory", factory)
    assert error_of('debug=1\nloadmodule "usrloc"\nmodparam("usrloc", "db_mode", 7)\n'
                    'route { }')[:3] == (2, 12, "module 'usrloc': db_mode 7 is not one of 0, 1")
