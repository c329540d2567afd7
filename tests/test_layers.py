"""The architecture, enforced: the protocol layers do no I/O and read no clock, and everything
imports under OpenWrt's python3-light."""

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIGHT = ROOT / "tools" / "python3-light"
PURE = ["sip", "transaction", "script", "proxy/forward.py", "proxy/response_context.py",
        "proxy/hold.py",
        "proxy/context.py"]
PURE += ["dialog", "security", "media", "dns", "uac", "presence"]
FORBIDDEN = {"socket", "select", "selectors", "time", "asyncio", "threading"}


def _imports(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def _pure_files():
    for part in PURE:
        p = ROOT / "serlite" / part
        yield from (sorted(p.rglob("*.py")) if p.is_dir() else [p])


@pytest.mark.parametrize("path", list(_pure_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_sans_io_layers_import_no_io(path):
    bad = set(_imports(path)) & FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_every_module_imports_under_python3_light():
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                     for p in (ROOT / "serlite").rglob("*.py") if p.name != "__main__.py")
    code = "import importlib\nfor m in %r: importlib.import_module(m)\n" % modules
    out = subprocess.run([str(LIGHT), "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
