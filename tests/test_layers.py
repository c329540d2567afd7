"""The architecture, enforced (docs/architecture.md, "Dependencies point one way"): which part of
serlite may import which, the protocol layers do no I/O and read no clock, and everything imports
under OpenWrt's python3-light.  The one place that scans serlite's imports."""

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERLITE = ROOT / "serlite"
LIGHT = ROOT / "tools" / "python3-light"

# Each part of serlite (a package, or a module of its own at the top) and the parts it may import;
# the package itself (`serlite`, its __version__) any may.  Docs/architecture.md draws this.
LEAVES = ("log", "routes", "netif", "tls", "sip", "dns", "security")
MAY_IMPORT = {leaf: set() for leaf in LEAVES}
MAY_IMPORT.update({
    # pure, on sip
    "transaction": {"sip"},
    "dialog": {"sip"},
    "media": {"sip"},
    "uac": {"sip"},
    "presence": {"sip", "dialog"},
    "store": set(),             # the files (journals, tables), not pure
    # the edge: sockets and the clock
    "loop": set(),
    "transport": {"netif", "sip", "tls"},
    "relay": {"media"},
    "extrelay": {"media"},
    "dns_client": {"sip", "dns"},
    # the protocol above them
    "proxy": {"routes", "sip", "dns", "transport"},
    "modules": {"routes", "sip", "dns", "tls", "transaction", "proxy", "dialog", "media",
                "uac", "presence", "security", "store", "relay", "extrelay"},
    "script": {"routes", "sip", "tls", "modules"},
    # composition and the tools around it
    "server": {"sip", "dns", "tls", "store", "loop", "transport", "dns_client", "proxy",
               "script", "control"},
    "cli": {"server", "script"},
    "__main__": {"cli"},
    "control": {"sip", "store", "uci"},
    "ctl": {"control"},
    "uci": {"store", "media", "uci_provider"},
    "uci_provider": {"uci"},
    "webui": {"netif", "store", "control"},
})
# log (SER's log lines): any part may, but the sans-I/O ones.
SANS_IO_PARTS = {"routes", "sip", "dns", "security", "transaction", "dialog", "media", "uac",
                 "presence", "script"}
for part, allowed in MAY_IMPORT.items():
    if part not in SANS_IO_PARTS and part != "log":
        allowed.add("log")
# Narrower than a whole part: the script knows the modules only by their export tables.
ONLY = {("script", "modules"): {"serlite.modules", "serlite.modules.export"}}

# The sans-I/O layers: no sockets, no clock, no threads; sip/ also no regular expressions, the
# script no files or logging either.
PURE = ["sip", "transaction", "script", "proxy/forward.py", "proxy/response_context.py",
        "proxy/hold.py", "proxy/context.py", "dialog", "security", "media", "dns", "uac",
        "presence", "routes.py"]
FORBIDDEN = {"socket", "select", "selectors", "time", "asyncio", "threading"}
FORBIDDEN_IN = {"sip": FORBIDDEN | {"re"}, "script": FORBIDDEN | {"os", "logging", "dataclasses"}}
# The status page (CGI and HTML): none of what python3-light lacks, nor a web framework's parts.
WEB = ["webui.py", "control/page.py"]
WEB_FORBIDDEN = {"cgi", "urllib", "html", "http", "email", "logging", "asyncio", "xml"}


def _files():
    return sorted(p for p in SERLITE.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name):
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _imports(path):
    """Every module ``path`` imports (absolute names), at any depth of the file."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            base = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if _is_module(sub) else base


def _part(name):
    """The part of serlite a module belongs to (None: not serlite's; "": the package itself)."""
    parts = name.split(".")
    if parts[0] != "serlite":
        return None
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_part_imports_only_what_the_diagram_allows(path):
    me = _part(_module_name(path))
    if me == "":
        assert not [n for n in _imports(path) if _part(n) is not None], "serlite/__init__.py"
        return
    assert me in MAY_IMPORT, f"{me}: a new part of serlite; give it its place in MAY_IMPORT " \
                             "and docs/architecture.md"
    bad = []
    for name in _imports(path):
        other = _part(name)
        if other in (None, "", me):
            continue
        if other not in MAY_IMPORT[me] or name not in ONLY.get((me, other), {name}):
            bad.append(name)
    assert not bad, f"{path.relative_to(ROOT)} ({me}) may not import {sorted(set(bad))}"


def test_the_allowed_imports_have_no_cycle_but_uci_and_its_provider():
    # uci.py and uci_provider.py are one generator in two files (the provider section's part).
    seen, done = [], set()

    def visit(part):
        assert part not in seen, " -> ".join(seen + [part])
        if part in done:
            return
        seen.append(part)
        for other in MAY_IMPORT[part] - ({"uci"} if part == "uci_provider" else set()):
            visit(other)
        seen.pop()
        done.add(part)

    for part in MAY_IMPORT:
        visit(part)


def _pure_files():
    for part in PURE:
        p = SERLITE / part
        yield from (sorted(p.rglob("*.py")) if p.is_dir() else [p])


@pytest.mark.parametrize("path", list(_pure_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_sans_io_layers_import_no_io(path):
    forbidden = FORBIDDEN_IN.get(path.relative_to(SERLITE).parts[0], FORBIDDEN)
    bad = {n.split(".")[0] for n in _imports(path)} & forbidden
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("part", WEB)
def test_the_status_page_imports_only_what_python3_light_has(part):
    bad = {n.split(".")[0] for n in _imports(SERLITE / part)} & WEB_FORBIDDEN
    assert not bad, f"serlite/{part} imports {bad}"


def test_every_module_imports_under_python3_light():
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                     for p in SERLITE.rglob("*.py") if p.name != "__main__.py")
    code = "import importlib\nfor m in %r: importlib.import_module(m)\n" % modules
    out = subprocess.run([str(LIGHT), "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
