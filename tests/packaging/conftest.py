"""Fixtures for the router package: the .ipk toolchain/mkipk builds, read, and installed into
a scratch root (see pkgtools.py)."""

import pytest

from .pkgtools import Ipk, build_ipk, install


@pytest.fixture(scope="session")
def ipk_file(tmp_path_factory):
    path, _ = build_ipk(tmp_path_factory.mktemp("ipk"))
    return path


@pytest.fixture(scope="session")
def ipk(ipk_file):
    return Ipk(ipk_file)


@pytest.fixture(scope="session")
def installed(ipk, tmp_path_factory):
    """A scratch root with the package installed (and no /lib/functions.sh: the postinst then
    has nothing to call, as in an image being built without base-files)."""
    root = tmp_path_factory.mktemp("root")
    run = install(ipk, root)
    assert run.returncode == 0, run.stderr
    return root
