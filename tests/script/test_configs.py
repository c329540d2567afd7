"""Data-driven: every config under tests/data/configs/valid compiles; every config under
tests/data/configs/invalid is refused with exactly the text of its ``.expect`` side file
(``line:col: message`` and any ``  hint:`` line; the file name prefix is left out so the
configs themselves stay byte-identical to the conformance copies)."""

import hashlib
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


# SER's seed config and its bad-module-name variant, as the conformance set gave them: the
# seed must keep running unchanged, so its bytes are pinned (sha256 of the conformance copies).
CONFORMANCE_SHA256 = {
    "valid/seed.cfg": "78a689000f79687dc0c9be8db3d34f46436a8089fbe159548228a54655ffed68",
    "invalid/bad-module-name.cfg":
        "90cac49d5620698f961b3698ced07509fd29542346f86b12267a25ffe02de705",
}


def test_seed_is_the_conformance_copy():
    for name, digest in CONFORMANCE_SHA256.items():
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name
