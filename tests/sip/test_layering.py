"""serlite.sip is sans-I/O and runs on OpenWrt's python3-light (STYLE.md 1, 10)."""

import ast
import os
import subprocess
from pathlib import Path

import pytest

import serlite.sip

SIP_DIR = Path(serlite.sip.__file__).resolve().parent
ROOT = SIP_DIR.parent.parent
PYTHON3_LIGHT = ROOT / "tools" / "python3-light"
FORBIDDEN = {"socket", "select", "selectors", "time", "asyncio", "threading", "re"}


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def test_no_io_clock_or_regex_imports():
    for path in sorted(SIP_DIR.glob("*.py")):
        bad = FORBIDDEN.intersection(_imports(path))
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_imports_under_python3_light():
    code = "import serlite.sip.message, serlite.sip.uri, serlite.sip.headers, serlite.sip.grammar"
    subprocess.run([str(PYTHON3_LIGHT), "-c", code], cwd=ROOT, check=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
