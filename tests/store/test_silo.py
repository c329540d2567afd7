"""serlite.store.silo: msilo's journal of stored MESSAGEs."""

import os

import pytest

from serlite.store.silo import COMPACT_MIN, HEADER, SiloStore, StoreFull

NOW = 1765000000


def put(store, owner="alice", body=b"hi", now=NOW, expire=3600):
    return store.store(owner, "sip:bob@home.lan", f"sip:{owner}@home.lan", "text/plain", body,
                       now, expire)


def reopen(path, now=NOW, **kw):
    store = SiloStore(str(path), **kw)
    warnings = store.load(now)
    return store, warnings


def test_stored_messages_come_back_in_order_after_a_restart(tmp_path):
    path = tmp_path / "silo"
    store = SiloStore(str(path))
    for i in range(3):
        put(store, body=f"m{i}".encode())
    put(store, owner="carol", body=b"c")
    again, warnings = reopen(path)
    assert warnings == []
    assert [m.body for m in again.messages("alice")] == [b"m0", b"m1", b"m2"]
    assert [m.body for m in again.messages("carol")] == [b"c"]
    m = again.messages("alice")[0]
    assert (m.from_uri, m.to_uri, m.ctype, m.inc, m.exp) == \
        ("sip:bob@home.lan", "sip:alice@home.lan", "text/plain", NOW, NOW + 3600)
    assert len(again) == 4


def test_a_deleted_message_stays_deleted_and_mids_are_not_reused(tmp_path):
    path = tmp_path / "silo"
    store = SiloStore(str(path))
    a, b = put(store, body=b"a"), put(store, body=b"b")
    assert store.delete(a)
    assert not store.delete(a)
    again, _ = reopen(path)
    assert [m.body for m in again.messages("alice")] == [b"b"]
    assert again.delete(again.messages("alice")[0])
    third, _ = reopen(path)
    assert len(third) == 0
    assert put(third).mid > b.mid      # a new message never takes a delivered one's id


def test_any_body_bytes_round_trip(tmp_path):
    path = tmp_path / "silo"
    body = bytes(range(256)) + "héllo ✓".encode()
    put(SiloStore(str(path)), body=body)
    again, _ = reopen(path)
    assert again.messages("alice")[0].body == body


def test_a_torn_last_line_is_skipped_and_the_file_repaired(tmp_path):
    path = tmp_path / "silo"
    store = SiloStore(str(path))
    put(store, body=b"whole")
    put(store, body=b"torn")
    data = path.read_bytes()
    path.write_bytes(data[:-20])        # the power went during the second write
    again, warnings = reopen(path)
    assert [m.body for m in again.messages("alice")] == [b"whole"]
    assert any("torn" in w for w in warnings)
    assert path.read_bytes().endswith(b"\n")    # rewritten: the next append starts a line
    put(again, body=b"next")
    third, warnings = reopen(path)
    assert [m.body for m in third.messages("alice")] == [b"whole", b"next"]
    assert warnings == []


def test_a_bad_line_in_the_middle_is_reported_with_its_line(tmp_path):
    path = tmp_path / "silo"
    store = SiloStore(str(path))
    put(store, body=b"one")
    with open(path, "ab") as f:
        f.write(b'{"mid": "x"}\n')
    put(store, body=b"two")
    again, warnings = reopen(path)
    assert [m.body for m in again.messages("alice")] == [b"one", b"two"]
    assert warnings == [f"{path}:3: not a message record, skipped"]


def test_per_user_and_total_limits(tmp_path):
    store = SiloStore(str(tmp_path / "silo"), per_user=2, total=3)
    put(store), put(store)
    with pytest.raises(StoreFull) as e:
        put(store)
    assert e.value.what == "per-user" and e.value.limit == 2
    put(store, owner="carol")
    with pytest.raises(StoreFull) as e:
        put(store, owner="dave")
    assert e.value.what == "total"
    assert len(store) == 3
    assert reopen(tmp_path / "silo")[0].counts() == {"alice": 2, "carol": 1}


def test_expiry_drops_old_messages_but_not_one_in_flight(tmp_path):
    path = tmp_path / "silo"
    store = SiloStore(str(path))
    old = put(store, body=b"old", expire=10)
    flying = put(store, body=b"flying", expire=10)
    put(store, body=b"young", expire=100)
    flying.sending = True
    assert store.expire(NOW + 10) == 1
    assert [m.body for m in store.messages("alice")] == [b"flying", b"young"]
    assert old not in store.messages("alice")
    # the file still holds the expired one; a load leaves it out
    again, _ = reopen(path, now=NOW + 50)
    assert [m.body for m in again.messages("alice")] == [b"young"]


def test_the_journal_is_compacted_when_it_grows(tmp_path):
    path = tmp_path / "silo"
    store = SiloStore(str(path))
    for i in range(COMPACT_MIN + 1):
        store.delete(put(store, body=b"x"))
    keep = put(store, body=b"keep")
    assert store.compact_due()
    store.compact()
    assert not store.compact_due()
    lines = path.read_text().splitlines()
    assert lines[0] + "\n" == HEADER and len(lines) == 2
    again, _ = reopen(path)
    assert [m.body for m in again.messages("alice")] == [b"keep"]
    assert put(again).mid == keep.mid + 1


def test_compaction_keeps_the_last_mid_when_everything_was_delivered(tmp_path):
    path = tmp_path / "silo"
    store = SiloStore(str(path))
    last = put(store)
    store.delete(last)
    store.compact()
    again, _ = reopen(path)
    assert len(again) == 0 and put(again).mid == last.mid + 1


def test_a_failed_write_keeps_nothing_and_leaves_no_partial_line(tmp_path, monkeypatch):
    path = tmp_path / "silo"
    store = SiloStore(str(path))
    put(store)
    before = path.read_bytes()

    def full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        put(store, body=b"lost")
    monkeypatch.undo()
    assert [m.body for m in store.messages("alice")] == [b"hi"]
    assert path.read_bytes() == before      # the line written before the fsync failed is cut
    put(store, body=b"next")
    assert [m.body for m in reopen(path)[0].messages("alice")] == [b"hi", b"next"]


def test_memory_only_store_writes_nothing(tmp_path):
    store = SiloStore(None)
    put(store)
    assert store.load(NOW) == [] and len(store) == 0
    assert list(tmp_path.iterdir()) == []
