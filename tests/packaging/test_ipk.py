"""toolchain/mkipk: the .ipk has scripts/ipkg-build's format, says what package/Makefile says,
holds what the router needs and nothing else, and comes out the same byte for byte."""

import re
import subprocess
import sys
import tarfile

import pytest

from serlite import __version__

from .pkgtools import PYTHON3_LIGHT, REPO, SITE, Ipk, build_ipk, install, light_env, run_installed

EPOCH = 1700000000


def test_file_name_and_outer_layout(ipk):
    assert ipk.path.name == f"serlite_{__version__}_all.ipk"
    # a gzip'd tar (not ar) of three members, in ipkg-build's order
    assert ipk.raw[:2] == b"\x1f\x8b"
    assert [m.name for m in ipk.members] == ["./debian-binary", "./data.tar.gz",
                                             "./control.tar.gz"]
    assert ipk.member("./debian-binary") == b"2.0\n"
    for m in ipk.members:
        assert m.isfile() and (m.uid, m.gid, m.mtime) == (0, 0, EPOCH)


@pytest.mark.parametrize("which", ["outer", "data", "control"])
def test_gzip_without_name_or_time(ipk, which):
    raw = {"outer": ipk.raw, "data": ipk.data_gz, "control": ipk.control_gz}[which]
    assert raw[3] & 0x08 == 0, "FNAME flag set: gzip -n writes no file name"
    assert raw[4:8] == b"\0\0\0\0", "gzip -n writes mtime 0"


def test_control_fields(ipk):
    f = ipk.fields()
    assert list(f) == ["Package", "Version", "Depends", "Source", "SourceName", "License",
                       "Section", "Architecture", "Installed-Size", "Description"]
    assert f["Package"] == "serlite"
    assert f["Version"] == __version__
    assert f["Depends"] == "libc, python3-light"
    assert f["Architecture"] == "all"
    assert f["Section"] == "net"
    assert f["License"]
    # Installed-Size as ipkg-build computes it: the uncompressed data tar
    assert int(f["Installed-Size"]) == ipk.data_size()
    assert f["Description"].startswith(" serlite is SER")


def test_control_members(ipk):
    names = [m.name for m in ipk.control.getmembers()]
    assert names == [".", "./conffiles", "./control", "./postinst", "./prerm"]
    modes = {m.name: m.mode for m in ipk.control.getmembers()}
    assert modes["./postinst"] == modes["./prerm"] == 0o755
    assert modes["./control"] == modes["./conffiles"] == 0o644
    assert ipk.control_file("conffiles") == ("/etc/config/ser\n/etc/ser/ser.cfg\n"
                                             "/etc/ser/webui.conf\n")
    assert "default_postinst" in ipk.control_file("postinst")
    assert "default_prerm" in ipk.control_file("prerm")


def test_data_holds_what_the_router_needs(ipk):
    members = {m.name: m for m in ipk.data.getmembers()}
    want = {"./usr/bin/ser": 0o755, "./usr/bin/ser-ctl": 0o755, "./etc/init.d/ser": 0o755,
            "./etc/config/ser": 0o600, "./etc/ser/ser.cfg": 0o644,
            f"./{SITE}/serlite/__init__.py": 0o644, f"./{SITE}/serlite/cli.py": 0o644,
            f"./{SITE}/serlite/uci.py": 0o644}
    for name, mode in want.items():
        assert name in members, name
        assert members[name].mode == mode, (name, oct(members[name].mode))
    if (REPO / "webui" / "www" / "cgi-bin" / "ser").exists():
        assert members["./www/cgi-bin/ser"].mode == 0o755
    for c in ipk.control_file("conffiles").split():
        assert "." + c in members
    names = list(members)
    for bad in ("__pycache__", ".pyc", "/tests/", "/bench/", "/docs/", "/."):
        assert not [n for n in names if bad in n and n != "."], bad


def test_data_entries_are_root_owned_dated_and_sorted(ipk):
    members = ipk.data.getmembers()
    assert members[0].name == "." and members[0].isdir()
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", ""), m.name
        assert m.mtime == EPOCH
    # GNU tar --sort=name: within each directory by name, depth first
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/")), names[:20]


def test_python_files_match_the_tree(ipk):
    shipped = {m.name[len(f"./{SITE}/"):] for m in ipk.data.getmembers()
               if m.isfile() and m.name.startswith(f"./{SITE}/")}
    tree = {p.relative_to(REPO).as_posix() for p in (REPO / "serlite").rglob("*.py")
            if "__pycache__" not in p.parts}
    assert shipped == tree


def test_two_builds_are_byte_identical(tmp_path):
    first, _ = build_ipk(tmp_path / "first")
    again, _ = build_ipk(tmp_path / "again")
    assert again.read_bytes() == first.read_bytes()


def test_the_date_comes_from_source_date_epoch(tmp_path):
    path, _ = build_ipk(tmp_path, epoch="1234567890")
    assert {m.mtime for m in Ipk(path).data.getmembers()} == {1234567890}


def test_sizes_are_printed(tmp_path):
    path, err = build_ipk(tmp_path)
    size = path.stat().st_size
    installed = int(Ipk(path).fields()["Installed-Size"])
    assert f"{size} bytes" in err and f"Installed-Size {installed}" in err


def test_version_agrees_with_the_makefile():
    makefile = (REPO / "package" / "Makefile").read_text()
    assert re.search(rf"^PKG_VERSION:={re.escape(__version__)}$", makefile, re.M)


def test_compiled_package_runs_on_this_python_only(tmp_path):
    path, _ = build_ipk(tmp_path / "out", "--compile")
    ipk = Ipk(path)
    names = [m.name for m in ipk.data.getmembers()]
    assert f"./{SITE}/serlite/cli.pyc" in names
    assert not [n for n in names if n.startswith(f"./{SITE}/") and n.endswith(".py")]
    major, minor = sys.version_info[:2]
    assert ipk.fields()["Depends"] == (f"libc, python3-light (>= {major}.{minor}), "
                                       f"python3-light (<< {major}.{minor + 1})")
    # unchecked-hash .pyc: flags word 0b01 (hash-based, not checked against a source)
    pyc = ipk.data.extractfile(f"./{SITE}/serlite/cli.pyc").read()
    assert int.from_bytes(pyc[4:8], "little") == 0b01
    # reproducible too
    again, _ = build_ipk(tmp_path / "again", "--compile")
    assert again.read_bytes() == path.read_bytes()
    # and it runs, sourceless, on the python3 that compiled it
    root = tmp_path / "root"
    assert install(ipk, root).returncode == 0
    run = subprocess.run([sys.executable, str(root / "usr/bin/ser"), "-V"], capture_output=True,
                         text=True, env={"PYTHONPATH": str(root / SITE)}, cwd="/", timeout=30)
    assert run.returncode == 0 and __version__ in run.stdout, run.stderr


def test_installed_ser_reports_its_version(installed):
    run = run_installed(installed, "ser", "-V")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"serlite {__version__} ")


def test_installed_serlite_comes_from_the_scratch_root(installed):
    # the e2e test below must not run the repository's tree by accident
    run = subprocess.run([str(PYTHON3_LIGHT), "-c", "import serlite; print(serlite.__file__)"],
                         capture_output=True, text=True, env=light_env(installed), cwd="/")
    assert run.stdout.strip() == str(installed / SITE / "serlite" / "__init__.py"), run.stderr


def test_tarfile_reads_every_member(ipk):
    for m in ipk.data.getmembers():
        if m.isfile():
            assert len(ipk.data.extractfile(m).read()) == m.size
        else:
            assert m.type == tarfile.DIRTYPE and m.mode == 0o755
