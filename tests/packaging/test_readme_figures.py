"""The README's package figures are the build's (issue 13: the .ipk size there was stale, typed
by hand).  toolchain/readme_figures.py writes them between markers; this builds the package as
that script does (toolchain/mkipk at its SOURCE_DATE_EPOCH) and compares the README's text with
what the build gives.  When serlite's files change, run toolchain/readme_figures.py."""

import inspect
import sys

import pytest

from .pkgtools import REPO, build_ipk

sys.path.insert(0, str(REPO / "toolchain"))
import readme_figures  # noqa: E402

sys.path.remove(str(REPO / "toolchain"))


def readme_block():
    block = readme_figures.current((REPO / "README.md").read_text())
    assert block is not None, "README.md has no package figures between the markers"
    return block


def test_the_tests_build_as_the_script_does():
    # the same SOURCE_DATE_EPOCH, so the same compressed bytes
    assert inspect.signature(build_ipk).parameters["epoch"].default == readme_figures.EPOCH


def test_readme_figures_of_the_ipk_are_the_builds(ipk_file):
    wanted = readme_figures.plain_part(readme_figures.Figures(ipk_file))
    block = readme_block()
    assert block.startswith(f"{readme_figures.BEGIN}\n{wanted}\nWith `--compile`"), (
        f"README.md's package figures are not the build's: run toolchain/readme_figures.py\n"
        f"README:\n{block}\nbuild:\n{wanted}")


def test_readme_figures_of_the_compiled_ipk_are_the_builds(tmp_path):
    block = readme_block()
    python = readme_figures.python_version()
    named = block.split("byte code of Python ", 1)[1].split(")", 1)[0]
    if named != python:
        pytest.skip(f"README's --compile figures are for Python {named}'s byte code, this is "
                    f"Python {python}")
    compiled, _ = build_ipk(tmp_path, "--compile")
    wanted = readme_figures.compiled_part(readme_figures.Figures(compiled), python)
    assert block.endswith(f".\n{wanted}\n{readme_figures.END}"), (
        f"README.md's --compile figures are not the build's: run toolchain/readme_figures.py\n"
        f"README:\n{block}\nbuild:\n{wanted}")


def test_figures_count_what_the_package_holds(ipk, ipk_file):
    f = readme_figures.Figures(ipk_file)
    assert f.size == ipk_file.stat().st_size
    assert f.installed == ipk.data_size() == int(ipk.fields()["Installed-Size"])
    files = [m for m in ipk.data.getmembers() if m.isfile()]
    assert f.files == len(files) > 50 and f.file_bytes == sum(m.size for m in files)
