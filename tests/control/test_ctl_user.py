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


def test_db_from_environment_else_the_uci_accounts(tmp_path):
    env_db = tmp_path / "envdb"
    r = run(None, "user", "add", "alice@home", "x", environ={"SER_DB": f"dbtext://{env_db}"})
    assert r.code == 0 and (env_db / "subscriber").exists()
    parser = ctl.build_parser({})
    args = parser.parse_args(["user", "list"])
    assert args.db is None and args.uci == "/etc/config/ser"       # the UCI accounts
    assert parser.parse_args(["-d", "dbtext:///x", "user", "list"]).db == "dbtext:///x"
    assert ctl.build_parser({"SER_UCI": "/x/ser"}).parse_args(["user", "list"]).uci == "/x/ser"


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


# --- the UCI accounts (the default) ----------------------------------------------------------

UCI_TEXT = """# the house's SIP server
config ser 'main'
	option enabled '1'
	option domain 'home.lan'

# the first phone
config user
	option name '100'
	option password 'old'

config other 'x'
	option keep 'me'
"""


@pytest.fixture
def house(tmp_path):
    """A UCI file, the run directory for the server's table, no server, no uci command."""
    path = tmp_path / "config" / "ser"
    path.parent.mkdir()
    path.write_text(UCI_TEXT)
    path.chmod(0o644)
    env = {"SER_UCI": str(path), "SER_RUN_DIR": str(tmp_path / "run"), "SER_UCI_BIN": ""}
    return path, env, tmp_path / "run" / "db" / "subscriber"


def uci_run(env, *argv, stdin=""):
    return run(None, *argv, stdin=stdin, environ=env)


def table_rows(table):
    return [(r["username"], r["domain"], r["ha1"], r["ha1b"])
            for r in dbtext.read_table(table)[0].records()]


def test_uci_add_appends_a_section_and_writes_the_servers_table(house):
    path, env, table = house
    r = uci_run(env, "user", "add", "101", "-", stdin="it's #1\n")
    assert r.code == 0, r.err
    assert "101 added" in r.out and "not running" in r.out
    text = path.read_text()
    assert text.startswith(UCI_TEXT), "comments and the other sections are kept as they were"
    assert text[len(UCI_TEXT):] == "\nconfig user\n\toption name '101'\n" \
                                   "\toption password 'it'\\''s #1'\n"
    from serlite import uci
    assert [(n, p) for _, n, p in uci.user_sections(uci.parse(text))] == [
        ("100", "old"), ("101", "it's #1")]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the file holds passwords"
    # the server's copy: HA1 only, realm = option domain, 0600
    assert table_rows(table) == [
        ("100", "home.lan", md5("100:home.lan:old"), md5("100@home.lan:home.lan:old")),
        ("101", "home.lan", md5("101:home.lan:it's #1"), md5("101@home.lan:home.lan:it's #1"))]
    assert stat.S_IMODE(table.stat().st_mode) == 0o600
    assert "old" not in table.read_text() and "#1" not in table.read_text()


def test_uci_passwd_and_del_edit_only_that_section(house):
    path, env, table = house
    assert uci_run(env, "user", "add", "101", "pw").code == 0
    r = uci_run(env, "user", "passwd", "100", "new")
    assert r.code == 0 and "password of 100 changed" in r.out
    assert "\toption password 'new'\n" in path.read_text()
    assert "'old'" not in path.read_text()
    assert table_rows(table)[0][2] == md5("100:home.lan:new")
    r = uci_run(env, "user", "del", "100")
    assert r.code == 0 and "100 deleted" in r.out
    text = path.read_text()
    assert "'100'" not in text and "# the first phone" in text and "option keep 'me'" in text
    assert [row[0] for row in table_rows(table)] == ["101"]
    r = uci_run(env, "user", "list")
    assert r.code == 0 and r.out.split() == ["USER", "101"]
    assert "pw" not in r.out


@pytest.mark.parametrize("argv, message", [
    (("user", "add", "100", "x"), "user add: 100 exists"),
    (("user", "del", "999"), "user del: no user 999 in"),
    (("user", "passwd", "999", "x"), "user passwd: no user 999 in"),
    (("user", "add", "1@home", "x"), "give the user name alone ('1')"),
    (("user", "add", "a:b", "x"), "is not a user name"),
    (("user", "add", "101", ""), "empty password"),
])
def test_uci_errors_one_line_exit_1(house, argv, message):
    path, env, _ = house
    r = uci_run(env, *argv)
    assert r.code == 1 and message in r.err and r.err.count("\n") == 1, r.err
    assert path.read_text() == UCI_TEXT


def test_uci_user_db_means_the_experts_table(house):
    path, env, _ = house
    path.write_text(UCI_TEXT.replace("option enabled '1'",
                                     "option user_db 'dbtext:///etc/ser/db'"))
    r = uci_run(env, "user", "add", "101", "x")
    assert r.code == 1 and "ser-ctl -d dbtext:///etc/ser/db user" in r.err


def test_uci_through_the_uci_command_where_there_is_one(house, tmp_path):
    # OpenWrt's uci, recorded: ser-ctl gives it a batch on stdin (passwords stay out of ps)
    path, env, _ = house
    fake = tmp_path / "uci"
    fake.write_text(f"#!{sys.executable}\nimport sys\n"
                    f"open({str(tmp_path / 'calls')!r}, 'a').write("
                    f"repr(sys.argv[1:]) + '\\n' + sys.stdin.read())\n")
    fake.chmod(0o755)
    env = dict(env, SER_UCI_BIN=str(fake))
    assert uci_run(env, "user", "add", "101", "a'b").code == 0
    assert uci_run(env, "user", "passwd", "100", "n").code == 0
    assert uci_run(env, "user", "del", "100").code == 0
    calls = (tmp_path / "calls").read_text()
    conf = str(path.parent)
    assert calls == (
        f"['-c', {conf!r}, 'batch']\nadd ser user\nset ser.@user[-1].name='101'\n"
        "set ser.@user[-1].password='a'\\''b'\ncommit ser\n"
        f"['-c', {conf!r}, 'batch']\nset ser.@user[0].password='n'\ncommit ser\n"
        f"['-c', {conf!r}, 'batch']\ndelete ser.@user[0]\ncommit ser\n")
    assert path.read_text() == UCI_TEXT, "uci itself writes the file"


def test_uci_add_to_a_missing_file_makes_it_0600(tmp_path):
    env = {"SER_UCI": str(tmp_path / "ser"), "SER_RUN_DIR": str(tmp_path / "run"),
           "SER_UCI_BIN": ""}
    assert uci_run(env, "user", "add", "100", "pw").code == 0
    assert (tmp_path / "ser").read_text() == "config user\n\toption name '100'\n" \
                                              "\toption password 'pw'\n"
    assert stat.S_IMODE((tmp_path / "ser").stat().st_mode) == 0o600
