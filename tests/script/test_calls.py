"""The closures the compiler makes for a script's function calls (compiler._make_call): every
argument count, as a statement and as a condition, each result (SER: > 0 true, < 0 false, 0
stops the script), and a module's exception named by the call."""

import pytest

from serlite.script.compiler import _make_call, _Stop
from serlite.script.errors import ScriptRuntimeError


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("rv, statement, condition", [
    (1, None, True), (7, None, True), (-1, None, False), (-3, None, False), (0, _Stop, _Stop)])
def test_a_call_passes_its_arguments_and_maps_the_result(n, rv, statement, condition):
    args = tuple(f"arg{i}" for i in range(n))
    seen = []

    def meth(ctx, *got):
        seen.append((ctx, got))
        return rv
    for as_cond, expected in ((False, statement), (True, condition)):
        call = _make_call(meth, args, "fn", "t.cfg", 3, as_cond)
        assert call.__name__ == "fn"
        if expected is _Stop:
            with pytest.raises(_Stop):
                call("ctx")
        else:
            assert call("ctx") is expected
    assert seen == [("ctx", args)] * 2


@pytest.mark.parametrize("n", [0, 1, 2, 4])
def test_a_modules_exception_becomes_the_calls_runtime_error(n):
    def meth(ctx, *args):
        raise KeyError("x")
    for as_cond in (False, True):
        with pytest.raises(ScriptRuntimeError) as info:
            _make_call(meth, (1,) * n, "lookup", "t.cfg", 8, as_cond)(None)
        assert str(info.value) == "t.cfg:8: in lookup(): KeyError: 'x'"
        assert isinstance(info.value.__cause__, KeyError)


def test_a_runtime_error_from_a_nested_call_goes_through_unwrapped():
    inner = ScriptRuntimeError("ValueError: v", "t.cfg", 2, "inner")

    def meth(ctx):
        raise inner
    with pytest.raises(ScriptRuntimeError) as info:
        _make_call(meth, (), "outer", "t.cfg", 9, True)(None)
    assert info.value is inner
