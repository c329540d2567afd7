"""Data-driven: every config under tests/data/configs/valid compiles; every config under
tests/data/configs/invalid is refused with exactly the text of its ``.expect`` side file
(``line:col: message`` and any ``  hint:`` line; the file name prefix is left out so the
configs themselves stay byte-identical to the conformance copies)."""

import pathlib

import pytest

from serlite.script.compiler import compile_file
from serlite.script.errors import ConfigError

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "configs"
VALID = sorted((DATA / "valid").glob("*.cfg"))
INVALID = sorted((DATA / "invalid").glob("*.cfg"))


def test_the_data_is_there():
    assert len(VALID) >= 3 and len(INVALID) >= 20
    for path in INVALID:
        assert path.with_suffix(".expect").exists(), f"{path.name} has no .expect file"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_config_compiles(rec, path):
    script = compile_file(str(path))
    assert script.has_route(1, "0")
    assert list(script.modules)[0] == "core"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_config_is_refused_with_the_expected_error(rec, path):
    expected = path.with_suffix(".expect").read_text(encoding="utf-8").rstrip("\n")
    with pytest.raises(ConfigError) as info:
        compile_file(str(path))
    assert str(info.value) == f"{path}:{expected}"


def test_seed_is_the_conformance_copy():
    shared = pathlib.Path("/work/shared/conformance/ser-configs")
    if not shared.exists():
        pytest.skip("no shared conformance directory here")
    assert (DATA / "valid" / "seed.cfg").read_bytes() == (shared / "seed.cfg").read_bytes()
    assert (DATA / "invalid" / "bad-module-name.cfg").read_bytes() == \
        (shared / "bad-module-name.cfg").read_bytes()
