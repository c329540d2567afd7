"""The repository stands alone: a fresh clone with nothing beside it runs the suite, so no test,
benchmark or CI script reads the folder next to the repository (the project's own copies live in
tools/ and tests/data/)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = ("../" + "shared", "shared/" + "tools", "shared/" + "conformance", "/" + "work/")


def test_nothing_reads_beside_the_repository():
    found = []
    for folder in ("tests", "bench", ".ci", "tools", "serlite"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in ("", ".py", ".sh", ".cfg") and \
                    "__pycache__" not in path.parts:
                text = path.read_text(errors="replace")
                found += [f"{path.relative_to(ROOT)}: {w}" for w in OUTSIDE if w in text]
    assert not found, found


def test_python3_light_is_the_projects_own():
    tool = ROOT / "tools" / "python3-light"
    assert tool.stat().st_mode & 0o111
    assert (ROOT / "tools" / "pylight" / "sitecustomize.py").is_file()
