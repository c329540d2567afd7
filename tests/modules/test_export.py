"""Module parameters' bounds (export.Param min/max), checked by the compiler at ``ser -c``."""

import pathlib
import subprocess
import sys

import pytest

from serlite import modules
from serlite.modules.export import Param
from serlite.script.compiler import compile_config
from serlite.script.errors import ConfigError


def _int_params():
    for name in ("core",) + modules.AVAILABLE:
        for pname, param in modules.spec(name).params.items():
            if param.type is int:
                yield name, pname, param


def test_every_default_is_within_its_own_range():
    for name, pname, param in _int_params():
        assert not param.out_of_range(param.default), (name, pname)


@pytest.mark.parametrize("module,pname", [
    ("tm", "fr_timer"), ("tm", "fr_inv_timer"), ("tm", "max_transactions"),
    ("tm", "retry_after"), ("tm", "shed_backlog"), ("usrloc", "db_mode"),
    ("usrloc", "timer_interval"), ("registrar", "default_expires"),
    ("registrar", "max_contacts"), ("nathelper", "natping_interval"),
    ("pike", "sampling_time_unit"), ("pike", "pike_log_level"), ("auth", "nonce_expire"),
    ("rr", "enable_full_rr"),
])
def test_the_numeric_params_of_the_modules_are_bounded(module, pname):
    param = modules.spec(module).params[pname]
    assert param.min is not None and param.max is not None


def _cfg(value, module="auth", pname="nonce_expire", load=("auth",)):
    return "".join(f'loadmodule "{m}"\n' for m in load) + \
        f'modparam("{module}", "{pname}", {value})\nroute {{ exit; }}\n'


@pytest.mark.parametrize("value", [0, -1, 86401, 10 ** 29, 2 ** 32 + 300])
def test_nonce_expire_out_of_range_is_a_config_error(value):
    with pytest.raises(ConfigError) as info:
        compile_config(_cfg(value), "x.cfg")
    text = str(info.value)
    assert text.startswith('x.cfg:2:34: modparam("auth", "nonce_expire"): ')
    assert "is out of range 1..86400" in text
    assert "hint: write a number in 1..86400" in text


@pytest.mark.parametrize("value", [1, 300, 86400])
def test_nonce_expire_in_range_compiles(value):
    script = compile_config(_cfg(value), "x.cfg")
    assert script.modules["auth"].params["nonce_expire"] == value


def test_yes_is_range_checked_after_its_conversion(monkeypatch):
    monkeypatch.setitem(modules.spec("rr").params, "enable_full_rr",
                        Param(int, 0, "", min=0, max=0))
    with pytest.raises(ConfigError, match=r'"enable_full_rr"\): 1 is out of range 0\.\.0'):
        compile_config(_cfg("yes", "rr", "enable_full_rr", ("rr",)), "x.cfg")


def test_range_text():
    assert Param(int, 1, min=1).range_text() == "at least 1"
    assert Param(int, 1, max=9).range_text() == "at most 9"
    assert Param(int, 1).range_text() == ""
    assert not Param(int, 1).out_of_range(10 ** 40)


def test_a_huge_number_is_shown_shortened():
    with pytest.raises(ConfigError) as info:
        compile_config(_cfg(10 ** 29), "x.cfg")
    assert "100000000000... (30 digits)" in str(info.value)


def test_ser_dash_c_refuses_a_huge_nonce_expire(tmp_path):
    # issue 13: modparam("auth", "nonce_expire", 1e29 as digits) passed -c, then every login
    # failed (the expiry is 32 bits in the nonce)
    cfg = tmp_path / "big.cfg"
    cfg.write_text(_cfg(10 ** 29))
    repo = pathlib.Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "serlite", "-c", "-f", str(cfg)], cwd=repo,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert f'{cfg}:2:34: modparam("auth", "nonce_expire"): 100000000000... (30 digits) is ' \
           "out of range 1..86400" in out.stderr
