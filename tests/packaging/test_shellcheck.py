"""shellcheck passes on every shell script of the repository (found by its #! line or .sh name)
and on the scripts the .ipk carries (postinst, prerm).  tests/run installs shellcheck."""

import re
import shutil
import subprocess

import pytest

from .pkgtools import REPO

SHEBANG = re.compile(rb"^#!\s*/(usr/)?bin/(env\s+)?(ba|da|a)?sh\b")
SKIP = {".git", "__pycache__", ".pytest_cache", ".hypothesis", "build", ".benchmarks"}
MUST = ["files/etc/init.d/ser", "tests/run", ".ci/run", "tests/packaging/procd_harness.sh"]


def shell_scripts():
    found = []
    for path in sorted(REPO.rglob("*")):
        rel = path.relative_to(REPO)
        if SKIP.intersection(rel.parts) or not path.is_file():
            continue
        with open(path, "rb") as f:
            head = f.read(64)
        if path.suffix == ".sh" or SHEBANG.match(head):
            found.append(rel.as_posix())
    return found


@pytest.fixture(scope="module")
def shellcheck():
    tool = shutil.which("shellcheck")
    if tool is None:
        pytest.fail("shellcheck missing: run tests/run, which installs it")
    return tool


def test_the_known_scripts_are_found():
    assert set(MUST) <= set(shell_scripts())


@pytest.mark.parametrize("script", shell_scripts())
def test_shellcheck(shellcheck, script):
    run = subprocess.run([shellcheck, "-x", script], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("name", ["postinst", "prerm"])
def test_shellcheck_package_scripts(shellcheck, ipk, tmp_path, name):
    path = tmp_path / name
    path.write_text(ipk.control_file(name))
    # SC1091: they source the router's /lib/functions.sh, which is not here to follow
    run = subprocess.run([shellcheck, "-e", "SC1091", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
