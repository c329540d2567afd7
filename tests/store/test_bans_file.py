"""secfilter's ban file: append, load (last line per address wins, a lift removes), torn and
bad lines skipped and reported, bounded to the newest, atomic rewrite."""

import json

from serlite.store.bans import BanFile


def rec(ip, until=100.0, **kw):
    return dict(ip=ip, until=until, since=0.0, reason="failed logins", failures=5, user="100",
                offences=1, **kw)


def test_append_load_last_wins_and_del(tmp_path):
    f = BanFile(str(tmp_path / "sub" / "bans"))
    f.append([rec("192.0.2.1"), rec("192.0.2.2")])
    f.append([rec("192.0.2.1", until=200.0), {"ip": "192.0.2.2", "del": 1}])
    records, bad = BanFile(f.path).load(100)
    assert bad == 0 and list(records) == ["192.0.2.1"]
    assert records["192.0.2.1"]["until"] == 200.0
    assert (tmp_path / "sub" / "bans").read_text().startswith("# serlite bans 1\n")
    assert oct((tmp_path / "sub" / "bans").stat().st_mode & 0o777) == "0o600"


def test_torn_and_bad_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "bans"
    good = json.dumps(rec("192.0.2.1"))
    path.write_text("# serlite bans 1\n" + good + "\n" + '{"ip": 5}\n' + "garbage\n"
                    + json.dumps(rec("192.0.2.3", until=float("nan"))) + "\n"
                    + '{"ip": "192.0.2.2", "until": 17')
    records, bad = BanFile(str(path)).load(100)
    assert list(records) == ["192.0.2.1"] and bad == 5


def test_load_keeps_the_newest_and_rewrite_is_whole(tmp_path):
    f = BanFile(str(tmp_path / "bans"))
    f.append([rec(f"192.0.2.{i}") for i in range(10)])
    records, _ = f.load(3)
    assert list(records) == ["192.0.2.7", "192.0.2.8", "192.0.2.9"]
    f.rewrite(records)
    assert f.lines == 3
    again, bad = BanFile(f.path).load(100)
    assert again == records and bad == 0


def test_a_missing_file_is_an_empty_table(tmp_path):
    assert BanFile(str(tmp_path / "none")).load(10) == ({}, 0)
