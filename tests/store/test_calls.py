"""The call history file: survives a reload, a torn last line is skipped and cut off, the file
is compacted at twice its size, and it is private."""

import json
import os
import stat

from serlite.store.calls import CallHistory, make_record


def rec(i, result="answered"):
    return make_record(1000.0 + i, 1002.0 + i, 1010.0 + i, f"sip:{i}@h", "sip:bob@h", result,
                       200, "OK", f"call-{i}")


def test_calls_come_back_after_a_restart_newest_first(tmp_path):
    path = tmp_path / "calls"
    h = CallHistory(str(path), size=10)
    h.load()
    for i in range(3):
        h.add(rec(i))
    h.close()
    again = CallHistory(str(path), size=10)
    again.load()
    assert [c["call_id"] for c in again.last(5)] == ["call-2", "call-1", "call-0"]
    assert again.last(1)[0]["duration"] == 8.0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_torn_last_line_is_skipped_and_cut_off_before_the_next_call(tmp_path):
    path = tmp_path / "calls"
    h = CallHistory(str(path), size=10)
    h.add(rec(0))
    h.close()
    with open(path, "ab") as f:
        f.write(b'{"start":1,"end"')           # kill -9 in the middle of a write
    again = CallHistory(str(path), size=10)
    again.load()
    assert [c["call_id"] for c in again.last(5)] == ["call-0"]
    again.add(rec(1))
    lines = path.read_bytes().split(b"\n")
    assert [json.loads(x)["call_id"] for x in lines if x] == ["call-0", "call-1"]


def test_a_line_of_garbage_is_skipped(tmp_path):
    path = tmp_path / "calls"
    path.write_bytes(b"garbage\n" + json.dumps(rec(5)).encode() + b"\n[1]\n")
    h = CallHistory(str(path), size=10)
    h.load()
    assert [c["call_id"] for c in h.last(9)] == ["call-5"]


def test_the_file_is_rewritten_with_the_newest_when_it_holds_twice_the_size(tmp_path):
    path = tmp_path / "calls"
    h = CallHistory(str(path), size=4)
    h.load()
    for i in range(7):
        h.add(rec(i))
    assert len(path.read_bytes().splitlines()) == 7
    h.add(rec(7))                               # the 8th line: 2 x size
    assert [json.loads(x)["call_id"] for x in path.read_bytes().splitlines()] == \
        ["call-4", "call-5", "call-6", "call-7"]
    h.add(rec(8))                               # appended after the rewrite
    assert len(path.read_bytes().splitlines()) == 5
    assert [c["call_id"] for c in h.last(10)] == ["call-8", "call-7", "call-6", "call-5"]


def test_a_file_that_cannot_be_written_keeps_the_calls_in_memory(tmp_path):
    path = tmp_path / "no" / "such"
    (tmp_path / "no").write_text("a file where the directory should be")
    h = CallHistory(str(path), size=4)
    h.load()
    h.add(rec(0))
    assert [c["call_id"] for c in h.last(1)] == ["call-0"]


def test_a_long_uri_is_clipped(tmp_path):
    r = make_record(1, None, 2, "sip:" + "x" * 5000, "sip:b", "missed", 487, "Terminated", "c")
    assert len(r["caller"]) == 200 and r["answer"] is None and r["duration"] == 0.0
