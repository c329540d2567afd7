"""auth_db: ``www_authorize(realm, table)`` and ``proxy_authorize(realm, table)`` against user
accounts in a dbtext table (SER's auth_db with the dbtext driver, as SER and Milkfish ran on
routers).

``modparam("auth_db", "db_url", "dbtext:///etc/ser/db")`` names the directory; the table is the
file of that name in it (``www_authorize("", "subscriber")`` -> ``/etc/ser/db/subscriber``),
in the format of ``serlite/store/dbtext.py``, managed with ``ser-ctl user add|del|list``.
Tables are read at start (and so again on SIGHUP, which builds new module instances): a table
file changed by ``ser-ctl`` is seen after ``kill -HUP``.

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

from .. import log
from ..sip import digest
from ..store import dbtext
from .auth import PROXY, WWW, split_username
from .export import REQUEST_ROUTE, Function, Module, ModuleSpec, Param

MAX_TABLES = 64             # tables kept in memory when their names come from pseudo-variables


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

    def __init__(self, table=None):
        self.by_user = {}           # user -> [record dict, ...] in file order
        self.has_domain = False
        self.has_password = False
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
            self.tables[name] = self.load(name)

    def load(self, name):
        """Read table ``name``; every problem is logged, none stops the start: a table that
        cannot be read has no accounts, so every authorization against it fails."""
        path = dbtext.table_path(self.params["db_url"], name)
        try:
            table, warnings = dbtext.read_table(path)
        except FileNotFoundError:
            log.warn(f"auth_db: no table {path}: nobody can be authorized against {name!r} "
                     f"(add users with: ser-ctl -d {self.params['db_url']} user add "
                     f"USER@DOMAIN PASSWORD)")
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

    # -- the script functions -----------------------------------------------------------------
    def www_authorize(self, ctx, realm, table):
        return self.core.module("auth").authorize(ctx, realm, WWW, self._lookup(table))

    def proxy_authorize(self, ctx, realm, table):
        return self.core.module("auth").authorize(ctx, realm, PROXY, self._lookup(table))

    def _lookup(self, table):
        accounts = self.tables.get(table)
        if accounts is None:            # a dynamic table name (not known at start-up)
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
        "use_domain": Param(int, 0, "1: the account's domain must be the realm"),
        "calculate_ha1": Param(int, 0, "1: compute HA1 from the clear password column"),
    },
    depends=("auth",),
)
