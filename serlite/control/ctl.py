"""ser-ctl: the administrator's command line (SER's ``serctl``), ``python3 -m serlite.ctl``.

    ser-ctl [-c UCI_FILE] user add NAME PASSWORD         (PASSWORD "-": read stdin)
    ser-ctl [-c UCI_FILE] user passwd NAME PASSWORD
    ser-ctl [-c UCI_FILE] user del NAME
    ser-ctl [-c UCI_FILE] user list
    ser-ctl -d DB_URL [-t TABLE] user add|passwd|del|list USER@DOMAIN ...   (experts)
    ser-ctl [-s SOCKET] {ps,uptime,version,stats,sl_stats,reload,ping} [--json]
    ser-ctl [-s SOCKET] ul show [AOR] | ul rm AOR [--json]
    ser-ctl [-s SOCKET] calls [N] [--json]
    ser-ctl [-s SOCKET] ban list | ban add ADDRESS [SECONDS] | ban del ADDRESS [--json]

The accounts are the ``config user`` sections of /etc/config/ser (``-c``, else ``$SER_UCI``):
``user ...`` changes them through the ``uci`` command where there is one (``$SER_UCI_BIN``),
else rewrites the file itself (atomically, comments and other sections kept); then it writes
the server's copy (the ``subscriber`` table, HA1 only, 0600, in /var/etc/ser or
``$SER_RUN_DIR``: ``serlite.uci.write_accounts``) and tells a running server over the control
socket (``auth_reload``), which takes the change at once: no restart, no reload, no call
dropped.  ``-d`` (or ``$SER_DB``) instead edits an expert's own dbtext ``subscriber`` table
(``USER@DOMAIN``, the domain being the realm).  Commands are argparse sub-commands: each group
is one ``add_*_commands(subparsers)`` function that sets ``func(args, io) -> exit status`` on
its parsers, and ``COMMAND_GROUPS`` lists them.  A command's failure is ``CtlError``: one line
on stderr, exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..sip import digest
from ..sip.grammar import is_host
from ..store import dbtext
from ..store.files import make_dirs

DEFAULT_DB = "dbtext:///etc/ser/db"
DEFAULT_TABLE = "subscriber"
DEFAULT_UCI = "/etc/config/ser"


class CtlError(Exception):
    """A command that cannot be done; the message is the one line the user sees."""


class IO:
    """The streams a command uses (tests pass their own)."""

    def __init__(self, stdin=None, stdout=None, stderr=None):
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr

    def out(self, line):
        self.stdout.write(line + "\n")

    def err(self, line):
        self.stderr.write(line + "\n")


# --- text <-> octets ----------------------------------------------------------------------------
# The table holds octets (serlite's SIP layer reads messages as latin-1 strings); the command
# line gives text.  A name typed in UTF-8 is stored as its UTF-8 octets, as a phone sends it.

def _octets(text):
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _text(octets):
    return octets.encode("latin-1").decode("utf-8", "replace")


# --- user ---------------------------------------------------------------------------------------

def parse_user(spec, what):
    """``("alice", "home")`` from ``alice@home``: one ``@``, a user without white space or
    control characters, a host name or address (lower-cased: it is the realm)."""
    user, at, domain = spec.partition("@")
    if not at:
        raise CtlError(f"{what}: {spec!r} is not USER@DOMAIN (the domain is the realm the "
                       f"phones are challenged with: the registrar's host name or address)")
    if not user or "@" in domain:
        raise CtlError(f"{what}: {spec!r} is not USER@DOMAIN")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in user):
        raise CtlError(f"{what}: user {user!r} holds white space or control characters")
    domain = domain.lower()
    if not is_host(domain):
        raise CtlError(f"{what}: domain {domain!r} is not a host name or address")
    return _octets(user), domain


def read_password(value, io, what):
    """The password argument; ``-`` reads it from stdin (its first line; at a terminal, asked
    twice without echo) so it stays out of the shell history."""
    if value == "-":
        if getattr(io.stdin, "isatty", lambda: False)():
            import getpass
            value = getpass.getpass("Password: ")
            if getpass.getpass("Again: ") != value:
                raise CtlError(f"{what}: the passwords differ")
        else:
            value = io.stdin.readline()
            if value.endswith("\n"):
                value = value[:-1]
            if value.endswith("\r"):
                value = value[:-1]
    if value == "":
        raise CtlError(f"{what}: empty password")
    if any(c in value for c in "\n\r\0"):
        raise CtlError(f"{what}: the password holds a line break or NUL")
    return _octets(value)


class Subscribers:
    """The subscriber table file: read, changed, written back atomically (mode 0600)."""

    def __init__(self, db_url, table, io):
        try:
            self.path = dbtext.table_path(db_url, table)
        except ValueError as exc:
            raise CtlError(str(exc)) from None
        self.io = io

    def read(self, what, create=False):
        try:
            table, warnings = dbtext.read_table(self.path)
        except FileNotFoundError:
            if not create:
                return None
            return dbtext.Table(dbtext.SUBSCRIBER_COLUMNS)
        except dbtext.DbTextError as exc:
            raise CtlError(f"{what}: {exc}") from None
        except OSError as exc:
            raise CtlError(f"{what}: cannot read {self.path}: {exc.strerror}") from None
        for w in warnings:
            self.io.err(f"warning: {w} (kept as it is)")
        return table

    def write(self, table, what):
        directory = os.path.dirname(self.path) or "."
        try:
            make_dirs(directory, 0o700)
            dbtext.write_table(self.path, table)
        except OSError as exc:
            raise CtlError(f"{what}: cannot write {self.path}: {exc.strerror}") from None

    def locked(self, what):
        """An exclusive lock on the table's directory while a command reads and rewrites the
        table, so two ser-ctl runs cannot lose each other's change (no-op without fcntl)."""
        return _DirLock(os.path.dirname(self.path) or ".", what)


class _DirLock:
    def __init__(self, directory, what):
        self.directory = directory
        self.what = what
        self.fd = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        try:
            make_dirs(self.directory, 0o700)
            self.fd = os.open(self.directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
            raise CtlError(f"{self.what}: cannot use {self.directory}: {exc.strerror}") \
                from None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)       # closing releases the lock


def _matches(row, user, domain, has_domain):
    return row.get("username") == user and (
        not has_domain or (row.get("domain") or "").lower() == domain)


def _set_credentials(row, table, user, domain, password):
    row["ha1"] = digest.ha1(user, domain, password)
    if table.column("ha1b") is not None:
        row["ha1b"] = digest.ha1(f"{user}@{domain}", domain, password)
    if table.column("password") is not None:
        row["password"] = None           # never a clear password; an old one goes


def _check_columns(table, what):
    wanted = " ".join(c.text() for c in dbtext.SUBSCRIBER_COLUMNS)
    for name in ("username", "ha1"):
        if table.column(name) is None:
            raise CtlError(f"{what}: the table has no {name} column (ser-ctl writes: {wanted})")


def user_add(args, io):
    what = "user add"
    user, domain = parse_user(args.user, what)
    password = read_password(args.password, io, what)
    subs = Subscribers(args.db, args.table, io)
    with subs.locked(what):
        table = subs.read(what, create=True)
        _check_columns(table, what)
        has_domain = table.column("domain") is not None
        if any(_matches(r, user, domain, has_domain) for r in table.records()):
            raise CtlError(f"{what}: {args.user} exists (change its password with "
                           f"'user passwd', or 'user del' it first)")
        row = {}
        for col in table.columns:
            row[col.name] = table.next_auto(col.name) if col.auto else None
        row["username"] = user
        if has_domain:
            row["domain"] = domain
        _set_credentials(row, table, user, domain, password)
        table.rows.append(row)
        subs.write(table, what)
    io.out(f"{what}: {_text(user)}@{domain} added to {subs.path}")
    _tell_server(args, io)
    return 0


def user_passwd(args, io):
    what = "user passwd"
    user, domain = parse_user(args.user, what)
    password = read_password(args.password, io, what)
    subs = Subscribers(args.db, args.table, io)
    with subs.locked(what):
        table = subs.read(what)
        if table is None:
            raise CtlError(f"{what}: no user {args.user} ({subs.path} does not exist)")
        _check_columns(table, what)
        has_domain = table.column("domain") is not None
        rows = [r for r in table.records() if _matches(r, user, domain, has_domain)]
        if not rows:
            raise CtlError(f"{what}: no user {args.user} in {subs.path}")
        for row in rows:
            _set_credentials(row, table, user, domain, password)
        subs.write(table, what)
    io.out(f"{what}: password of {_text(user)}@{domain} changed")
    _tell_server(args, io)
    return 0


def user_del(args, io):
    what = "user del"
    user, domain = parse_user(args.user, what)
    subs = Subscribers(args.db, args.table, io)
    with subs.locked(what):
        table = subs.read(what)
        if table is None:
            raise CtlError(f"{what}: no user {args.user} ({subs.path} does not exist)")
        has_domain = table.column("domain") is not None
        before = len(table.rows)
        table.rows = [r for r in table.rows
                      if not (isinstance(r, dict) and _matches(r, user, domain, has_domain))]
        if len(table.rows) == before:
            raise CtlError(f"{what}: no user {args.user} in {subs.path}")
        subs.write(table, what)
    io.out(f"{what}: {_text(user)}@{domain} deleted")
    _tell_server(args, io)
    return 0


def _credentials_kind(row):
    """What a record authenticates with, never the secret itself."""
    kinds = [name for name in ("ha1", "ha1b") if row.get(name)]
    if row.get("password"):
        kinds.append("password (clear text!)")
    return "+".join(kinds) if kinds else "none (cannot log in)"


def user_list(args, io):
    what = "user list"
    subs = Subscribers(args.db, args.table, io)
    table = subs.read(what)
    if table is None:
        io.err(f"{what}: {subs.path} does not exist: no users yet")
        return 0
    rows = [(_text(r.get("username") or ""), _text(r.get("domain") or ""),
             _credentials_kind(r)) for r in table.records()]
    if not rows:
        return 0
    width_u = max(len("USER"), *(len(r[0]) for r in rows))
    width_d = max(len("DOMAIN"), *(len(r[1]) for r in rows))
    io.out(f"{'USER':<{width_u}}  {'DOMAIN':<{width_d}}  CREDENTIALS")
    for u, d, kind in rows:
        io.out(f"{u:<{width_u}}  {d:<{width_d}}  {kind}")
    return 0


def _either(uci_func, db_func):
    """The UCI account list, or with -d/$SER_DB the expert's dbtext table."""
    return lambda args, io: (db_func if args.db else uci_func)(args, io)


def add_user_commands(subparsers):
    p = subparsers.add_parser("user", help="manage the accounts (the config user sections of "
                                           "/etc/config/ser; with -d a dbtext table)")
    sub = p.add_subparsers(dest="action", metavar="{add,passwd,del,list}")
    sub.required = True
    a = sub.add_parser("add", help="add an account: user add 100 PASSWORD|-")
    a.add_argument("user", metavar="NAME")
    a.add_argument("password", metavar="PASSWORD", help='"-" reads it from stdin')
    a.set_defaults(func=_either(uci_user_add, user_add))
    a = sub.add_parser("passwd", help="change a password: user passwd 100 PASSWORD|-")
    a.add_argument("user", metavar="NAME")
    a.add_argument("password", metavar="PASSWORD", help='"-" reads it from stdin')
    a.set_defaults(func=_either(uci_user_passwd, user_passwd))
    a = sub.add_parser("del", help="delete an account (and its registrations): user del 100")
    a.add_argument("user", metavar="NAME")
    a.set_defaults(func=_either(uci_user_del, user_del))
    a = sub.add_parser("list", help="list the accounts (never a password)")
    a.set_defaults(func=_either(uci_user_list, user_list))


# --- the accounts as UCI sections --------------------------------------------------------------

def _uci_quote(value):
    """A UCI word in single quotes, as uci itself writes one ('it'\\''s')."""
    return "'" + value.replace("'", "'\\''") + "'"


class UciAccounts:
    """The ``config user`` sections of the UCI file: read, changed through the ``uci`` command
    where there is one, else by rewriting the file (atomically, the rest kept as it was)."""

    def __init__(self, args, io):
        self.path = args.uci
        self.run_dir = args.run_dir
        self.uci_bin = args.uci_bin
        self.io = io

    def read(self, what):
        """(text, sections) of the file; a missing file is an empty one."""
        from .. import uci
        try:
            with open(self.path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise CtlError(f"{what}: cannot read {self.path}: {exc.strerror}") from None
        try:
            sections = uci.parse(text, self.path)
            settings = uci.settings(sections)
        except uci.UciError as exc:
            raise CtlError(f"{what}: {exc}") from None
        if settings.user_db:
            raise CtlError(f"{what}: option user_db is set in {self.path}: the accounts are in "
                           f"{settings.user_db} (ser-ctl -d {settings.user_db} user ...)")
        return text, sections

    def find(self, sections, name):
        from .. import uci
        found = [(i, sec) for i, (sec, n, _) in enumerate(uci.user_sections(sections))
                 if n == name]
        return found[-1] if found else (None, None)

    def locked(self, what):
        return _DirLock(os.path.dirname(os.path.abspath(self.path)), what)

    # -- changing ------------------------------------------------------------------------------
    def add(self, text, name, password, what):
        if self.uci_bin:
            return self._batch([f"add {self._package} user",
                                f"set {self._package}.@user[-1].name={_uci_quote(name)}",
                                f"set {self._package}.@user[-1].password="
                                f"{_uci_quote(password)}"], what)
        if text and not text.endswith("\n"):
            text += "\n"
        text += (("\n" if text else "") + f"config user\n\toption name {_uci_quote(name)}\n"
                 f"\toption password {_uci_quote(password)}\n")
        self._write(text, what)

    def passwd(self, text, index, section, password, what):
        if self.uci_bin:
            return self._batch([f"set {self._package}.@user[{index}].password="
                                f"{_uci_quote(password)}"], what)
        lines = text.split("\n")
        at = section.option_lines.get("password", [])
        new = f"\toption password {_uci_quote(password)}"
        if at:
            lines[at[0] - 1] = new
            for n in reversed(at[1:]):
                del lines[n - 1]
        else:
            lines.insert(section.end, new)
        self._write("\n".join(lines), what)

    def delete(self, text, index, section, what):
        if self.uci_bin:
            return self._batch([f"delete {self._package}.@user[{index}]"], what)
        lines = text.split("\n")
        del lines[section.line - 1:section.end]
        # the blank line that separated it goes too
        at = section.line - 1
        if 0 < at <= len(lines) and lines[at - 1].strip() == "" and (
                at == len(lines) or lines[at].strip() == ""):
            del lines[at - 1]
        self._write("\n".join(lines), what)

    @property
    def _package(self):
        return os.path.basename(self.path)

    def _write(self, text, what):
        from ..store.files import replace_atomically
        try:
            mode = os.stat(self.path).st_mode & 0o700   # it holds passwords: nobody else
        except FileNotFoundError:
            mode = 0o600
        data = text.encode("utf-8", "surrogateescape")
        try:
            replace_atomically(self.path, lambda f: f.write(data), mode)
        except OSError as exc:
            raise CtlError(f"{what}: cannot write {self.path}: {exc.strerror}") from None

    def _batch(self, commands, what):
        """``uci -c DIR batch``, the commands on stdin (passwords stay out of ps), then
        ``commit``."""
        import subprocess
        script = "\n".join(commands + [f"commit {self._package}"]) + "\n"
        cmd = [self.uci_bin, "-c", os.path.dirname(os.path.abspath(self.path)), "batch"]
        try:
            done = subprocess.run(cmd, input=script.encode("utf-8", "surrogateescape"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise CtlError(f"{what}: {self.uci_bin}: {exc}") from None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
            raise CtlError(f"{what}: {self.uci_bin} batch failed: {why or done.returncode}")

    # -- the server's copy ---------------------------------------------------------------------
    def publish(self, what):
        """Write the server's table from the file as it is now; returns its path."""
        from .. import uci
        _, sections = self.read(what)
        try:
            return uci.write_accounts(uci.settings(sections), self.run_dir)
        except uci.UciError as exc:
            raise CtlError(f"{what}: {exc}") from None
        except OSError as exc:
            raise CtlError(f"{what}: cannot write {uci.accounts_path(self.run_dir)}: "
                           f"{exc.strerror}") from None


def _tell_server(args, io):
    """Ask a running server to read its account tables now (it would notice within a second
    of the next login anyway).  Not running is fine: it reads them when it starts."""
    from .client import Client, CommandFailed, NotRunning
    try:
        with Client(args.socket) as client:
            client.call("auth_reload")
    except NotRunning:
        io.out("(serlite is not running: it reads the accounts when it starts)")
    except (CommandFailed, OSError, ValueError) as exc:
        io.err(f"warning: the server did not take the change now ({exc}); it reads the "
               f"table again within a second of the next login")


def _uci_name(spec, what):
    from .. import uci
    if "@" in spec:
        raise CtlError(f"{what}: give the user name alone ({spec.partition('@')[0]!r}): the "
                       f"domain, the digest realm, is option domain of the UCI file")
    if not uci.is_user_name(spec):
        raise CtlError(f"{what}: {spec!r} is not a user name (no ':', '@', spaces or "
                       f"backslashes)")
    return spec


def _uci_password(value, io, what):
    password = read_password(value, io, what)
    # back to the text typed: the UCI file is UTF-8 text, serlite.uci hashes its octets
    return password.encode("latin-1").decode("utf-8", "surrogateescape")


def _uci_change(args, io, what, name, change):
    """Under the accounts' lock: read the UCI file, let ``change(accounts, text, index,
    section)`` edit it (``section`` None: no such user) and say what it did, write the file and
    the server's table; then print that and tell the running server."""
    accounts = UciAccounts(args, io)
    with accounts.locked(what):
        text, sections = accounts.read(what)
        index, section = accounts.find(sections, name)
        done = change(accounts, text, index, section)
        accounts.publish(what)
    io.out(done)
    _tell_server(args, io)
    return 0


def uci_user_add(args, io):
    what = "user add"
    name = _uci_name(args.user, what)
    password = _uci_password(args.password, io, what)

    def add(accounts, text, index, section):
        if section is not None:
            raise CtlError(f"{what}: {name} exists (change its password with 'user passwd', "
                           f"or 'user del' it first)")
        accounts.add(text, name, password, what)
        return f"{what}: {name} added to {accounts.path}"
    return _uci_change(args, io, what, name, add)


def _existing(what, name, accounts, section):
    if section is None:
        raise CtlError(f"{what}: no user {name} in {accounts.path}")


def uci_user_passwd(args, io):
    what = "user passwd"
    name = _uci_name(args.user, what)
    password = _uci_password(args.password, io, what)

    def passwd(accounts, text, index, section):
        _existing(what, name, accounts, section)
        accounts.passwd(text, index, section, password, what)
        return f"{what}: password of {name} changed"
    return _uci_change(args, io, what, name, passwd)


def uci_user_del(args, io):
    what = "user del"
    name = _uci_name(args.user, what)

    def delete(accounts, text, index, section):
        _existing(what, name, accounts, section)
        accounts.delete(text, index, section, what)
        return f"{what}: {name} deleted (its registrations go too)"
    return _uci_change(args, io, what, name, delete)


def uci_user_list(args, io):
    from .. import uci
    accounts = UciAccounts(args, io)
    _, sections = accounts.read("user list")
    names = [name for _, name, _ in uci.user_sections(sections)]
    if not names:
        io.err(f"user list: no accounts in {accounts.path} yet (ser-ctl user add 100 -)")
        return 0
    from .client import Client, CommandFailed, NotRunning
    try:
        with Client(args.socket, timeout=2.0) as client:
            registered = {r["user"]: r["registered"] for r in client.call("accounts")}
    except (NotRunning, CommandFailed, OSError, ValueError, KeyError, TypeError):
        registered = None       # not running, or without auth_db: the names alone
    if registered is None:
        _table(io, ("USER",), [(n,) for n in names])
    else:
        _table(io, ("USER", "REGISTERED"),
               [(n, registered.get(n, 0) or "no") for n in names])
    return 0


# --- a running server, over its control socket -------------------------------------------------

def _call(args, cmd, *params):
    from .client import Client, CommandFailed, NotRunning
    try:
        with Client(args.socket) as client:
            return client.call(cmd, *params)
    except NotRunning as exc:
        raise CtlError(str(exc))
    except CommandFailed as exc:
        raise CtlError(str(exc))      # the server names the command already


def _table(io, header, rows):
    """Rows of strings as aligned columns.  A character that does not print (ESC, BEL: text
    from the network, e.g. a ban's user name, a phone's User-Agent) is shown as '?', so that
    no one can drive the owner's terminal through ser-ctl."""
    rows = [["".join(ch if ch.isprintable() else "?" for ch in str("" if c is None else c))
             for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    io.out("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for row in rows:
        io.out("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def _duration(seconds):
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    return " ".join(parts + [f"{hours}h", f"{minutes}m", f"{secs}s"])


def _remote(cmd, show):
    """A command that asks the server ``cmd`` and prints the answer with ``show`` (or as JSON
    with --json)."""
    def run(args, io):
        params = [p for p in (getattr(args, "action", None), getattr(args, "aor", None))
                  if p is not None]
        result = _call(args, cmd, *params)
        if args.json:
            import json
            io.out(json.dumps(result, indent=2, sort_keys=True))
        else:
            show(result, io)
        return 0
    return run


def _show_ps(rows, io):
    _table(io, ("PID", "NAME", "PROTO", "ADDRESS", "PORT"),
           [(r["pid"], r["name"], r["proto"], r["address"], r["port"]) for r in rows])


def _show_uptime(r, io):
    import time
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started"]))
    io.out(f"up {_duration(r['uptime'])} (since {started})")


def _show_version(r, io):
    io.out(f"serlite {r['version']} ({r['implementation']} {r['python']})")


def _show_stats(r, io):
    io.out(f"uptime {_duration(r['uptime'])}, {r['transactions']} transactions "
           f"({r.get('unanswered', 0)} waiting for an answer), "
           f"{r['registered_contacts']} contacts of {r['registered_aors']} AORs registered")
    for title, table in (("requests received", r["requests_in"]),
                         ("requests sent", r["requests_out"]),
                         ("replies received", r["replies_in"]),
                         ("replies sent", r["replies_out"]),
                         ("reply classes received", r["reply_classes_in"]),
                         ("reply classes sent", r["reply_classes_out"])):
        io.out("")
        io.out(title)
        _table(io, ("  TYPE", "COUNT", "BYTES"),
               [(f"  {k}", n, size) for k, (n, size) in sorted(table.items())])
    if r["counters"]:
        io.out("")
        _table(io, ("COUNTER", "VALUE"), sorted(r["counters"].items()))


def _show_rtpproxy(r, io):
    if r.get("external"):
        io.out(f"external relay {r['external']}: {r['external_calls']} calls sent to it "
               f"(their packets: ask the relay)")
        return
    _relay_totals(r["totals"], io)
    if r["sessions"]:
        _table(io, ("CALLER", "CALLEE", "STATE", "AGE", "FROM CALLER", "FROM CALLEE",
                    "CALL-ID"),
               [(s.get("caller", "?"), s.get("callee", "?"), s.get("state", "?"),
                 _duration(s["age"]), *_media_cells(s)[1:], s["call_id"][:40])
                for s in r["sessions"]])


def _relay_totals(t, io):
    """The relay's totals line, as ``rtpproxy`` and ``calls`` print it."""
    io.out(f"relayed calls: {t['sessions']} (at most {t['max_sessions']}), RTP ports in use: "
           f"{t['ports_used']} of {t['ports']} ({t['port_min']}-{t['port_max']})"
           + (" NEARLY FULL" if t["nearly_full"] else ""))
    io.out(f"relayed: {t['packets']} packets {t['bytes']} B; calls refused (full): "
           f"{t['refused']}, timed out: {t['timeouts']}, one-way audio: {t['one_way']}")


def _media_cells(media):
    """(MEDIA, FROM CALLER, FROM CALLEE) of a call: its relay session's packets and bytes
    from each side, SILENT when nothing came from it lately; direct: not relayed."""
    if not media:
        return ("direct", "-", "-")
    return ("relayed",) + tuple(
        f"{side['packets']} pkts {side['bytes']} B" + (" SILENT" if side.get("silent") else "")
        for side in (media["from_caller"], media["from_callee"]))


def _show_sl_stats(r, io):
    for key, value in r.items():
        io.out(f"{key}: {value}")


def _show_ul(r, io):
    if isinstance(r, dict):
        io.out(f"removed {r['removed']} binding(s)")
        return
    _table(io, ("AOR", "CONTACT", "EXPIRES", "Q", "NAT", "RECEIVED", "USER AGENT"),
           [(b["aor"], b["contact"], b["expires"], "" if b["q"] is None else b["q"],
             "yes" if b["nat"] else "no", b["received"], b["user_agent"]) for b in r])


def _show_registrations(rows, io):
    """uac.reg_dump: the provider accounts serlite registers, their state and last answer."""
    io.out(f"outbound registrations: {len(rows)}")
    if rows:
        _table(io, ("UUID", "ACCOUNT", "STATE", "LAST ANSWER", "EXPIRES IN", "NEXT", "SENT"),
               [(r["l_uuid"], f"{r['r_username']}@{r['r_domain']}", r["state"],
                 f"{r['last_status']} {r['last_reason']}" if r["last_status"] else "-",
                 _duration(r["expires_in"]) if r["expires_in"] else "-",
                 "-" if r["next_in"] is None else _duration(r["next_in"]), r["sent"])
                for r in rows])


def _show_text(r, io):
    io.out(str(r))


def add_server_commands(subparsers):
    def command(name, help_, show, cmd=None):
        p = subparsers.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="print the answer as JSON")
        p.set_defaults(func=_remote(cmd or name, show))
        return p

    command("ps", "the server's receiving sockets and their pids", _show_ps)
    command("uptime", "how long the server has run", _show_uptime)
    command("version", "the running server's version", _show_version)
    command("stats", "message counters and sizes, transactions, registrations", _show_stats)
    command("sl_stats", "replies sent, by code (SER's sl_stats)", _show_sl_stats)
    command("rtpproxy", "the calls the built-in media relay carries, packets each way",
            _show_rtpproxy)
    command("uac", "the provider registrations (Kamailio's uac.reg_dump): state, last "
                   "answer, time left", _show_registrations, cmd="uac.reg_dump")
    command("registrations", "the same as uac", _show_registrations, cmd="uac.reg_dump")
    command("presence", "each account's presence (open, closed, unknown), whether it is on "
                        "the phone, its watchers; the subscriptions", _show_presence)
    command("reload", "re-read the config (as SIGHUP; the old one stays if it fails)",
            _show_text)
    command("ping", "is the server answering?", _show_text)
    ul = command("ul", "the location table: ul show [AOR], ul rm AOR", _show_ul)
    ul.add_argument("action", choices=("show", "rm"))
    ul.add_argument("aor", nargs="?", metavar="AOR")
    calls = subparsers.add_parser("calls", help="the calls going on and the last N calls "
                                                "(acc's call history; N: 20)")
    calls.add_argument("count", nargs="?", type=int, default=20, metavar="N")
    calls.add_argument("--json", action="store_true", help="print the answer as JSON")
    calls.set_defaults(func=_calls)


def _show_presence(r, io):
    _table(io, ("USER", "PRESENCE", "PHONE", "WATCHERS"),
           [(p["user"], p["presence"], {"confirmed": "on the phone", "early": "ringing"}.get(
               p["dialog"], p["dialog"] or "-"), p["watchers"]) for p in r["presentities"]])
    io.out(f"subscriptions: {r['subscriptions']}  publications: {r['publications']}  "
           f"NOTIFYs sent: {r['notifies']}")


def _calls(args, io):
    result = _call(args, "calls", max(0, args.count))
    if args.json:
        import json
        io.out(json.dumps(result, indent=2, sort_keys=True))
        return 0
    import time
    io.out(f"active calls: {len(result['active'])}")
    relay = result.get("relay")
    if result["active"]:
        media = ("MEDIA", "FROM CALLER", "FROM CALLEE") if relay else ()
        _table(io, ("CALLER", "CALLEE", "STATE", "SINCE") + media,
               [(c["caller"], c["callee"], c["state"], _duration(c["since"]))
                + (_media_cells(c.get("media")) if relay else ()) for c in result["active"]])
    if relay:
        _relay_totals(relay, io)
    io.out("")
    if not result.get("history_on", True):
        io.out("no call history (modparam(\"acc\", \"history_file\", ...) is not set)")
        return 0
    io.out(f"last calls: {len(result['history'])}")
    if result["history"]:
        _table(io, ("START", "CALLER", "CALLEE", "RESULT", "DURATION", "CODE"),
               [(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c["start"])), c["caller"],
                 c["callee"], c["result"].upper() if c["result"] == "missed" else c["result"],
                 _duration(c["duration"]) if c["answer"] is not None else "-",
                 f"{c['code']} {c['reason']}") for c in result["history"]])
    return 0


# --- bans (secfilter) ----------------------------------------------------------------------------

def add_ban_commands(subparsers):
    p = subparsers.add_parser("ban", help="secfilter's bans: ban list | ban add ADDRESS "
                                          "[SECONDS] | ban del ADDRESS")
    sub = p.add_subparsers(dest="ban_action", metavar="ACTION")
    sub.required = True
    a = sub.add_parser("list", help="the banned addresses, the guessed accounts, the trusted "
                                    "networks")
    a.add_argument("--json", action="store_true", help="print the answer as JSON")
    a.set_defaults(func=_ban_list)
    a = sub.add_parser("add", help="ban an address by hand: ban add 203.0.113.5 [SECONDS]")
    a.add_argument("address")
    a.add_argument("seconds", nargs="?", type=int, default=None)
    a.add_argument("--json", action="store_true", help="print the answer as JSON")
    a.set_defaults(func=_ban_add)
    a = sub.add_parser("del", help="lift a ban (and forget the address's offences)")
    a.add_argument("address")
    a.add_argument("--json", action="store_true", help="print the answer as JSON")
    a.set_defaults(func=_ban_del)


def _json_out(args, io, result):
    if args.json:
        import json
        io.out(json.dumps(result, indent=2, sort_keys=True))
        return True
    return False


def _ban_list(args, io):
    result = _call(args, "bans")
    if _json_out(args, io, result):
        return 0
    import time
    io.out(f"banned addresses: {len(result['bans'])}")
    if result["bans"]:
        _table(io, ("ADDRESS", "REASON", "FAILURES", "USER", "OFFENCE", "SINCE", "TIME LEFT"),
               [(b["address"], b["reason"], b["failures"], b["user"] or "-", b["offences"],
                 time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(b["since"])),
                 _duration(b["expires_in"])) for b in result["bans"]])
    if result["alarms"]:
        io.out("")
        io.out("accounts being guessed from several addresses (never locked):")
        _table(io, ("ACCOUNT", "ADDRESSES", "FAILURES", "SINCE", "LAST"),
               [(a["account"], a["sources"], a["failures"],
                 time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["since"])),
                 time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["last"])))
                for a in result["alarms"]])
    io.out("")
    io.out("trusted (never banned): " + (", ".join(result["trusted"]) or "none"))
    return 0


def _ban_add(args, io):
    params = [args.address] + ([args.seconds] if args.seconds is not None else [])
    result = _call(args, "ban_add", *params)
    if not _json_out(args, io, result):
        io.out(f"banned {result['address']} for {_duration(result['expires_in'])}")
    return 0


def _ban_del(args, io):
    result = _call(args, "ban_del", args.address)
    if not _json_out(args, io, result):
        io.out(f"unbanned {args.address}" if result["removed"] else
               f"{args.address} was not banned")
    return 0


# Each adds its sub-commands to the top-level parser.
COMMAND_GROUPS = (add_user_commands, add_server_commands, add_ban_commands)


def build_parser(environ=None):
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="ser-ctl", description="Manage serlite (SER's serctl).",
        epilog="The accounts are the config user sections of -c, else $SER_UCI, else "
               + DEFAULT_UCI + "; the server's copy goes to $SER_RUN_DIR (default "
               "/var/etc/ser).  -d (or $SER_DB) edits a dbtext table instead.")
    parser.add_argument("-c", "--uci", default=environ.get("SER_UCI") or DEFAULT_UCI,
                        metavar="FILE", help="the UCI file whose config user sections are the "
                                             "accounts (default: $SER_UCI, else %(default)s)")
    parser.add_argument("-d", "--db", default=environ.get("SER_DB") or None,
                        metavar="DB_URL", help="experts: a dbtext:///dir subscriber table of "
                                               "your own instead of the UCI accounts")
    parser.add_argument("-t", "--table", default=DEFAULT_TABLE,
                        help="subscriber table name (default: %(default)s)")
    parser.add_argument("-s", "--socket", default=None, metavar="PATH",
                        help="the server's control socket (default: $SER_UNIX_SOCK, else "
                             "/var/run/ser/ser.sock)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in COMMAND_GROUPS:
        add(sub)
    return parser


def main(argv=None, *, stdin=None, stdout=None, stderr=None, environ=None):
    """Run one command; returns the exit status (argparse exits 2 itself on a usage error)."""
    io = IO(stdin, stdout, stderr)
    environ = os.environ if environ is None else environ
    args = build_parser(environ).parse_args(argv)
    from .. import uci
    args.run_dir = environ.get("SER_RUN_DIR") or uci.RUN_DIR
    uci_bin = environ.get("SER_UCI_BIN")
    if uci_bin is None:
        import shutil
        uci_bin = shutil.which("uci", path=environ.get("PATH"))
    args.uci_bin = uci_bin or None
    try:
        return args.func(args, io)
    except CtlError as exc:
        io.err(f"ser-ctl: {exc}")
        return 1
