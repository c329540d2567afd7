"""docs/modules.md is generated from the export tables (serlite/modules/doc.py) and kept current."""

import difflib
import subprocess
from pathlib import Path

from serlite.modules import AVAILABLE, doc
from serlite.modules.export import REQUEST_ROUTE, Function, ModuleSpec, Param

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "modules.md"
LIGHT = ROOT / "tools" / "python3-light"


def test_modules_md_is_up_to_date():
    # Generated under python3-light, as it would be on the router's module set.
    out = subprocess.run([str(LIGHT), "-m", "serlite.modules.doc"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    current = PAGE.read_text() if PAGE.exists() else ""
    if out.stdout != current:
        diff = "".join(list(difflib.unified_diff(
            current.splitlines(True), out.stdout.splitlines(True),
            "docs/modules.md", "generated", n=1))[:40])
        raise AssertionError(f"docs/modules.md is out of date; regenerate it with\n"
                             f"    {doc.COMMAND}\n{diff}")


def test_every_loadable_module_is_found_and_every_found_module_is_loadable():
    found = set(doc.discover())
    assert found == set(AVAILABLE) | {"core"}, (
        "a module file with EXPORTS must be in serlite.modules.AVAILABLE (loadmodule) and "
        f"the other way round: found {sorted(found)}, AVAILABLE {sorted(AVAILABLE)}")


def test_every_function_and_parameter_is_on_the_page_with_a_meaning():
    page = doc.render()
    for name, spec in doc.discover().items():
        assert f"\n## {name}\n" in page
        for fname, f in spec.functions.items():
            assert f"| `{fname}` |" in page, fname
            assert f.doc.strip(), f"{name}.{fname}: the export table gives no doc"
        for pname, p in spec.params.items():
            assert f"| `{pname}` |" in page, pname
            assert p.doc.strip(), f"{name}.{pname}: the export table gives no doc"


def _spec(params, functions=()):
    return ModuleSpec(name="demo", factory=object, functions=functions, params=params,
                      depends=("sl",), doc="A demo module.")


class BoundedParam(Param):
    """Param with the bounds another change may add (Param.min/max): shown when present."""
    __slots__ = ("min", "max")

    def __init__(self, type_, default, doc_, min=None, max=None):
        super().__init__(type_, default, doc_)
        self.min, self.max = min, max


def test_bounds_are_shown_when_a_param_declares_them():
    bounded = BoundedParam(int, 300, "seconds a nonce is good for", 1, 3600)
    low_only = BoundedParam(int, 0, "pings", min=0)
    page = doc.render({"demo": _spec({"nonce_expire": bounded, "natping": low_only,
                                      "name": Param(str, "", "a name")})})
    assert "| parameter | type | default | range | meaning |" in page
    assert "| `nonce_expire` | int | `300` | 1..3600 | seconds a nonce is good for |" in page
    assert "| `natping` | int | `0` | >= 0 | pings |" in page
    assert '| `name` | str | `""` |  | a name |' in page


def test_a_module_without_bounds_has_no_range_column_and_cells_are_escaped():
    f = Function("f", "f", (0, 2), REQUEST_ROUTE, doc="a | b\n   c", dynamic=True)
    page = doc.render({"demo": _spec({"on": Param(bool, True, "x")}, (f,))})
    assert "range" not in page
    assert "| `f` | 0 or 2 | route | a \\| b c (arguments may be variables) |" in page
    assert "| `on` | bool | yes | x |" in page
    assert '`loadmodule "demo"`; needs `sl` loaded too.' in page
    assert "Not loadable yet (missing from serlite.modules.AVAILABLE): demo." in page
