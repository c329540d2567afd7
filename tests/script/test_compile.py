"""Compile-time behaviour: globals, loadmodule, modparam, module instances, fixups, Script."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from serlite.modules.export import FAILURE_ROUTE, ONREPLY_ROUTE, REQUEST_ROUTE
from serlite.script.compiler import compile_config

from .fakes import make_ctx


def test_globals_and_notes(rec):
    s = compile_config(
        "debug=3\nfork = yes\nlog_stderr=no\nchildren=4\nport=5060\n"
        "listen=udp:127.0.0.1:5060\nlisten=tcp:[::1]:5070\nlisten=127.0.0.1\nlisten=eth0\n"
        'alias=home.lan\nalias="sip.example.com"\nunix_sock="/var/run/ser/ser.sock"\n'
        "dns=no\nrev_dns=off\nmhomed=0\ncheck_via=no\nuser=ser\nroute { }", "ser.cfg")
    assert s.globals == {
        "debug": 3, "fork": True, "log_stderror": False, "children": 4, "port": 5060,
        "listen": ["udp:127.0.0.1:5060", "tcp:[::1]:5070", "127.0.0.1", "eth0"],
        "alias": ["home.lan", "sip.example.com"], "unix_sock": "/var/run/ser/ser.sock",
        "dns": False, "rev_dns": False, "mhomed": 0, "check_via": False, "user": "ser"}
    assert s.notes == [
        "ser.cfg:3: log_stderr read as log_stderror",
        "ser.cfg:4: children=4 ignored (serlite runs one process)",
        "ser.cfg:17: user=ser ignored (procd sets the user and process limits)",
    ]


def test_a_repeated_global_keeps_the_last_value(rec):
    assert compile_config("debug=1\ndebug=4\nroute { }", "c").globals == {"debug": 4}


@pytest.mark.parametrize("path", ["/usr/lib/ser/modules/tm.so", "tm.so", "tm",
                                  "modules/tm/tm.so"])
def test_loadmodule_paths_map_to_the_module_name(rec, path):
    s = compile_config(f'loadmodule "{path}"\nroute {{ t_relay(); }}', "c")
    assert list(s.modules) == ["core", "tm"]


def test_core_is_always_there_and_first(rec):
    s = compile_config('loadmodule "tm"\nloadmodule "sl"\nroute { log(1, "x"); }', "c")
    assert list(s.modules) == ["core", "tm", "sl"]
    assert s.modules["core"] is rec.instances["core"]


def test_loading_a_module_twice_is_ignored_with_a_note(rec):
    s = compile_config('loadmodule "tm"\nloadmodule "/usr/lib/ser/modules/tm.so"\nroute { }', "c")
    assert list(s.modules) == ["core", "tm"]
    assert s.notes == ["c:2: module 'tm' loaded twice (ignored)"]


def test_module_params_defaults_and_conversions(rec):
    s = compile_config(
        'loadmodule "tm"\nloadmodule "rr"\nloadmodule "usrloc"\nloadmodule "registrar"\n'
        'modparam("rr", "enable_full_rr", yes)\n'
        'modparam("tm", "fr_timer", 10)\nmodparam("tm", "fr_timer", 20)\n'
        'modparam("tm", "noisy_ctimer", on)\n'
        'modparam("registrar", "append_branches", 0)\n'
        'modparam("usrloc", "user_column", "user")\n'
        'modparam("registrar", "default_expires", -1)\n'
        'route { }', "c")
    assert s.modules["rr"].params == {"enable_full_rr": 1, "append_fromtag": 1}
    assert s.modules["tm"].params == {"fr_timer": 20, "fr_inv_timer": 120, "noisy_ctimer": True}
    assert s.modules["registrar"].params == {"default_expires": -1, "append_branches": False}
    assert s.modules["usrloc"].params == {"db_mode": 0, "timer_interval": 60,
                                          "user_column": "user"}
    assert s.modules["core"].params == {}


def test_modparam_module_regex_sets_every_module_with_the_param(rec):
    s = compile_config('loadmodule "tm"\nloadmodule "usrloc"\nloadmodule "registrar"\n'
                       'modparam("usrloc|registrar", "timer_interval", 5)\n'
                       'modparam(".*", "default_expires", 60)\nroute { }', "c")
    assert s.modules["usrloc"].params["timer_interval"] == 5
    assert s.modules["registrar"].params["default_expires"] == 60


def test_fixups_get_the_module_the_literal_args_and_the_script(rec, monkeypatch):
    import serlite.modules
    seen = []
    fn = serlite.modules.spec("tm").functions["t_on_failure"]
    original = fn.fixup

    def spy(module, args, script):
        seen.append((module, args, script.has_route(FAILURE_ROUTE, "3")))
        return original(module, args, script)
    monkeypatch.setattr(fn, "fixup", spy)
    # the failure_route comes after the call: routes are known before any fixup runs
    s = compile_config('loadmodule "tm"\nroute { t_on_failure("3"); }\nfailure_route[3] { }',
                       "c")
    assert seen == [(s.modules["tm"], ("3",), True)]


def test_functions_without_fixup_get_the_literal_args(rec):
    s = compile_config('loadmodule "usrloc"\nloadmodule "registrar"\n'
                       'route { save("location", 3); }', "c")
    s.run_request(make_ctx())
    assert rec.calls == [("save", ("location", 3))]


def test_sl_reply_is_whatever_the_table_says(rec):
    # the old SER name works because the (fake) sl table exports it, not by a compiler alias
    s = compile_config('loadmodule "sl"\nroute { sl_reply("404", "Not Found"); }', "c")
    s.run_request(make_ctx())
    assert rec.calls == [("sl_send_reply", (404, "Not Found"))]


def test_has_route_and_route_names(rec):
    s = compile_config("route { }\nroute[2] { }\nroute[x] { }\nfailure_route[1] { }\n"
                       "onreply_route { }\nonreply_route[4] { }", "c")
    assert s.has_route(REQUEST_ROUTE, "0") and s.has_route(REQUEST_ROUTE, 2)
    assert s.has_route(REQUEST_ROUTE, "x") and not s.has_route(REQUEST_ROUTE, "1")
    assert s.has_route(FAILURE_ROUTE, "1") and not s.has_route(FAILURE_ROUTE, "0")
    assert s.route_names(ONREPLY_ROUTE) == ["0", "4"]
    assert s.filename == "c"


def test_runs_under_python3_light():
    root = pathlib.Path(__file__).resolve().parents[2]
    tool = root / "tools" / "pylight"
    code = ("import serlite.script.compiler as c, serlite.script.errors as e\n"
            "try:\n    c.compile_config('route {', 'x.cfg')\n"
            "except e.ConfigError as err:\n    print(err)\n")
    env = dict(os.environ, PYTHONPATH=f"{tool}:{root}")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=root, check=True)
    assert out.stdout.startswith("x.cfg:1:8: missing '}'")


@pytest.mark.parametrize("value", ["2", "-1", "yes"])
def test_mhomed_is_0_or_1_as_in_ser(value):
    from serlite.script.errors import ConfigError
    with pytest.raises(ConfigError) as err:
        compile_config(f"mhomed={value}\nroute {{ }}", "ser.cfg")
    assert re.match(r"ser.cfg:1:\d+: 'mhomed' ", str(err.value)), err.value
