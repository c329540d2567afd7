"""auth_db: ``www_authorize(realm, table)`` and ``proxy_authorize(realm, table)`` against user
accounts in a dbtext table (SER's auth_db with the dbtext driver, as SER and Milkfish ran on
routers).

``modparam("auth_db", "db_url", "dbtext:///etc/ser/db")`` names the directory; the table is the
file of that name in it (``www_authorize("", "subscriber")`` -> ``/etc/ser/db/subscriber``),
in the format of ``serlite/store/dbtext.py``.  On a router the table is written from the UCI
``config user`` sections (``serlite.uci``, ``ser-ctl user ...``).

A changed table takes effect without a restart or reload, and without touching a call: tables
are read at start, and again when their file changed (its mtime, size or inode), which is
looked at on use, at most once a second (no timer: an idle server does not wake up for it), or
at once when ``ser-ctl`` asks over the control socket (``auth_reload``).  Each change is
logged (``auth_db: account 101 added`` / ``removed`` / ``password changed``); a removed
account's bindings are dropped from usrloc, so nobody calls a phone that can no longer log in.

The digest checks themselves are the auth module's (``Auth.authorize``); this module finds the
HA1 of a user:

* the digest username ``alice`` is looked up as user ``alice``; ``alice@home`` as user
  ``alice`` of domain ``home`` (SER's ha1b case);
* ``use_domain=0`` (SER's default): the user name alone selects the account (an account whose
  domain is the realm is preferred when there are several); ``use_domain=1``: the account's
  domain must be the realm (or the username's domain part);
* HA1 is the ``ha1`` column (``ha1b`` for ``user@domain`` usernames); when that is empty, or
  with ``calculate_ha1=yes``, it is computed from a clear ``password`` column.
"""

from __future__ import annotations

import os

from .. import log
from ..sip import digest
from ..store import dbtext
from .auth import PROXY, WWW, split_username
from .export import REQUEST_ROUTE, Function, Module, ModuleSpec, Param

MAX_TABLES = 64             # tables kept in memory when their names come from pseudo-variables
CHECK_INTERVAL = 1.0        # seconds between two looks at a table file's mtime (on use)


def _fix_authorize(module, args, script):
    realm = "" if args[0] is None else str(args[0])
    if any(c in realm for c in '\r\n"\\'):
        raise ValueError(f"bad realm {realm!r}")
    table = str(args[1])
    if not table or "/" in table or table in (".", ".."):
        raise ValueError(f"bad table name {table!r}")
    if script is not None:
        module.want(table)
    return (realm, table)


class Accounts:
    """One subscriber table in memory: lookups by user name (and domain)."""

    def __init__(self, table=None, stamp=None):
        self.by_user = {}           # user -> [record dict, ...] in file order
        self.has_domain = False
        self.has_password = False
        self.stamp = stamp          # the file's (mtime_ns, size, inode) when read; None: none
        self.checked = None         # when the file was last looked at (wall clock)
        if table is None:
            return
        self.has_domain = table.column("domain") is not None
        self.has_password = table.column("password") is not None
        for row in table.records():
            user = row.get("username")
            if user:
                self.by_user.setdefault(user, []).append(row)

    def __len__(self):
        return sum(len(v) for v in self.by_user.values())

    def credentials(self):
        """{(user, domain): (ha1, ha1b, password)}: what tells two versions of a table apart."""
        return {(user, row.get("domain")): (row.get("ha1"), row.get("ha1b"), row.get("password"))
                for user, rows in self.by_user.items() for row in rows}

    def find(self, user, domain, use_domain):
        """The record of ``user``: of ``domain`` when ``use_domain`` (domains compare without
        case), else the first, preferring one of ``domain``."""
        rows = self.by_user.get(user)
        if not rows:
            return None
        if self.has_domain:
            domain = domain.lower()
            for row in rows:
                if (row.get("domain") or "").lower() == domain:
                    return row
        if use_domain and self.has_domain:
            return None
        return rows[0]


class AuthDb(Module):
    name = "auth_db"

    def __init__(self, params):
        super().__init__(params)
        self.dir = dbtext.parse_db_url(params["db_url"])    # ValueError: the compiler says so
        self.tables = {}            # name -> Accounts
        self.core = None

    def want(self, name):
        """A table the script names (fixup time): read at start.  Names only known at run time
        (pseudo-variables) are read on first use."""
        if self.core is None:
            self.tables.setdefault(name, Accounts())

    def start(self, core, previous=None):
        super().start(core, previous)
        for name in list(self.tables):
            old = previous.tables.get(name) if previous is not None and \
                previous.params["db_url"] == self.params["db_url"] else None
            self.tables[name] = self.load(name)
            if old is not None:             # SIGHUP: say what changed, as a live change does
                self._changed(name, old, self.tables[name])

    def _path(self, name):
        return dbtext.table_path(self.params["db_url"], name)

    def load(self, name):
        """Read table ``name``; every problem is logged, none stops the start: a table that
        cannot be read has no accounts, so every authorization against it fails."""
        path = self._path(name)
        stamp = _stamp(path)
        accounts = self._read(name, path)
        accounts.stamp = stamp
        if self.core is not None:
            accounts.checked = self.core.wall()
        return accounts

    def _read(self, name, path):
        try:
            table, warnings = dbtext.read_table(path)
        except FileNotFoundError:
            log.warn(f"auth_db: no table {path}: nobody can be authorized against {name!r} "
                     f"(add accounts with: ser-ctl user add NAME PASSWORD; the init script "
                     f"writes this table from /etc/config/ser)")
            return Accounts()
        except dbtext.DbTextError as exc:
            log.error(f"auth_db: {exc}; nobody can be authorized against {name!r}")
            return Accounts()
        except (OSError, UnicodeError) as exc:
            log.error(f"auth_db: cannot read {path}: {getattr(exc, 'strerror', None) or exc}; "
                      f"nobody can be authorized against {name!r}")
            return Accounts()
        for w in warnings:
            log.warn(f"auth_db: {w}")
        missing = [c for c in ("username",) if table.column(c) is None]
        if table.column("ha1") is None and table.column("password") is None:
            missing.append("ha1 or password")
        if missing:
            log.error(f"auth_db: {path}: no column {', '.join(missing)}; nobody can be "
                      f"authorized against {name!r}")
            return Accounts()
        accounts = Accounts(table)
        log.info(f"auth_db: table {name}: {len(accounts)} accounts")
        return accounts

    # -- changes of a table --------------------------------------------------------------------
    def fresh(self, name):
        """The accounts of table ``name``, read again if its file changed since (looked at
        once a second at most)."""
        accounts = self.tables[name]
        now = self.core.wall()      # a clock set back only makes the next look come sooner
        if accounts.checked is not None and 0 <= now - accounts.checked < CHECK_INTERVAL:
            return accounts
        accounts.checked = now
        if _stamp(self._path(name)) == accounts.stamp:
            return accounts
        return self.reload(name)[0]

    def reload(self, name):
        """Read table ``name`` again now; returns (Accounts, changes) with changes
        {"added": [...], "removed": [...], "changed": [...]} (user names)."""
        old = self.tables.get(name) or Accounts()
        new = self.load(name)
        self.tables[name] = new
        return new, self._changed(name, old, new)

    def reload_all(self):
        """The control socket's ``auth_reload``: every table read again; {table: changes}."""
        return {name: self.reload(name)[1] for name in list(self.tables)}

    def _changed(self, name, old, new):
        before, after = old.credentials(), new.credentials()
        changes = {"added": sorted({u for u, d in after.keys() - before.keys()}),
                   "removed": sorted({u for u, d in before.keys() - after.keys()}),
                   "changed": sorted({u for (u, d), c in after.items()
                                      if (u, d) in before and before[u, d] != c})}
        gone = [u for u in changes["removed"] if u not in new.by_user]
        dropped = self._drop_bindings(gone)
        for user in changes["added"]:
            if user not in changes["removed"]:
                log.notice(f"auth_db: account {_show(user)} added (table {name})")
        for user in changes["removed"]:
            if user in gone:
                n = dropped.get(user, 0)
                log.notice(f"auth_db: account {_show(user)} removed (table {name}"
                           + (f", {n} binding{'s' if n != 1 else ''} dropped)" if n else ")"))
        for user in sorted(set(changes["changed"]) | (set(changes["added"])
                                                      & set(changes["removed"]))):
            log.notice(f"auth_db: account {_show(user)} password changed (table {name})")
        return changes

    def _drop_bindings(self, users):
        """Remove the registrations of accounts that are gone: {user: bindings removed}."""
        usrloc = self.core.module("usrloc") if users and self.core is not None else None
        if usrloc is None:
            return {}
        users = set(users)
        now = self.core.wall()
        dropped = {}
        for store in usrloc.tables.values():
            for aor in [a for a in store.aors() if a.partition("@")[0] in users]:
                try:
                    n = store.delete_aor(aor, now)
                except OSError as exc:
                    log.error(f"auth_db: cannot drop the bindings of {aor!r}: {exc}")
                    continue
                user = aor.partition("@")[0]
                dropped[user] = dropped.get(user, 0) + n
        return dropped

    # -- the script functions -----------------------------------------------------------------
    def www_authorize(self, ctx, realm, table):
        return self.core.module("auth").authorize(ctx, realm, WWW, self._lookup(table))

    def proxy_authorize(self, ctx, realm, table):
        return self.core.module("auth").authorize(ctx, realm, PROXY, self._lookup(table))

    def _lookup(self, table):
        if table in self.tables:
            accounts = self.fresh(table)
        else:                           # a dynamic table name (not known at start-up)
            accounts = self.load(table)
            if len(self.tables) < MAX_TABLES:   # names from the network must not fill memory
                self.tables[table] = accounts
        use_domain = self.params["use_domain"]
        calculate = self.params["calculate_ha1"]

        def lookup(username, realm):
            user, domain = split_username(username)
            row = accounts.find(user, domain or realm, use_domain)
            if row is None:
                return None
            column = "ha1b" if domain is not None else "ha1"
            ha1 = "" if calculate else (row.get(column) or "")
            if not ha1:
                password = row.get("password")
                if password is None:
                    return None
                ha1 = digest.ha1(username, realm, password)
            elif not digest.is_lhex(ha1, 32):
                log.limited(("auth_db-ha1", table, user), log.WARN,
                            f"auth_db: table {table}: {column} of {user!r} is not 32 hex "
                            f"digits")
                return None
            matched = domain if domain is not None else (realm if use_domain else None)
            return ha1, matched
        return lookup


def _stamp(path):
    """What tells a rewritten file from the one read: (mtime_ns, size, inode); None if absent.
    ser-ctl and serlite.uci replace the file by a rename, so the inode changes even within one
    mtime tick."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _show(user):
    """A user name from the table (octets as latin-1) for the log, printable."""
    return repr(user) if not user.isprintable() or " " in user else user


EXPORTS = ModuleSpec(
    name="auth_db",
    doc="Digest logins against the accounts table (dbtext `subscriber`).",
    factory=AuthDb,
    functions=(
        Function("www_authorize", "www_authorize", (2,), REQUEST_ROUTE, _fix_authorize,
                 "true if the Authorization credentials are right (realm \"\": the To/From "
                 "host)", dynamic=True),
        Function("proxy_authorize", "proxy_authorize", (2,), REQUEST_ROUTE, _fix_authorize,
                 "true if the Proxy-Authorization credentials are right", dynamic=True),
    ),
    params={
        "db_url": Param(str, "dbtext:///etc/ser/db", "the directory of the tables"),
        "use_domain": Param(int, 0, "1: the account's domain must be the realm",
                            min=0, max=1),
        "calculate_ha1": Param(int, 0, "1: compute HA1 from the clear password column",
                               min=0, max=1),
    },
    depends=("auth",),
)
