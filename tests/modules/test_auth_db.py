"""auth_db's accounts changing under a running server: a rewritten table is read again on use
(its mtime, size or inode; at most once a second, no timer), what changed is logged, a removed
account's bindings leave usrloc, and ``reload_all`` (the control socket's ``auth_reload``) reads
at once.  The modules run on test_auth's fake core, its clock moved by hand."""

import os

import pytest

from serlite import log
from serlite.modules import auth_db as auth_db_mod
from serlite.store.location import Binding, LocationStore

from test_auth import HEADER, Server, account     # tests/modules is no package


class FakeUsrloc:
    def __init__(self):
        self.tables = {"location": LocationStore(None, 0)}


@pytest.fixture
def notices(monkeypatch):
    lines = []
    monkeypatch.setattr(log, "notice", lines.append)
    return lines


def rewrite(tmp_path, text):
    """Replace the table as ser-ctl and serlite.uci do: a new file renamed over the old."""
    tmp = tmp_path / "db" / ".subscriber.tmp"
    tmp.write_text(text)
    os.replace(tmp, tmp_path / "db" / "subscriber")


def known(srv, user):
    return srv.db._lookup("subscriber")(user, "home") is not None


def test_a_rewritten_table_is_read_on_use_at_most_once_a_second(tmp_path, notices,
                                                                   monkeypatch):
    srv = Server(tmp_path, HEADER + account("alice", "home", "secret"))
    looks = []
    stamp = auth_db_mod._stamp
    monkeypatch.setattr(auth_db_mod, "_stamp", lambda path: looks.append(path) or stamp(path))
    rewrite(tmp_path, HEADER + account("alice", "home", "secret") + account("bob", "home", "pw"))
    for _ in range(50):                 # within the second: the file is not even looked at
        assert not known(srv, "bob")
    assert looks == []
    srv.core.now += 1.0
    assert known(srv, "bob") and known(srv, "alice")
    assert len(looks) == 2              # its stamp, then the one of what was read
    assert notices == ["auth_db: account bob added (table subscriber)"]
    srv.core.now += 5.0                 # unchanged: one stat, nothing read, nothing logged
    assert known(srv, "bob") and len(looks) == 3 and len(notices) == 1


def test_changes_are_logged_and_a_removed_accounts_bindings_dropped(tmp_path, notices):
    srv = Server(tmp_path, HEADER + account("alice", "home", "secret")
                 + account("bob", "home", "pw") + account("carol", "home", "c"))
    usrloc = srv.core.modules["usrloc"] = FakeUsrloc()
    store = usrloc.tables["location"]
    now = srv.core.wall()
    for aor, port in (("bob", 1), ("bob", 2), ("carol", 3)):
        store.save(aor, now, put=[Binding(aor, f"sip:{aor}@10.0.0.{port}", now + 600)])
    rewrite(tmp_path, HEADER + account("alice", "home", "new") + account("carol", "home", "c")
            + account("dave", "home", "d"))
    changes = srv.db.reload_all()
    assert changes == {"subscriber": {"added": ["dave"], "removed": ["bob"],
                                      "changed": ["alice"]}}
    assert sorted(notices) == ["auth_db: account alice password changed (table subscriber)",
                               "auth_db: account bob removed (table subscriber, 2 bindings "
                               "dropped)",
                               "auth_db: account dave added (table subscriber)"]
    assert sorted(store.aors()) == ["carol"]
    assert not known(srv, "bob") and known(srv, "dave")


def test_a_table_that_goes_away_logs_out_everyone(tmp_path, notices, monkeypatch):
    monkeypatch.setattr(log, "warn", lambda msg: None)
    srv = Server(tmp_path, HEADER + account("alice", "home", "secret"))
    os.unlink(tmp_path / "db" / "subscriber")
    srv.core.now += 1.0
    assert not known(srv, "alice")
    assert notices == ["auth_db: account alice removed (table subscriber)"]
