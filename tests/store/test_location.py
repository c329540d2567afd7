"""The location table (serlite/store/location.py): behaviour, files, and crash safety."""

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from serlite.store.location import (
    Binding, LocationStore, parse_db_url, JOURNAL_HEADER, SNAPSHOT_HEADER,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOW = 1_700_000_000
AOR = "alice@home.lan"


def b(contact="sip:alice@192.168.1.23:5060", aor=AOR, expires=NOW + 3600, q=-1, cseq=1, **kw):
    return Binding(aor, contact, expires, q=q, call_id=kw.pop("call_id", "cid-" + contact),
                   cseq=cseq, **kw)


def opened(path, mode, now=NOW, **kw):
    store = LocationStore(str(path), mode, **kw)
    assert store.load(now) == []
    return store


def state(store):
    """Everything a store holds, comparable across reloads."""
    return {aor: [(x.contact, x.expires, x.q, x.call_id, x.cseq, x.user_agent, x.received,
                   x.socket, x.path, x.flags) for x in store.lookup(aor, 0)]
            for aor in store.aors()}


def reloaded(path, mode=1, now=NOW):
    """A new store on the same files, as after a crash (the old one is never closed)."""
    store = LocationStore(str(path), mode)
    warnings = store.load(now)
    assert warnings == []
    return store


def lines(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")


# --- the table -------------------------------------------------------------------------------

def test_lookup_orders_by_q_then_most_recent():
    s = LocationStore(None, 0)
    s.save(AOR, NOW, put=[b("sip:a@h", q=500), b("sip:none@h"), b("sip:b@h", q=1000)])
    s.save(AOR, NOW + 1, put=[b("sip:c@h", q=500)])
    s.save(AOR, NOW + 2, put=[b("sip:zero@h", q=0)])
    # q=-1 (no q given) sorts below q=0, as in SER; within q=500 the newer (c) first
    assert [x.contact for x in s.lookup(AOR, NOW)] == [
        "sip:b@h", "sip:c@h", "sip:a@h", "sip:zero@h", "sip:none@h"]
    assert (len(s), s.aor_count()) == (5, 1)
    assert s.lookup("bob@home.lan", NOW) == []


def test_replace_by_contact_keeps_one_binding_and_makes_it_most_recent():
    s = LocationStore(None, 0)
    s.save(AOR, NOW, put=[b("sip:a@h", q=500, cseq=1), b("sip:b@h", q=500)])
    assert [x.contact for x in s.lookup(AOR, NOW)] == ["sip:b@h", "sip:a@h"]
    s.save(AOR, NOW + 60, put=[b("sip:a@h", q=500, cseq=2, expires=NOW + 7200,
                                 user_agent="Yealink", received="udp:192.0.2.1:5060",
                                 socket="udp:127.0.0.1:5060", flags=1, path="<sip:p@x;lr>")])
    got = s.lookup(AOR, NOW + 60)
    assert [x.contact for x in got] == ["sip:a@h", "sip:b@h"]
    assert (got[0].cseq, got[0].expires, got[0].flags, got[0].received) == (
        2, NOW + 7200, 1, "udp:192.0.2.1:5060")
    assert s.get(AOR, "sip:a@h") is got[0]
    assert s.get(AOR, "sip:nobody@h") is None and s.get("x@y", "sip:a@h") is None
    assert len(s) == 2


def test_delete_contact_and_put_with_past_expiry():
    s = LocationStore(None, 0)
    s.save(AOR, NOW, put=[b("sip:a@h"), b("sip:b@h"), b("sip:c@h")])
    s.save(AOR, NOW, delete=["sip:a@h", "sip:unknown@h"])
    s.save(AOR, NOW, put=[b("sip:b@h", expires=NOW)])     # Expires: 0
    assert [x.contact for x in s.lookup(AOR, NOW)] == ["sip:c@h"]
    s.save(AOR, NOW, delete=["sip:c@h"])
    assert (len(s), s.aor_count(), list(s.aors())) == (0, 0, [])


def test_save_applies_deletes_before_puts_and_checks_the_aor():
    s = LocationStore(None, 0)
    s.save(AOR, NOW, put=[b("sip:a@h", cseq=1)])
    s.save(AOR, NOW, delete=["sip:a@h"], put=[b("sip:a@h", cseq=2)])
    assert [x.cseq for x in s.lookup(AOR, NOW)] == [2]
    with pytest.raises(ValueError, match="saved under"):
        s.save(AOR, NOW, put=[b("sip:x@h", aor="bob@home.lan")])
    with pytest.raises(ValueError, match="q 1001"):
        s.save(AOR, NOW, put=[b("sip:x@h", q=1001)])
    assert len(s) == 1


def test_an_aors_only_binding_new_refreshed_shortened_or_expired(tmp_path, monkeypatch):
    # save() takes a shortcut for one put on an AOR without other bindings: the same table,
    # journal and expiry as the general path
    s = opened(tmp_path, 1)
    key = "".join(["alice@", "home.lan"])
    s.save(key, NOW, put=[b("sip:a@h", aor=key, expires=NOW + 60.9, q=500.0)])
    first = s.get(AOR, "sip:a@h")
    assert (first.expires, first.q) == (NOW + 60, 500)
    assert type(first.expires) is int and type(first.q) is int
    refreshed = b("sip:a@h", cseq=2, expires=NOW + 120)     # AOR: equal, another object
    s.save(AOR, NOW + 1, put=[refreshed])
    assert s.get(AOR, "sip:a@h") is refreshed and refreshed.aor is key
    assert (len(s), s.aor_count()) == (1, 1)
    assert s.expire(NOW + 100) == 0
    with pytest.raises(ValueError, match="q 1001"):
        s.save(AOR, NOW + 1, put=[b("sip:a@h", q=1001)])

    def failing(fd):
        raise OSError(5, "Input/output error")
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError):
        s.save(AOR, NOW + 2, put=[b("sip:a@h", cseq=3)])
    with pytest.raises(OSError):
        s.save("bob@h", NOW + 2, put=[b("sip:bob@h", aor="bob@h")])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert s.get(AOR, "sip:a@h") is refreshed and (len(s), s.aor_count()) == (1, 1)
    assert state(reloaded(tmp_path)) == state(s)
    s.save(AOR, NOW + 3, put=[b("sip:a@h", cseq=4, expires=NOW + 30)])     # shortened
    assert state(reloaded(tmp_path)) == state(s)
    assert s.expire(NOW + 30) == 1 and len(s) == 0
    s.save(AOR, NOW + 4, put=[b("sip:a@h", cseq=5)])
    s.save(AOR, NOW + 5, put=[b("sip:a@h", cseq=6, expires=NOW + 5)])      # Expires: 0
    assert (len(s), s.aor_count()) == (0, 0)
    assert state(reloaded(tmp_path, now=NOW + 5)) == {}


def test_delete_aor():
    s = LocationStore(None, 0)
    s.save(AOR, NOW, put=[b("sip:a@h"), b("sip:b@h")])
    s.save("bob@home.lan", NOW, put=[b("sip:bob@h", aor="bob@home.lan")])
    assert s.delete_aor(AOR, NOW) == 2
    assert s.delete_aor(AOR, NOW) == 0
    assert list(s.aors()) == ["bob@home.lan"] and len(s) == 1


def test_expire_drops_due_bindings_and_lookup_hides_them_before():
    s = LocationStore(None, 0)
    s.save(AOR, NOW, put=[b("sip:a@h", expires=NOW + 10), b("sip:b@h", expires=NOW + 20)])
    s.save("bob@home.lan", NOW, put=[b("sip:bob@h", aor="bob@home.lan", expires=NOW + 10)])
    assert s.expire(NOW + 5) == 0
    assert [x.contact for x in s.lookup(AOR, NOW + 10)] == ["sip:b@h"]   # expires is exclusive
    assert len(s) == 3                                                   # not dropped yet
    assert s.expire(NOW + 10) == 2
    assert (len(s), s.aor_count(), s.get(AOR, "sip:a@h")) == (1, 1, None)
    assert s.expire(NOW + 15) == 0
    assert s.expire(NOW + 20.5) == 1 and len(s) == 0


def test_bindings_share_repeated_strings():
    s = LocationStore(None, 0)
    ua = "".join(["Yealink ", "T46S"])          # two equal strings, distinct objects
    ua2 = "".join(["Yealink ", "T46S"])
    s.save(AOR, NOW, put=[b("sip:a@h", user_agent=ua)])
    s.save(AOR, NOW, put=[b("sip:b@h", user_agent=ua2, aor="".join(["alice@", "home.lan"]))])
    x, y = s.lookup(AOR, NOW)
    assert x.user_agent is y.user_agent and x.aor is y.aor


def test_bindings_share_equal_expiry_times_also_when_loaded(tmp_path):
    s = opened(tmp_path, 2)
    for aor in ("a@h", "b@h"):
        s.save(aor, NOW, put=[b("sip:x@h", aor=aor, expires=int(str(NOW + 3600)))])
    x, y = s.bindings()
    assert x.expires == NOW + 3600 and x.expires is y.expires
    s.close(NOW)
    s = opened(tmp_path, 2)
    x, y = s.bindings()
    assert x.expires is y.expires
    s.expire(NOW + 3600)
    assert len(s) == 0 and s._expiries == {}     # the shared values go with their bindings


def test_a_binding_without_nat_or_path_is_the_smaller_object():
    lan = b("sip:a@h", user_agent="Yealink", socket="udp:192.168.1.1:5060")
    nated = b("sip:a@h", user_agent="Yealink", socket="udp:192.168.1.1:5060",
              received="sip:203.0.113.9:41000", flags=1)
    routed = b("sip:a@h", path="<sip:edge.lan;lr>")
    assert (lan.received, lan.path, lan.flags) == ("", "", 0)
    assert (nated.received, nated.path, nated.flags) == ("sip:203.0.113.9:41000", "", 1)
    assert (routed.received, routed.path, routed.flags) == ("", "<sip:edge.lan;lr>", 0)
    assert all(isinstance(x, Binding) for x in (lan, nated, routed))
    assert lan != nated and nated == b("sip:a@h", user_agent="Yealink",
                                       socket="udp:192.168.1.1:5060",
                                       received="sip:203.0.113.9:41000", flags=1)
    # the table holds one such object per binding: bench/memory.py's budget counts on it
    assert sys.getsizeof(lan) <= 96 < sys.getsizeof(nated)
    s = LocationStore(None, 0)
    s.save(AOR, NOW, put=[lan, b("sip:b@h", path="".join(["<sip:p", ";lr>"]))])
    assert [(x.contact, x.path) for x in s.lookup(AOR, NOW)] == [
        ("sip:b@h", "<sip:p;lr>"), ("sip:a@h", "")]
    assert s.get(AOR, "sip:b@h").path is sys.intern("<sip:p;lr>")


def test_memory_mode_does_no_io(tmp_path):
    s = LocationStore(str(tmp_path / "db"), 0)
    assert s.load(NOW) == []
    s.save(AOR, NOW, put=[b()])
    s.flush(NOW)
    s.close(NOW)
    assert not (tmp_path / "db").exists()


def test_store_needs_load_first_in_db_modes(tmp_path):
    s = LocationStore(str(tmp_path), 1)
    with pytest.raises(RuntimeError, match="load"):
        s.save(AOR, NOW, put=[b()])
    with pytest.raises(ValueError, match="db_mode 3"):
        LocationStore(str(tmp_path), 3)
    with pytest.raises(ValueError, match="needs a db_url"):
        LocationStore(None, 2)


# --- db_mode 1: write-through ----------------------------------------------------------------

def test_write_through_survives_a_crash_after_every_operation(tmp_path):
    s = opened(tmp_path, 1)
    steps = [
        lambda: s.save(AOR, NOW, put=[b("sip:a@h", q=100), b("sip:b@h\tweird", q=900,
                                                               user_agent="UA \\ 1")]),
        lambda: s.save("bob@home.lan", NOW, put=[b("sip:bob@h", aor="bob@home.lan",
                                                   received="udp:192.0.2.7:5062", flags=1)]),
        lambda: s.save(AOR, NOW + 1, put=[b("sip:a@h", q=1000, cseq=2)]),
        lambda: s.save(AOR, NOW + 2, delete=["sip:b@h\tweird"]),
        lambda: s.save(AOR, NOW + 3, put=[b("sip:b@h", expires=NOW + 3)]),   # a no-op
        lambda: s.delete_aor("bob@home.lan", NOW + 4),
        lambda: s.save(AOR, NOW + 5, put=[b("sip:c@h\n\\x", q=500, path="<sip:\xe9\udcff>")]),
    ]
    for step in steps:
        step()
        assert state(reloaded(tmp_path)) == state(s)
    assert state(s) == {AOR: [
        ("sip:a@h", NOW + 3600, 1000, "cid-sip:a@h", 2, "", "", "", "", 0),
        ("sip:c@h\n\\x", NOW + 3600, 500, "cid-sip:c@h\n\\x", 1, "", "", "", "<sip:\xe9\udcff>", 0),
    ]}


def test_write_through_files_and_modes(tmp_path):
    d = tmp_path / "var" / "lib" / "ser"
    s = opened(d, 1)
    s.save(AOR, NOW, put=[b()])
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert sorted(os.listdir(d)) == ["location.journal"]
    jl = lines(d / "location.journal")
    assert jl[0] + b"\n" == JOURNAL_HEADER.encode() and jl[-1] == b""
    assert jl[1].startswith(b"put\talice@home.lan\tsip:alice@192.168.1.23:5060\t1700003600\t-1\t")
    s.close(NOW)
    assert sorted(os.listdir(d)) == ["location", "location.journal"]
    assert os.path.getsize(d / "location.journal") == 0
    for name in os.listdir(d):
        assert stat.S_IMODE(os.stat(d / name).st_mode) == 0o600
    assert lines(d / "location")[0] + b"\n" == SNAPSHOT_HEADER.encode()
    assert state(reloaded(d)) == state(s)


def test_load_drops_expired_records_and_an_expired_put_wins(tmp_path):
    s = opened(tmp_path, 1)
    s.save(AOR, NOW, put=[b("sip:a@h", expires=NOW + 100), b("sip:b@h", expires=NOW + 9000)])
    s.close(NOW)                               # both in the snapshot
    s = opened(tmp_path, 1)
    s.save(AOR, NOW + 50, put=[b("sip:b@h", expires=NOW + 200)])   # shortened, journal only
    later = reloaded(tmp_path, now=NOW + 300)
    assert len(later) == 0 and later.aor_count() == 0


def test_compaction_keeps_content_and_empties_the_journal(tmp_path):
    s = opened(tmp_path, 1, journal_min=10)
    for i in range(30):
        s.save(f"u{i % 7}@h", NOW, put=[b(f"sip:{i % 11}@h", aor=f"u{i % 7}@h", cseq=i)])
    s.flush(NOW)          # 30 journal lines > max(10, 2 * 0): compact
    assert os.path.getsize(tmp_path / "location.journal") == 0
    n = len(s)
    assert len(lines(tmp_path / "location")) == n + 2          # header, records, final ''
    s.save("u1@h", NOW, put=[b("sip:new@h", aor="u1@h")])
    s.flush(NOW)          # 1 line: not worth it
    assert len(lines(tmp_path / "location.journal")) == 3
    assert state(reloaded(tmp_path)) == state(s)
    assert sorted(os.listdir(tmp_path)) == ["location", "location.journal"]   # no temp file


def test_a_crash_between_snapshot_and_journal_truncation_loses_nothing(tmp_path):
    # compaction replaces the snapshot, then empties the journal: replaying the whole journal
    # again on the new snapshot must give the same table
    s = opened(tmp_path, 1)
    s.save(AOR, NOW, put=[b("sip:a@h", q=10), b("sip:b@h", q=10), b("sip:c@h", q=900)])
    s.save(AOR, NOW, delete=["sip:a@h"])
    s.save("bob@h", NOW, put=[b("sip:bob@h", aor="bob@h")])
    s.delete_aor("bob@h", NOW)
    s.save("bob@h", NOW, put=[b("sip:bob2@h", aor="bob@h")])
    s.save(AOR, NOW, put=[b("sip:a@h", q=10, cseq=5)])
    journal = (tmp_path / "location.journal").read_bytes()
    s.close(NOW)
    (tmp_path / "location.journal").write_bytes(journal)
    assert state(reloaded(tmp_path)) == state(s)
    assert [x.contact for x in s.lookup(AOR, NOW)] == ["sip:c@h", "sip:a@h", "sip:b@h"]


def test_compaction_happens_in_save_when_flush_is_never_called(tmp_path):
    s = opened(tmp_path, 1, journal_min=2)
    for i in range(40):
        s.save(AOR, NOW, put=[b("sip:a@h", cseq=i)])
    assert len(lines(tmp_path / "location.journal")) < 20
    assert state(reloaded(tmp_path)) == state(s)


def test_a_failed_journal_write_changes_nothing_and_is_repaired(tmp_path, monkeypatch):
    s = opened(tmp_path, 1)
    s.save(AOR, NOW, put=[b("sip:a@h")])
    real_fsync = os.fsync

    def failing(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError):
        s.save(AOR, NOW, put=[b("sip:b@h")])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert [x.contact for x in s.lookup(AOR, NOW)] == ["sip:a@h"]
    assert state(reloaded(tmp_path)) == state(s)
    s.save(AOR, NOW, put=[b("sip:c@h")])        # rewrites the snapshot first
    assert state(reloaded(tmp_path)) == state(s)
    assert len(s) == 2


# --- db_mode 2: write-back -------------------------------------------------------------------

def test_write_back_keeps_what_was_flushed_and_loses_what_was_not(tmp_path):
    s = opened(tmp_path, 2)
    s.save(AOR, NOW, put=[b("sip:a@h"), b("sip:b@h")])
    assert os.listdir(tmp_path) == []           # nothing written before flush
    s.flush(NOW)
    flushed = state(s)
    assert state(reloaded(tmp_path, 2)) == flushed
    mtime = os.stat(tmp_path / "location").st_mtime_ns
    s.flush(NOW + 60)                           # nothing changed: no write
    assert os.stat(tmp_path / "location").st_mtime_ns == mtime
    # changes after the last flush are not expected to survive a crash
    s.save(AOR, NOW + 1, put=[b("sip:c@h")], delete=["sip:a@h"])
    s.delete_aor("alice@home.lan", NOW + 2)
    s.save("bob@h", NOW + 2, put=[b("sip:bob@h", aor="bob@h")])
    assert state(reloaded(tmp_path, 2)) == flushed
    s.flush(NOW + 3)
    assert state(reloaded(tmp_path, 2)) == state(s) == {"bob@h": [
        ("sip:bob@h", NOW + 3600, -1, "cid-sip:bob@h", 1, "", "", "", "", 0)]}
    s.save("bob@h", NOW + 4, delete=["sip:bob@h"])
    s.close(NOW + 5)                            # close flushes
    assert len(reloaded(tmp_path, 2)) == 0
    assert sorted(os.listdir(tmp_path)) == ["location"]


def test_write_back_folds_a_journal_left_by_write_through(tmp_path):
    s = opened(tmp_path, 1)
    s.save(AOR, NOW, put=[b("sip:a@h")])
    s2 = reloaded(tmp_path, 2)
    assert state(s2) == state(s)
    assert sorted(os.listdir(tmp_path)) == ["location"]


# --- damaged files ---------------------------------------------------------------------------

def fill(path, mode=1, n=5):
    s = opened(path, mode)
    for i in range(n):
        s.save(f"u{i}@h", NOW, put=[b(f"sip:u{i}@h", aor=f"u{i}@h")])
    return s


def test_torn_last_journal_line_is_skipped_with_a_warning(tmp_path):
    fill(tmp_path)
    j = tmp_path / "location.journal"
    os.truncate(j, os.path.getsize(j) - 7)      # power loss in the middle of the 5th line
    s = LocationStore(str(tmp_path), 1)
    assert s.load(NOW) == ["location.journal:6: torn last line (interrupted write), skipped"]
    assert sorted(s.aors()) == ["u0@h", "u1@h", "u2@h", "u3@h"]
    assert os.path.getsize(j) == 0              # compacted at load
    assert state(reloaded(tmp_path)) == state(s)


def test_a_journal_torn_in_its_header_is_reset(tmp_path):
    (tmp_path / "location.journal").write_bytes(JOURNAL_HEADER.encode()[:10])
    s = LocationStore(str(tmp_path), 1)
    assert s.load(NOW) == ["location.journal:1: torn last line (interrupted write), skipped"]
    s.save(AOR, NOW, put=[b()])
    assert state(reloaded(tmp_path)) == state(s) != {}


def test_a_save_whose_last_line_is_torn_is_discarded_whole(tmp_path):
    s = fill(tmp_path, n=1)
    s.save(AOR, NOW, put=[b("sip:a@h"), b("sip:b@h"), b("sip:c@h")])
    j = tmp_path / "location.journal"
    os.truncate(j, os.path.getsize(j) - 3)
    s = LocationStore(str(tmp_path), 1)
    assert s.load(NOW) == [
        "location.journal:5: torn last line (interrupted write), skipped",
        "location.journal:3: unfinished save (2 of its changes at the end), discarded"]
    assert list(s.aors()) == ["u0@h"]


def test_bad_journal_line_in_the_middle_is_skipped_the_rest_kept(tmp_path):
    fill(tmp_path)
    j = tmp_path / "location.journal"
    data = lines(j)
    data[3] = data[3].replace(b"u2@h", b"u9@h", 1)       # a flipped byte: checksum fails
    data[4] = b"put\tgarbage\t00000000"
    with open(j, "wb") as f:
        f.write(b"\n".join(data))
    s = LocationStore(str(tmp_path), 1)
    assert s.load(NOW) == ["location.journal:4: bad record (checksum), skipped",
                           "location.journal:5: bad record (checksum), skipped"]
    assert sorted(s.aors()) == ["u0@h", "u1@h", "u4@h"]


def test_garbage_in_the_snapshot_is_reported_by_line_and_good_records_kept(tmp_path):
    fill(tmp_path).close(NOW)
    snap = tmp_path / "location"
    data = lines(snap)
    data[2] = b"this is not a record"
    data[4] = data[4].replace(b"\t1700003600\t", b"\tsoon\t")
    data.insert(5, b"")                                   # blank lines are fine
    with open(snap, "wb") as f:
        f.write(b"\n".join(data))
    s = LocationStore(str(tmp_path), 1)
    assert s.load(NOW) == [
        "location:3: bad record (11 fields expected, got 1), skipped",
        "location:5: bad record (expires 'soon' is not a number), skipped"]
    assert sorted(s.aors()) == ["u0@h", "u2@h", "u4@h"]
    assert len(lines(snap)) == 3 + 2                       # rewritten without the bad lines
    assert state(reloaded(tmp_path)) == state(s)


def test_a_snapshot_written_by_hand_or_an_older_serlite_loads(tmp_path):
    def rec(aor, contact, q, expires=NOW + 3600, rest="Yealink T46S\t\tudp:192.168.1.1:5060\t\t0"):
        return f"{aor}\t{contact}\t{expires}\t{q}\tcid\t7\t{rest}"
    (tmp_path / "location").write_text(SNAPSHOT_HEADER + "\n".join([
        rec("a@h", "sip:1@h", -1),
        rec("b@h", "sip:1@h", 500),
        rec("a@h", "sip:2@h", 1000),                   # out of q order: sorted on load
        rec("c@h", "sip:1@h", -1),
        rec("a@h", "sip:3@h", 500),
        rec("c@h", "sip:1@h", 7),                      # the same contact again: replaces line 5
        rec("a@h", "sip:old@h", -1, expires=NOW),      # expired: dropped
        rec("a@h", "sip:nat@h", -1, rest="\tsip:203.0.113.9:41000\t\t<sip:edge;lr>\t1"),
        "",
    ]))
    s = LocationStore(str(tmp_path), 2)
    assert s.load(NOW) == ["location:7: duplicate contact, replaces the earlier record"]
    got = {aor: [(x.contact, x.q) for x in s.lookup(aor, NOW)] for aor in s.aors()}
    assert got == {"a@h": [("sip:2@h", 1000), ("sip:3@h", 500), ("sip:1@h", -1),
                           ("sip:nat@h", -1)],
                   "b@h": [("sip:1@h", 500)], "c@h": [("sip:1@h", 7)]}
    assert (len(s), s.aor_count()) == (6, 3)
    nat = s.get("a@h", "sip:nat@h")
    assert (nat.received, nat.path, nat.flags, nat.user_agent, nat.cseq) == (
        "sip:203.0.113.9:41000", "<sip:edge;lr>", 1, "", 7)
    x, y = s.lookup("a@h", NOW)[:2]
    assert x.aor is y.aor and x.user_agent is y.user_agent and x.expires is y.expires
    assert state(reloaded(tmp_path, mode=2)) == state(s)   # rewritten without the duplicate


def test_a_file_that_is_not_ours_is_refused_not_overwritten(tmp_path):
    snap = tmp_path / "location"
    snap.write_text("username(str) domain(str,null) contact(str) expires(int)\n"
                    "alice:home.lan:sip\\:alice@1.2.3.4:1700003600\n")
    with pytest.raises(ValueError, match="not a serlite usrloc file"):
        LocationStore(str(tmp_path), 1).load(NOW)
    snap.write_text(SNAPSHOT_HEADER.replace(" 1:", " 2:"))
    with pytest.raises(ValueError, match="format version '2'"):
        LocationStore(str(tmp_path), 1).load(NOW)
    assert snap.read_text().startswith("# serlite usrloc 2:")


def test_a_journal_that_cannot_be_compacted_at_load_is_cut_to_its_last_save_and_kept(
        tmp_path, monkeypatch):
    # A full disk at start: no room for a snapshot.  Saves go on in the journal at once (they
    # used to be refused until a whole snapshot fitted), never glued onto its torn last line.
    fill(tmp_path)
    j = tmp_path / "location.journal"
    os.truncate(j, os.path.getsize(j) - 7)
    torn = os.path.getsize(j)

    def full(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", full)
    s = LocationStore(str(tmp_path), 1)
    assert s.load(NOW)[1:] == [f"{tmp_path}/location: cannot rewrite (No space left on device)"]
    assert os.path.getsize(j) < torn and j.read_bytes().endswith(b"\n")
    s.save(AOR, NOW, put=[b()])
    assert len(s) == 5
    monkeypatch.undo()
    assert state(reloaded(tmp_path)) == state(s)


def test_a_stale_temp_file_is_removed_at_load(tmp_path):
    fill(tmp_path).close(NOW)
    (tmp_path / "location.tmp").write_text("half a snapshot")
    assert len(reloaded(tmp_path)) == 5
    assert sorted(os.listdir(tmp_path)) == ["location", "location.journal"]


# --- a real crash ----------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from serlite.store.location import Binding, LocationStore
    s = LocationStore(sys.argv[2], 1)
    s.load({now})
    for i in range(int(sys.argv[3])):
        aor = "user%d@home.lan" % i
        s.save(aor, {now}, put=[Binding(aor, "sip:user%d@192.168.1.23:5060;transport=udp" % i,
                                        {now} + 3600, 1000, "%032x" % i, 1, "Yealink", "", "")])
        if sys.argv[4] == "each":
            print(i, flush=True)
    print("saved", flush=True)
    sys.stdin.read()          # wait to be killed
""").format(now=NOW)


def run_child(path, n, report):
    return subprocess.Popen([sys.executable, "-c", CHILD, ROOT, str(path), str(n), report],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_sigkill_right_after_saving_loses_nothing(tmp_path):
    p = run_child(tmp_path, 1000, "end")
    try:
        assert p.stdout.readline() == "saved\n"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert p.returncode == -signal.SIGKILL
    s = reloaded(tmp_path)
    assert len(s) == 1000 and s.lookup("user999@home.lan", NOW)[0].call_id == "%032x" % 999


def test_sigkill_while_saving_keeps_every_acknowledged_save(tmp_path):
    p = run_child(tmp_path, 100_000, "each")
    try:
        for i in range(300):
            assert p.stdout.readline() == f"{i}\n"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    s = LocationStore(str(tmp_path), 1)
    warnings = s.load(NOW)
    assert len(warnings) <= 1                   # at most the line being written
    got = sorted(int(aor[4:].split("@")[0]) for aor in s.aors())
    assert len(got) >= 300 and got == list(range(len(got)))


# --- the rest --------------------------------------------------------------------------------

def test_parse_db_url():
    assert parse_db_url("dbtext:///var/lib/ser") == "/var/lib/ser"
    assert parse_db_url("dbtext://ser_db") == "ser_db"
    assert parse_db_url("/var/lib/ser") == "/var/lib/ser"
    assert parse_db_url("ser_db") == "ser_db"
    with pytest.raises(ValueError, match="scheme 'mysql' is not supported, only dbtext://"):
        parse_db_url("mysql://ser:heslo@localhost/ser")
    with pytest.raises(ValueError, match="dbtext:///absolute/dir"):
        parse_db_url("dbtext:/var/lib/ser")
    with pytest.raises(ValueError, match="no directory"):
        parse_db_url("dbtext://")


def test_imports_under_python3_light():
    light = os.path.join(ROOT, "tools", "python3-light")
    subprocess.run([light, "-c", "import serlite.store.location"], cwd=ROOT, check=True)
