"""ser-ctl user add / passwd / del / list: the subscriber table it writes (atomically, 0600, HA1
only, never a clear password), what it keeps, and its one-line errors with exit status 1."""

import hashlib
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from serlite.control import ctl
from serlite.store import dbtext

ROOT = Path(__file__).resolve().parents[2]


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


class Run:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


def run(db, *argv, stdin="", environ=None):
    out, err = io.StringIO(), io.StringIO()
    args = (["-d", f"dbtext://{db}"] if db is not None else []) + list(argv)
    try:
        code = ctl.main(args, stdin=io.StringIO(stdin), stdout=out, stderr=err,
                        environ=environ or {})
    except SystemExit as e:             # argparse usage errors
        code = e.code
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture
def db(tmp_path):
    return tmp_path / "db"


def table_text(db):
    return (db / "subscriber").read_text()


def test_add_creates_the_table_with_header_ha1_and_ha1b(db):
    r = run(db, "user", "add", "alice@home", "secret")
    assert r.code == 0 and r.err == ""
    assert "alice@home added" in r.out
    assert table_text(db) == ("username(str) domain(str) ha1(str) ha1b(str)\n"
                              f"alice:home:{md5('alice:home:secret')}:"
                              f"{md5('alice@home:home:secret')}\n")
    assert "secret" not in table_text(db)
    assert stat.S_IMODE((db / "subscriber").stat().st_mode) == 0o600
    assert stat.S_IMODE(db.stat().st_mode) == 0o700
    assert sorted(os.listdir(db)) == ["subscriber"]        # no temporary file left


def test_realm_is_the_domain_lower_cased(db):
    run(db, "user", "add", "alice@127.0.0.1", "secret")
    run(db, "user", "add", "Bob@Home.LAN", "pw")
    records = dbtext.read_table(db / "subscriber")[0].records()
    assert records[0]["ha1"] == md5("alice:127.0.0.1:secret")
    assert records[1]["username"] == "Bob" and records[1]["domain"] == "home.lan"
    assert records[1]["ha1"] == md5("Bob:home.lan:pw")


def test_password_from_stdin(db):
    assert run(db, "user", "add", "alice@home", "-", stdin="s3cr3t: with colon\n").code == 0
    assert dbtext.read_table(db / "subscriber")[0].records()[0]["ha1"] == \
        md5("alice:home:s3cr3t: with colon")


def test_utf8_names_are_stored_as_their_octets(db):
    run(db, "user", "add", "jörg@home", "pw")
    raw = (db / "subscriber").read_bytes()
    assert "jörg".encode() in raw
    assert md5("jörg:home:pw").encode() in raw      # HA1 of the UTF-8 octets, as phones do
    assert "jörg" in run(db, "user", "list").out


def test_add_existing_user_is_an_error(db):
    run(db, "user", "add", "alice@home", "secret")
    before = table_text(db)
    r = run(db, "user", "add", "alice@HOME", "other")
    assert r.code == 1
    assert r.err == ("ser-ctl: user add: alice@HOME exists (change its password with "
                     "'user passwd', or 'user del' it first)\n")
    assert table_text(db) == before
    assert run(db, "user", "add", "alice@work", "x").code == 0     # another domain is fine


@pytest.mark.parametrize("argv, message", [
    (["user", "add", "alice", "pw"], "user add: 'alice' is not USER@DOMAIN"),
    (["user", "add", "@home", "pw"], "user add: '@home' is not USER@DOMAIN"),
    (["user", "add", "alice@", "pw"], "user add: domain '' is not a host name or address"),
    (["user", "add", "a@b@c", "pw"], "user add: 'a@b@c' is not USER@DOMAIN"),
    (["user", "add", "al ice@home", "pw"], "holds white space or control characters"),
    (["user", "add", "alice@ho me", "pw"], "domain 'ho me' is not a host name"),
    (["user", "add", "alice@home", ""], "user add: empty password"),
    (["user", "del", "alice@home"], "user del: no user alice@home"),
    (["user", "passwd", "alice@home", "x"], "user passwd: no user alice@home"),
])
def test_bad_input_one_line_exit_1(db, argv, message):
    r = run(db, *argv)
    assert r.code == 1
    assert r.err.count("\n") == 1 and r.err.startswith("ser-ctl: ")
    assert message in r.err
    assert r.out == ""


def test_empty_password_on_stdin(db):
    r = run(db, "user", "add", "alice@home", "-", stdin="\n")
    assert r.code == 1 and "empty password" in r.err


def test_usage_errors_exit_2(db):
    assert run(db, "user").code == 2
    assert run(db, "user", "add", "alice@home").code == 2
    assert run(db, "nonsense").code == 2


def test_del(db):
    run(db, "user", "add", "alice@home", "a")
    run(db, "user", "add", "bob@home", "b")
    r = run(db, "user", "del", "alice@home")
    assert r.code == 0 and "alice@home deleted" in r.out
    assert [rec["username"] for rec in dbtext.read_table(db / "subscriber")[0].records()] == \
        ["bob"]
    assert run(db, "user", "del", "alice@home").code == 1
    assert stat.S_IMODE((db / "subscriber").stat().st_mode) == 0o600


def test_passwd(db):
    run(db, "user", "add", "alice@home", "old")
    r = run(db, "user", "passwd", "alice@home", "-", stdin="new\n")
    assert r.code == 0
    rec = dbtext.read_table(db / "subscriber")[0].records()[0]
    assert rec["ha1"] == md5("alice:home:new") and rec["ha1b"] == md5("alice@home:home:new")


def test_list_never_shows_hashes(db):
    run(db, "user", "add", "alice@home", "a")
    run(db, "user", "add", "bob@127.0.0.1", "b")
    r = run(db, "user", "list")
    assert r.code == 0
    assert r.out.splitlines() == ["USER   DOMAIN     CREDENTIALS",
                                  "alice  home       ha1+ha1b",
                                  "bob    127.0.0.1  ha1+ha1b"]
    assert md5("alice:home:a") not in r.out


def test_list_without_table(db):
    r = run(db, "user", "list")
    assert r.code == 0 and r.out == "" and "does not exist" in r.err


def test_an_existing_kamailio_table_keeps_its_columns_and_bad_lines(db):
    db.mkdir()
    (db / "subscriber").write_text(
        "id(int,auto) username(string) domain(string) password(string) ha1(string) "
        "ha1b(string) email_address(str,null)\n"
        "1:carol:home:clear-pw:::carol@example.com\n"
        "this line is broken\n"
        "7:dave:home::aa:bb:\n")
    r = run(db, "user", "add", "alice@home", "secret")
    assert r.code == 0
    assert "subscriber:3: 7 fields expected, found 1" in r.err and "kept as it is" in r.err
    lines = table_text(db).splitlines()
    assert lines[:4] == [
        "id(int,auto) username(string) domain(string) password(string) ha1(string) "
        "ha1b(string) email_address(str,null)",
        "1:carol:home:clear-pw:::carol@example.com",
        "this line is broken",
        "7:dave:home::aa:bb:"]
    assert lines[4] == (f"8:alice:home::{md5('alice:home:secret')}:"
                        f"{md5('alice@home:home:secret')}:")
    # passwd replaces a clear password by HA1: no clear text is left behind
    assert run(db, "user", "passwd", "carol@home", "new").code == 0
    assert "clear-pw" not in table_text(db)
    assert "1:carol:home::" in table_text(db)
    r = run(db, "user", "list")
    assert "carol  home    ha1+ha1b" in r.out


def test_list_flags_clear_passwords(db):
    db.mkdir()
    (db / "subscriber").write_text("username(str) domain(str) password(str) ha1(str)\n"
                                   "carol:home:pw:\nerin:home::\n")
    out = run(db, "user", "list").out
    assert "carol  home    password (clear text!)" in out
    assert "erin   home    none (cannot log in)" in out


def test_a_table_without_ha1_column_is_refused(db):
    db.mkdir()
    (db / "subscriber").write_text("username(str) domain(str) password(str)\n")
    r = run(db, "user", "add", "alice@home", "x")
    assert r.code == 1 and "the table has no ha1 column" in r.err


def test_a_bad_header_is_not_overwritten(db):
    db.mkdir()
    (db / "subscriber").write_text("garbage header\n")
    r = run(db, "user", "add", "alice@home", "x")
    assert r.code == 1 and "bad column definition" in r.err
    assert table_text(db) == "garbage header\n"


def test_db_from_environment_and_default(tmp_path):
    env_db = tmp_path / "envdb"
    r = run(None, "user", "add", "alice@home", "x", environ={"SER_DB": f"dbtext://{env_db}"})
    assert r.code == 0 and (env_db / "subscriber").exists()
    parser = ctl.build_parser({})
    assert parser.parse_args(["user", "list"]).db == "dbtext:///etc/ser/db"
    assert parser.parse_args(["-d", "dbtext:///x", "user", "list"]).db == "dbtext:///x"


def test_other_table_name(db):
    assert run(db, "-t", "users", "user", "add", "alice@home", "x").code == 0
    assert (db / "users").exists()


def test_python_m_serlite_ctl(tmp_path):
    db = tmp_path / "db"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "serlite.ctl", "-d", f"dbtext://{db}", "user",
                          "add", "alice@127.0.0.1", "-"], input="secret\n", cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([sys.executable, "-m", "serlite.ctl", "-d", f"dbtext://{db}", "user",
                          "add", "alice@127.0.0.1", "again"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "exists" in out.stderr
