#!/usr/bin/env python3
"""The README's package figures, from the package itself:

    toolchain/readme_figures.py            rebuild the .ipk (and --compile), rewrite README.md
    toolchain/readme_figures.py --check    exit 1, with a diff, when README.md is out of date

The figures (the .ipk's size, its Installed-Size, its files' bytes and count, the same for
``--compile``) live in README.md between the BEGIN and END markers below, written only by this
script; tests/packaging/test_readme_figures.py builds the package and fails when they differ.

Builds run toolchain/mkipk with SOURCE_DATE_EPOCH=EPOCH (the packaging tests' own), not the last
commit's time: the compressed size then does not move with the commit that updates the README.
The --compile figures are for the byte code of the python3 running this (its X.Y is written
beside them): the test compares them only under the same X.Y.
"""

import gzip
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from pathlib import Path

sys.dont_write_bytecode = True
REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MKIPK = REPO / "toolchain" / "mkipk"
EPOCH = "1700000000"
BEGIN = ("<!-- package figures: written by toolchain/readme_figures.py from the .ipk it builds, "
         "checked by tests/packaging/test_readme_figures.py -->")
END = "<!-- end of package figures -->"
WIDTH = 99


class Figures:
    """What one .ipk measures: its bytes, Installed-Size, its regular files' bytes and count."""

    def __init__(self, path):
        raw = Path(path).read_bytes()
        self.size = len(raw)
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as outer:
            data_gz = outer.extractfile("./data.tar.gz").read()
            control_gz = outer.extractfile("./control.tar.gz").read()
        with tarfile.open(fileobj=io.BytesIO(control_gz), mode="r:gz") as control:
            fields = dict(line.split(": ", 1) for line in
                          control.extractfile("./control").read().decode().splitlines()
                          if ": " in line)
        self.version = fields["Version"]
        self.installed = int(fields["Installed-Size"])
        assert self.installed == len(gzip.decompress(data_gz))
        with tarfile.open(fileobj=io.BytesIO(data_gz), mode="r:gz") as data:
            files = [m for m in data.getmembers() if m.isfile()]
        self.files = len(files)
        self.file_bytes = sum(m.size for m in files)


def kib(n):
    return f"{n / 1024:.0f} KiB"


def _fill(text):
    return textwrap.fill(text, WIDTH, break_on_hyphens=False, break_long_words=False)


def plain_part(plain):
    """The sentence of the .ipk toolchain/mkipk builds by default."""
    return _fill(f"Size (serlite {plain.version}, `toolchain/mkipk`): the `.ipk` is "
                 f"**{kib(plain.size)}**; installed it takes **{kib(plain.file_bytes)}** in "
                 f"{plain.files} files (`Installed-Size: {plain.installed}`, the uncompressed data "
                 f"tar, as `ipkg-build` counts it), less on the router's compressed overlay.")


def compiled_part(compiled, python):
    """The sentence of ``mkipk --compile``, whose byte code is this python3's X.Y."""
    return _fill(f"With `--compile` (byte code of Python {python}) it is {kib(compiled.size)} "
                 f"and {kib(compiled.file_bytes)} in {compiled.files} files (`Installed-Size: "
                 f"{compiled.installed}`): byte code is larger than its source and compresses "
                 f"worse.")


def block(plain, compiled, python):
    """The README's text between the markers, the markers included (one paragraph: the
    sentences start on lines of their own, which Markdown joins)."""
    return "\n".join([BEGIN, plain_part(plain), compiled_part(compiled, python), END])


def python_version():
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def build(outdir, *args):
    """toolchain/mkipk [args] OUTDIR at EPOCH; the .ipk's path."""
    run = subprocess.run([sys.executable, str(MKIPK), *args, str(outdir)], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, SOURCE_DATE_EPOCH=EPOCH))
    if run.returncode != 0:
        raise SystemExit(f"readme_figures: mkipk failed:\n{run.stderr}")
    return Path(run.stdout.strip().splitlines()[-1])


def current(readme_text):
    """The README's block (markers included), or None without markers."""
    start = readme_text.find(BEGIN)
    end = readme_text.find(END, start)
    if start < 0 or end < 0:
        return None
    return readme_text[start:end + len(END)]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    check = argv == ["--check"]
    if argv and not check:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="figures-") as tmp:
        plain = Figures(build(Path(tmp) / "plain"))
        compiled = Figures(build(Path(tmp) / "compiled", "--compile"))
    text = README.read_text()
    old = current(text)
    if old is None:
        print(f"readme_figures: no markers in {README}:\n{BEGIN}\n{END}", file=sys.stderr)
        return 1
    new = block(plain, compiled, python_version())
    if old == new:
        print("README.md: the package figures are up to date", file=sys.stderr)
        return 0
    if check:
        import difflib
        sys.stderr.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                   "README.md", "the build"))
        print("\nREADME.md: the package figures differ from the build: run "
              "toolchain/readme_figures.py", file=sys.stderr)
        return 1
    README.write_text(text.replace(old, new))
    print("README.md: package figures written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
