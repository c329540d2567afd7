"""Replacing a file so that a crash or a power cut leaves the old one or the new one, never a
mix: a temporary file in the same directory, written and fsync'd, renamed over the old one, and
the directory fsync'd so that the new name survives too."""

import errno
import os


def replace_atomically(path, write, mode=0o600, tmp=None):
    """Make ``path`` what ``write(f)`` writes to a binary file; returns what ``write`` returns.
    The file gets ``mode`` whatever the umask; ``tmp`` names the temporary file (default: a
    hidden one beside ``path``)."""
    directory = os.path.dirname(os.path.abspath(path))
    if tmp is None:
        tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        os.unlink(tmp)          # left by a rewrite that a crash interrupted
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        with open(fd, "wb") as f:
            result = write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)     # whatever the umask took away or added
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)
    return result


def make_dirs(path, mode=0o755):
    """``os.makedirs`` that gives every folder it makes ``mode`` (less what the umask takes),
    parents included: ``os.makedirs`` makes the parents 0777 & ~umask, world-writable under
    umask 0.  An existing folder is left as it is."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise


def fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):     # a file system without dir fsync
            raise
    finally:
        os.close(fd)


def read_or_make_secret(path, nbytes=32, shortest=16):
    """The secret (hex text, as bytes) kept in ``path``; made at first use from ``nbytes``
    random bytes, written 0600 to a temporary file that is then linked into place, so that two
    processes starting at once end up with the same one.  OSError when it can be neither read
    nor made; ValueError when the file holds fewer than ``shortest`` characters."""
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
    except FileNotFoundError:
        secret = None
    if secret is None:
        directory = os.path.dirname(path) or "."
        make_dirs(directory, 0o755)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o600)
        try:
            os.write(fd, os.urandom(nbytes).hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)          # fails if another process was first: take its secret
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        with open(path, "rb") as f:
            secret = f.read().strip()
    if len(secret) < shortest:
        raise ValueError(f"{path} holds {len(secret)} bytes, too short for a secret")
    return secret
