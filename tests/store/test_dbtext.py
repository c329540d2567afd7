"""serlite.store.dbtext: SER's db_text table files -- header, records, escapes, bad lines
reported with their line numbers and skipped (and kept on rewrite), atomic 0600 rewrites."""

import os
import stat

import pytest

from serlite.store import dbtext

HEADER = "username(str) domain(str) password(str) ha1(str) ha1b(str)"


def write(path, text):
    path.write_bytes(text.encode("latin-1"))
    return path


def test_read_subscriber_table(tmp_path):
    p = write(tmp_path / "subscriber", HEADER + "\n"
              "alice:home::0123456789abcdef0123456789abcdef:\n"
              "bob:home:secret::\n")
    table, warnings = dbtext.read_table(p)
    assert warnings == []
    assert table.names() == ["username", "domain", "password", "ha1", "ha1b"]
    assert table.records() == [
        {"username": "alice", "domain": "home", "password": None,
         "ha1": "0123456789abcdef0123456789abcdef", "ha1b": None},
        {"username": "bob", "domain": "home", "password": "secret", "ha1": None, "ha1b": None}]


def test_kamailio_header_with_types_and_attributes(tmp_path):
    # the table kamctl ships: id(int,auto) ... string columns
    p = write(tmp_path / "subscriber",
              "id(int,auto) username(string) domain(string) password(string) ha1(string) "
              "ha1b(string) rpid(str,null) flag(double)\n"
              "1:alice:home:pw:aa:bb::0.34\n"
              "-2:bob:home::::x:-3.75\n")
    table, warnings = dbtext.read_table(p)
    assert warnings == []
    cols = {c.name: c for c in table.columns}
    assert cols["id"].type == "int" and cols["id"].auto
    assert cols["username"].type == "str" and cols["username"].type_text == "string"
    assert cols["rpid"].null
    assert [r["id"] for r in table.records()] == [1, -2]
    assert [r["flag"] for r in table.records()] == [0.34, -3.75]
    assert table.next_auto("id") == 2
    assert table.header() == ("id(int,auto) username(string) domain(string) password(string) "
                              "ha1(string) ha1b(string) rpid(str,null) flag(double)")


def test_escapes(tmp_path):
    p = write(tmp_path / "t", "a(str) b(str)\n"
              "x\\:y\\\\z:line\\nbreak\\ttab\\rcr\\0nul\n")
    table, warnings = dbtext.read_table(p)
    assert warnings == []
    assert table.records() == [{"a": "x:y\\z", "b": "line\nbreak\ttab\rcr\0nul"}]


@pytest.mark.parametrize("value", ["plain", "a:b", "back\\slash", "nl\nx", "\t\r\0", ":\\:",
                                   "caf\xc3\xa9"])
def test_escape_round_trip(value):
    assert dbtext.unescape(dbtext.escape(value)) == value
    assert ":" not in dbtext.escape(value).replace("\\:", "")


def test_bad_records_are_reported_with_line_numbers_and_skipped(tmp_path):
    p = write(tmp_path / "subscriber", HEADER + "\n"
              "alice:home::aa:bb\n"                     # 2 good
              "too:few:fields\n"                        # 3
              "\n"                                      # 4 blank: skipped silently
              "bad:esc\\ape::aa:bb\n"                   # 5 unknown escape
              "carol:home::cc:dd:extra\n"               # 6 too many
              "dave:home::dd:ee\n")                     # 7 good
    table, warnings = dbtext.read_table(p)
    assert [r["username"] for r in table.records()] == ["alice", "dave"]
    assert len(warnings) == 3
    assert warnings[0].startswith(f"{p}:3: 5 fields expected, found 3")
    assert warnings[1].startswith(f"{p}:5: column domain: bad escape '\\\\a'")
    assert warnings[2].startswith(f"{p}:6: 5 fields expected, found 6")
    assert all(w.endswith("record skipped") for w in warnings)


def test_bad_numbers(tmp_path):
    p = write(tmp_path / "t", "id(int) f(double)\n1:2.5\nx:1\n1:1.2.3\n1_0:1\n+1:1\n2:\n")
    table, warnings = dbtext.read_table(p)
    assert table.records() == [{"id": 1, "f": 2.5}, {"id": 2, "f": None}]
    assert [w.split(":")[1] for w in warnings] == ["3", "4", "5", "6"]


@pytest.mark.parametrize("header, why", [
    ("", "no header line"),
    ("username domain", "bad column definition 'username'"),
    ("username(str) n(float)", "unknown type 'float'"),
    ("a(str,unique)", "unknown attribute 'unique'"),
    ("a(str,auto)", "only int columns can be auto"),
    ("a(str) a(int)", "declared twice"),
])
def test_bad_header_makes_the_table_unusable(tmp_path, header, why):
    p = write(tmp_path / "t", header + "\nalice:home\n")
    with pytest.raises(dbtext.DbTextError) as e:
        dbtext.read_table(p)
    assert why in str(e.value)
    assert str(e.value).startswith(f"{p}:1:")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        dbtext.read_table(tmp_path / "nope")


def test_crlf_lines(tmp_path):
    p = write(tmp_path / "t", "a(str) b(str)\r\nx:y\r\n")
    table, warnings = dbtext.read_table(p)
    assert warnings == [] and table.records() == [{"a": "x", "b": "y"}]


def test_write_read_round_trip_keeps_bad_lines(tmp_path):
    p = write(tmp_path / "subscriber", HEADER + "\nalice:home::aa:bb\nbroken line\n")
    table, warnings = dbtext.read_table(p)
    assert len(warnings) == 1
    table.rows.append({"username": "b:o\\b", "domain": "home", "ha1": "cc"})
    dbtext.write_table(p, table)
    assert p.read_text() == (HEADER + "\nalice:home::aa:bb\nbroken line\n"
                             "b\\:o\\\\b:home::cc:\n")
    again, _ = dbtext.read_table(p)
    assert again.records()[1]["username"] == "b:o\\b"


def test_write_is_atomic_and_private(tmp_path):
    p = tmp_path / "subscriber"
    old = os.umask(0)
    try:
        dbtext.write_table(p, dbtext.Table(dbtext.SUBSCRIBER_COLUMNS))
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert p.read_text() == "username(str) domain(str) ha1(str) ha1b(str)\n"
    assert sorted(os.listdir(tmp_path)) == ["subscriber"]      # no temporary file left


def test_failed_write_leaves_the_old_table(tmp_path, monkeypatch):
    p = write(tmp_path / "subscriber", HEADER + "\nalice:home::aa:bb\n")
    before = p.read_bytes()
    table, _ = dbtext.read_table(p)
    table.rows.append({"username": "bob"})

    def fail(*a):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        dbtext.write_table(p, table)
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["subscriber"]


def test_table_path():
    assert dbtext.table_path("dbtext:///etc/ser/db", "subscriber") == "/etc/ser/db/subscriber"
    assert dbtext.table_path("/var/db", "t") == "/var/db/t"
    for bad in ("", "../x", "a/b", ".."):
        with pytest.raises(ValueError):
            dbtext.table_path("dbtext:///db", bad)
    with pytest.raises(ValueError):
        dbtext.table_path("mysql://localhost/ser", "subscriber")
