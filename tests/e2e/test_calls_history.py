"""acc and the call history end to end: a real serlite between sipp phones on loopback.

A call gives one acc line per transaction (the INVITE's and the BYE's) and one history entry
whose duration is the time between the answer and the BYE (a UAC that talks 2.5 s); a
cancelled call is a missed one; the history survives kill -9; ``ser-ctl calls`` prints it.
"""

import json
import re
import time

from . import sipnet
from .test_ctl import ctl
from .test_stateful import register, sipp_contact

LOCAL = "127.0.0.1"
TALK = 2.5      # seconds between the caller's ACK and its BYE


def acc_config(history):
    """The seed config with acc as the shipped ser.cfg has it."""
    text = sipnet.SEED_CFG.read_text()
    load = 'loadmodule "/usr/lib/ser/modules/registrar.so"\n'
    text = text.replace(load, load + f"""loadmodule "/usr/lib/ser/modules/acc.so"
modparam("acc", "log_flag", 10)
modparam("acc", "log_missed_flag", 11)
modparam("acc", "failed_transaction_flag", 12)
modparam("acc", "history_file", "{history}")
""")
    return text.replace("route {\n", """route {
    if (method == "INVITE" && !has_totag()) {
        setflag(10);
        setflag(11);
    } else if (method == "BYE") {
        setflag(10);
        setflag(12);
    }
""", 1)


def talking_uac(tmp_path, seconds):
    """uac_call.xml with the pause between ACK and BYE made ``seconds`` long."""
    text = (sipnet.SCENARIOS / "uac_call.xml").read_text()
    assert text.count('<pause milliseconds="50"/>') == 1
    copy = tmp_path / "uac_talk.xml"
    copy.write_text(text.replace('<pause milliseconds="50"/>',
                                 f'<pause milliseconds="{int(seconds * 1000)}"/>'))
    return copy


def acc_lines(server):
    return [line.split("NOTICE: ", 1)[1] for line in server.log().splitlines()
            if "ACC: " in line]


def calls(server, n=10):
    out = ctl(server, "calls", str(n), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_for(what, check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            assert got, f"no {what} within {timeout} s"
            return got
        time.sleep(0.05)


def answered_call(server, tmp_path):
    with sipnet.start_uas(workdir=tmp_path, name="bob") as uas:
        register(server, "bob", [sipp_contact(uas)])
        started = time.monotonic()
        uac = sipnet.run_uac(server.addr, workdir=tmp_path, name="alice",
                             scenario=str(talking_uac(tmp_path, TALK)), timeout=20)
        took = time.monotonic() - started
        uas.wait(timeout=5)
    uac.assert_ok(1)
    return took


def test_a_call_gives_one_acc_line_per_transaction_and_one_history_entry(ser, tmp_path):
    history = tmp_path / "calls"
    server = ser(acc_config(history))
    took = answered_call(server, tmp_path)
    lines = wait_for("acc line of the BYE", lambda: len(acc_lines(server)) >= 2 and
                     acc_lines(server))
    assert len(lines) == 2, lines
    invite, bye = lines
    fields = dict(kv.split("=", 1) for kv in invite.split(": ", 2)[2].split(";"))
    assert invite.startswith("ACC: transaction answered: timestamp=")
    assert fields["method"] == "INVITE" and fields["code"] == "200" and fields["reason"] == "OK"
    assert fields["from_tag"] and fields["to_tag"] and fields["call_id"]
    assert fields["to"] == f"sip:bob@{LOCAL}:{server.port}"
    assert ";method=BYE;" in bye and f";call_id={fields['call_id']};" in bye
    rows = calls(server)["history"]
    assert len(rows) == 1, rows
    call = rows[0]
    assert call["result"] == "answered" and call["code"] == 200
    assert call["call_id"] == fields["call_id"]
    assert abs(call["duration"] - TALK) < 1.0, (call, took)
    assert call["start"] <= call["answer"] <= call["end"]
    assert call["end"] - call["start"] <= took + 1.0
    on_disk = [json.loads(x) for x in history.read_text().splitlines()]
    assert [c["call_id"] for c in on_disk] == [call["call_id"]]
    table = ctl(server, "calls").stdout
    assert "answered" in table and "bob@" in table and "active calls: 0" in table


def test_a_cancelled_call_is_missed(ser, tmp_path):
    server = ser(acc_config(tmp_path / "calls"))
    with sipnet.start_uas(workdir=tmp_path, scenario="uas_ring_cancel.xml") as uas:
        register(server, "bob", [sipp_contact(uas)])
        uac = sipnet.run_uac(server.addr, workdir=tmp_path, scenario="uac_cancel.xml")
        uas.wait(timeout=5)
    uac.assert_ok(1)
    rows = wait_for("history entry", lambda: calls(server)["history"])
    assert [(c["result"], c["code"]) for c in rows] == [("missed", 487)]
    missed = [x for x in acc_lines(server) if x.startswith("ACC: call missed: ")]
    assert len(missed) == 1 and ";code=487;" in missed[0]
    assert "MISSED" in ctl(server, "calls").stdout


def test_the_history_survives_kill_9(ser, tmp_path):
    history = tmp_path / "calls"
    server = ser(acc_config(history))
    answered_call(server, tmp_path)
    before = calls(server)["history"]
    assert len(before) == 1
    server.kill9()
    server.start()
    after = calls(server)["history"]
    assert after == before
    # and the next call is appended beside it
    answered_call(server, tmp_path / "second")
    assert [c["call_id"] for c in calls(server)["history"]][1:] == [before[0]["call_id"]]


def test_without_a_history_file_calls_says_so(ser, tmp_path):
    text = acc_config("x").replace('modparam("acc", "history_file", "x")\n', "")
    server = ser(text)
    got = calls(server)
    assert got == {"active": [], "history": [], "history_on": False, "untracked": 0,
                   "relay": None}      # no media relay loaded
    assert "no call history" in ctl(server, "calls").stdout
    assert re.search(r"acc is not loaded", ctl(ser(sipnet.SEED_CFG.read_text(),
                                                   name="plain"), "calls").stderr)
