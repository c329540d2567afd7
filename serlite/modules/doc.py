"""docs/modules.md from the modules' export tables: every script function and ``modparam``.

    python3 -m serlite.modules.doc > docs/modules.md

The tables (``EXPORTS`` at the end of each file here, shaped by ``export.py``) are what the
script compiler checks a config against, so a page made from them cannot promise a function or
parameter that `ser -c` would refuse.  Modules are found by listing this package, not from a
list kept by hand; tests/modules/test_doc.py fails when the page is out of date.
"""

import importlib
import os
import sys

from . import AVAILABLE
from .export import ANY_ROUTE, ROUTE_NAMES, ModuleSpec

COMMAND = "python3 -m serlite.modules.doc > docs/modules.md"

# Files of this package that are not modules (no EXPORTS).
_NOT_MODULES = ("__init__", "export", "doc")


def discover():
    """{name: ModuleSpec} of every file in this package with an ``EXPORTS`` table."""
    here = os.path.dirname(os.path.abspath(__file__))
    specs = {}
    for filename in sorted(os.listdir(here)):
        name, ext = os.path.splitext(filename)
        if ext != ".py" or name in _NOT_MODULES or name.startswith("_"):
            continue
        spec = getattr(importlib.import_module(__package__ + "." + name), "EXPORTS", None)
        if isinstance(spec, ModuleSpec):
            specs[name] = spec
    return specs


def _cell(text):
    """One Markdown table cell: no line breaks, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _summary(spec):
    """The table's own ``doc``; else the first paragraph of the module file's docstring."""
    if spec.doc:
        return " ".join(spec.doc.split())
    module = sys.modules.get(getattr(spec.factory, "__module__", ""))
    text = (getattr(module, "__doc__", None) or "").strip()
    return " ".join(text.split("\n\n")[0].split())


def _nargs(nargs):
    counts = [str(n) for n in sorted(nargs)]
    return counts[0] if len(counts) == 1 else ", ".join(counts[:-1]) + " or " + counts[-1]


def _routes(routes):
    if routes & ANY_ROUTE == ANY_ROUTE:
        return "any"
    return ", ".join(name for bit, name in sorted(ROUTE_NAMES.items()) if routes & bit)


def _type(param):
    return getattr(param.type, "__name__", str(param.type))


def _default(param):
    value = param.default
    if param.type is bool or isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return '`"' + value.replace("`", "'") + '"`'
    return f"`{value}`"


def _range(param):
    """``min..max`` when the parameter declares bounds (Param.min / Param.max), else ""."""
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is None and high is None:
        return ""
    if high is None:
        return f">= {low}"
    if low is None:
        return f"<= {high}"
    return f"{low}..{high}"


def _module_section(name, spec):
    out = [f"## {name}", ""]
    summary = _summary(spec)
    if summary:
        out += [summary, ""]
    if name == "core":
        out += ["Always loaded: no `loadmodule` needed.", ""]
    else:
        out += [f'`loadmodule "{name}"`' + (
            "; needs " + ", ".join(f"`{d}`" for d in spec.depends) + " loaded too"
            if spec.depends else "") + ".", ""]
    if spec.functions:
        out += ["| function | arguments | where | meaning |", "|---|---|---|---|"]
        for fname in sorted(spec.functions):
            f = spec.functions[fname]
            doc = f.doc or "(no description)"
            if f.dynamic:
                doc += " (arguments may be variables)"
            out.append(f"| `{fname}` | {_nargs(f.nargs)} | {_routes(f.routes)} | {_cell(doc)} |")
        out.append("")
    if spec.params:
        ranged = any(_range(p) for p in spec.params.values())
        if ranged:
            out += ["| parameter | type | default | range | meaning |", "|---|---|---|---|---|"]
        else:
            out += ["| parameter | type | default | meaning |", "|---|---|---|---|"]
        for pname in sorted(spec.params):
            p = spec.params[pname]
            cells = [f"`{pname}`", _type(p), _default(p)]
            if ranged:
                cells.append(_range(p))
            cells.append(_cell(p.doc or "(no description)"))
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return out


def render(specs=None):
    """The whole page as a string."""
    specs = discover() if specs is None else specs
    names = (["core"] if "core" in specs else []) + sorted(n for n in specs if n != "core")
    out = [
        "# Modules: script functions and parameters",
        "",
        "<!-- Generated from the modules' export tables (EXPORTS in serlite/modules/*.py).",
        f"     Do not edit: change the table, then run  {COMMAND}  -->",
        "",
        "Every function a `ser.cfg` route may call and every `modparam(\"module\", \"name\", "
        "value)` serlite accepts, with SER's names and meanings. `ser -c -f ser.cfg` checks a "
        "config against these same tables.",
        "",
        "*arguments*: how many the function takes. *where*: the route blocks it may be called "
        "from (`route`, `failure_route`, `onreply_route`, `branch_route`). A function is true "
        "when it returns > 0 (`if (f()) ...`). Parameter type `int` also takes `yes`/`no` "
        "(1/0), as SER does.",
        "",
        "Modules: " + ", ".join(f"[{n}](#{n})" for n in names) + ".",
        "",
    ]
    unloadable = [n for n in names if n != "core" and n not in AVAILABLE]
    for name in names:
        out += _module_section(name, specs[name])
    if unloadable:
        out += ["Not loadable yet (missing from serlite.modules.AVAILABLE): "
                + ", ".join(unloadable) + ".", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main():
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
