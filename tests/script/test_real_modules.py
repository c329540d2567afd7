"""The configs that must run unchanged compile against serlite's real module tables (the other
script tests use the fakes of fakes.py)."""

import pathlib

import pytest

from serlite.script.compiler import compile_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
VALID = ROOT / "tests" / "data" / "configs" / "valid"


@pytest.mark.parametrize("path", [
    VALID / "seed.cfg",
    ROOT / "files" / "etc" / "ser" / "ser.cfg",
    VALID / "ser-0.9-default.cfg",
    VALID / "pseudo-variables.cfg",
], ids=lambda p: p.name)
def test_compiles_with_the_real_modules(path):
    script = compile_file(str(path))
    assert list(script.modules)[0] == "core"
    assert script.has_route(1, "0")
