"""Helpers for the router package tests: build the .ipk with toolchain/mkipk, read it with
tarfile, install it into a scratch root the way opkg does it offline (data extracted, control
files in usr/lib/opkg/info, postinst run with IPKG_INSTROOT set), run what it installed."""

import gzip
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MKIPK = REPO / "toolchain" / "mkipk"
PYTHON3_LIGHT = REPO / "tools" / "python3-light"   # python3 as OpenWrt's python3-light
SITE = "usr/lib/serlite"          # where mkipk puts the Python package


def build_ipk(outdir, *args, epoch="1700000000"):
    """Run toolchain/mkipk; return (path of the .ipk, its stderr)."""
    env = dict(os.environ, SOURCE_DATE_EPOCH=epoch)
    run = subprocess.run([sys.executable, str(MKIPK), *args, str(outdir)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    path = Path(run.stdout.strip().splitlines()[-1])
    assert path.is_file(), run.stdout
    return path, run.stderr


class Ipk:
    """The three members of an .ipk, read with tarfile."""

    def __init__(self, path):
        self.path = Path(path)
        self.raw = self.path.read_bytes()
        self.outer = tarfile.open(fileobj=io.BytesIO(self.raw), mode="r:gz")
        self.members = self.outer.getmembers()
        self.data_gz = self.member("./data.tar.gz")
        self.control_gz = self.member("./control.tar.gz")
        self.data = tarfile.open(fileobj=io.BytesIO(self.data_gz), mode="r:gz")
        self.control = tarfile.open(fileobj=io.BytesIO(self.control_gz), mode="r:gz")

    def member(self, name):
        return self.outer.extractfile(name).read()

    def control_file(self, name):
        return self.control.extractfile(f"./{name}").read().decode()

    def fields(self):
        """The control file's fields; Description with its continuation lines."""
        out, key = {}, None
        for line in self.control_file("control").splitlines():
            if line.startswith(" ") and key:
                out[key] += "\n" + line
            else:
                key, _, value = line.partition(": ")
                out[key] = value
        return out

    def data_size(self):
        return len(gzip.decompress(self.data_gz))


def install(ipk, root):
    """What opkg does offline (opkg -o ROOT install): data into ROOT, the control files into
    ROOT/usr/lib/opkg/info/<package>.*, the file list into <package>.list, then the postinst
    with IPKG_INSTROOT=ROOT.  Returns the postinst's CompletedProcess."""
    root = Path(root)
    pkg = ipk.fields()["Package"]
    kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    ipk.data.extractall(root, **kwargs)
    info = root / "usr" / "lib" / "opkg" / "info"
    info.mkdir(parents=True, exist_ok=True)
    for m in ipk.control.getmembers():
        if m.isfile():
            dest = info / f"{pkg}.{Path(m.name).name}"
            dest.write_bytes(ipk.control.extractfile(m).read())
            dest.chmod(m.mode)
    files = [m.name[1:] for m in ipk.data.getmembers() if not m.isdir()]
    (info / f"{pkg}.list").write_text("".join(f"{f}\n" for f in files))
    return subprocess.run(["sh", str(info / f"{pkg}.postinst"), "configure"],
                          env=dict(os.environ, IPKG_INSTROOT=str(root)), capture_output=True,
                          text=True, timeout=30)


def light_env(root):
    """The environment of a program installed in ``root``: serlite from root's SITE only."""
    return dict(os.environ, PYTHONPATH=str(Path(root) / SITE), PYTHONDONTWRITEBYTECODE="1")


def run_installed(root, program, *args, timeout=60):
    """ROOT/usr/bin/PROGRAM ARGS under python3-light."""
    return subprocess.run([str(PYTHON3_LIGHT), str(Path(root) / "usr" / "bin" / program),
                           *map(str, args)], capture_output=True, text=True,
                          env=light_env(root), cwd="/", timeout=timeout)
