"""The .ipk format as OpenWrt's scripts/ipkg-build writes it, reproducibly, with the standard
library only.

An .ipk is a gzip'd tar (not an ar archive as Debian's .deb) of three members, in this order:

    ./debian-binary     "2.0\\n"
    ./data.tar.gz       the files, from "./" down (GNU tar --sort=name: each directory's
                        entries by name, depth first), owner 0:0 without names (--numeric-owner)
    ./control.tar.gz    "./", then ./control, ./conffiles, ./postinst, ./prerm ... by name

Every tar is GNU format and every gzip is written without a file name and with mtime 0
(``gzip -n``), all entries carry the same mtime (SOURCE_DATE_EPOCH): the same input gives the
same bytes.  Installed-Size is what ipkg-build puts there: the length of the uncompressed
data tar.
"""

import gzip
import io
import tarfile

DIR_MODE = 0o755


class Entry:
    """A file or directory of the package: ``path`` relative, without "./" (``usr/bin/ser``)."""

    __slots__ = ("path", "data", "mode")

    def __init__(self, path, data=None, mode=None):
        self.path = path.strip("/")
        self.data = data            # None: a directory
        self.mode = mode if mode is not None else DIR_MODE if data is None else 0o644

    @property
    def is_dir(self):
        return self.data is None


def _gzip(raw):
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=out, mtime=0) as gz:
        gz.write(raw)
    return out.getvalue()


def _info(name, mode, mtime, size=0, is_dir=False):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = mode
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _tree_order(entries):
    """Directories first, each directory's entries by byte order of their names, depth first:
    GNU tar's --sort=name walk.  Missing parent directories are added (mode 0755)."""
    by_path = {e.path: e for e in entries}
    for e in list(entries):
        parts = e.path.split("/")
        for i in range(1, len(parts)):
            by_path.setdefault("/".join(parts[:i]), Entry("/".join(parts[:i])))
    children = {}
    for path in by_path:
        parent = path.rpartition("/")[0]
        children.setdefault(parent, []).append(path)
    out = []

    def walk(parent):
        for path in sorted(children.get(parent, ()), key=lambda p: p.rpartition("/")[2].encode()):
            out.append(by_path[path])
            if by_path[path].is_dir:
                walk(path)
    walk("")
    return out


def tar_tree(entries, mtime):
    """The uncompressed GNU tar of ``entries`` below "./"."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_info("./", DIR_MODE, mtime, is_dir=True))
        for e in _tree_order(entries):
            if e.is_dir:
                tar.addfile(_info(f"./{e.path}/", e.mode, mtime, is_dir=True))
            else:
                tar.addfile(_info(f"./{e.path}", e.mode, mtime, len(e.data)), io.BytesIO(e.data))
    return raw.getvalue()


def control_text(fields, description):
    """The control file: ``fields`` in order (a dict), then the description with every line
    indented by one space, as package-pack.mk writes it ("Description:  first line")."""
    lines = [f"{k}: {v}" for k, v in fields.items()]
    body = [" " + line.strip() for line in description.strip().splitlines()]
    return "\n".join(lines + ["Description: " + body[0]] + body[1:]) + "\n"


def build(data_entries, control_fields, description, scripts, mtime):
    """The .ipk bytes and (size, installed size).

    ``control_fields``: Package, Version, Depends ... in order; Installed-Size is set here.
    ``scripts``: {name: text} for CONTROL (conffiles 0644, executables 0755).
    """
    data_tar = tar_tree(data_entries, mtime)
    installed = len(data_tar)
    fields = dict(control_fields)
    fields["Installed-Size"] = str(installed)
    control = [Entry("control", control_text(fields, description).encode(), 0o644)]
    for name, text in scripts.items():
        mode = 0o644 if name == "conffiles" else 0o755
        control.append(Entry(name, text.encode(), mode))
    members = [
        Entry("debian-binary", b"2.0\n"),
        Entry("data.tar.gz", _gzip(data_tar)),
        Entry("control.tar.gz", _gzip(tar_tree(control, mtime))),
    ]
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for m in members:          # ipkg-build names the three in this order, not sorted
            tar.addfile(_info(f"./{m.path}", 0o644, mtime, len(m.data)), io.BytesIO(m.data))
    ipk = _gzip(outer.getvalue())
    return ipk, installed
