"""acc in process: a real Core on the seed config with acc loaded and its flags set in the
script, a transport that records what it would send, and a clock the test moves.  The acc
lines (Kamailio's format), missed calls, failed_filter, acc_log_request, the call history, and
that nothing is hooked into tm when acc has nothing to do."""

import json
import re

import pytest

from test_tm_shed import SEED_CFG, Transport

from serlite import log
from serlite.control.stats import Stats
from serlite.loop import Loop
from serlite.proxy.context import Source
from serlite.proxy.core import Core
from serlite.script.compiler import compile_config
from serlite.script.errors import ConfigError

_REGISTRAR = 'loadmodule "/usr/lib/ser/modules/registrar.so"\n'
FLAGS = ('modparam("acc", "log_flag", 10)\nmodparam("acc", "log_missed_flag", 11)\n'
         'modparam("acc", "failed_transaction_flag", 12)\n')


def config(modparams=FLAGS, flags="setflag(10); setflag(11); setflag(12);"):
    text = SEED_CFG.read_text()
    text = text.replace(_REGISTRAR, _REGISTRAR + 'loadmodule "/usr/lib/ser/modules/acc.so"\n'
                        + modparams)
    return text.replace("route {\n", "route {\n    " + flags + "\n", 1)


class Phone:
    """The proxy with bob registered at 127.0.0.1:7000; alice calls from 127.0.0.1:6001."""

    def __init__(self, text):
        self.clock = 1000.0
        self.loop = Loop()
        self.loop.time = lambda: self.clock
        self.loop.wall = lambda: 1765000000.0 + self.clock
        self.tr = Transport()
        self.core = Core(self.loop, self.tr, Stats(0))
        self.core.set_identity(self.tr.listeners, [])
        script = compile_config(text, str(SEED_CFG))
        self.core.use_script(script)
        for m in script.modules.values():
            m.start(self.core, None)
        self.acc = script.modules["acc"]
        self.alice = Source("udp", "127.0.0.1", 6001, self.tr.listeners[0])
        self.bob = Source("udp", "127.0.0.1", 7000, self.tr.listeners[0])
        self.send(self.bob, req("REGISTER", "reg", "r1", "sip:127.0.0.1:5060",
                                ("Contact: <sip:bob@127.0.0.1:7000>", "Expires: 600")))

    def send(self, source, data):
        self.tr.sent.clear()
        self.core.receive(data, source)
        return list(self.tr.sent)

    def relayed(self, source, data):
        """Send, and return the request relayed to bob (whole)."""
        sent = []
        orig = self.tr.send

        def keep(proto, ip, port, data, local=None, conn=None):
            sent.append((port, data))
            return orig(proto, ip, port, data, local, conn)
        self.tr.send = keep
        try:
            self.send(source, data)
        finally:
            self.tr.send = orig
        return [d for port, d in sent if port == 7000 and not d.startswith(b"SIP/")]

    def answer(self, relayed, status, reason, tag="b1"):
        return self.send(self.bob, resp(relayed, status, reason, tag))


def req(method, call_id, branch, ruri="sip:bob@127.0.0.1:5060", extra=(), to_tag=None,
        cseq=1, from_tag="a1"):
    lines = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-{branch}",
             "Max-Forwards: 70", f"From: \"Alice\" <sip:alice@127.0.0.1>;tag={from_tag}",
             "To: <sip:bob@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
             f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", *extra, "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def resp(request, status, reason, tag):
    head = request.split(b"\r\n\r\n")[0].decode().split("\r\n")[1:]
    keep = [h + (f";tag={tag}" if h.startswith("To:") and ";tag=" not in h else "")
            for h in head if h.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq",
                                                   "Record-Route")]
    return (f"SIP/2.0 {status} {reason}\r\n" + "\r\n".join(keep) +
            "\r\nContact: <sip:bob@127.0.0.1:7000>\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.fixture
def acc_lines(capsys):
    old = log.level
    log.configure(debug=log.NOTICE, stderr=True)
    yield lambda: [line.split("NOTICE: ", 1)[1] for line in
                   capsys.readouterr().err.splitlines() if "ACC: " in line]
    log.level = old


def answered_call(p, seconds=42.0, call_id="call1"):
    invite = p.relayed(p.alice, req("INVITE", call_id, "i1"))[0]
    p.answer(invite, 180, "Ringing")
    p.clock += 3
    p.answer(invite, 200, "OK")
    rr = re.search(rb"Record-Route: <([^>]*)>", invite).group(1).decode()
    p.send(p.alice, req("ACK", call_id, "k1", "sip:bob@127.0.0.1:7000",
                        (f"Route: <{rr}>",), to_tag="b1"))
    p.clock += seconds
    bye = p.relayed(p.alice, req("BYE", call_id, "y1", "sip:bob@127.0.0.1:7000",
                                 (f"Route: <{rr}>",), to_tag="b1", cseq=2))[0]
    p.answer(bye, 200, "OK")


def test_an_answered_call_logs_one_line_per_transaction_in_kamailios_format(acc_lines):
    p = Phone(config())
    acc_lines()
    answered_call(p)
    lines = acc_lines()
    assert len(lines) == 2, lines
    ts = int(1765000000 + 1003)
    assert lines[0] == (f"ACC: transaction answered: timestamp={ts};method=INVITE;from_tag=a1;"
                        "to_tag=b1;call_id=call1;code=200;reason=OK;from=sip:alice@127.0.0.1;"
                        "to=sip:bob@127.0.0.1")
    assert lines[1].startswith("ACC: transaction answered: ") and ";method=BYE;" in lines[1]
    assert ";code=200;reason=OK;" in lines[1]


def test_a_cancelled_call_is_logged_missed_once_and_failed(acc_lines):
    p = Phone(config())
    acc_lines()
    invite = p.relayed(p.alice, req("INVITE", "c2", "i1"))[0]
    p.answer(invite, 180, "Ringing")
    cancel = p.relayed(p.alice, req("CANCEL", "c2", "i1"))
    assert cancel, "the CANCEL went to bob"
    p.answer(invite, 487, "Request Terminated")
    lines = acc_lines()
    assert [line.split(": ")[1] for line in lines] == ["call missed", "transaction answered"]
    assert all(";method=INVITE;" in x and ";code=487;reason=Request Terminated;" in x
               for x in lines)


def test_failed_filter_leaves_the_failed_line_out(acc_lines):
    p = Phone(config(FLAGS + 'modparam("acc", "failed_filter", "486,487")\n'))
    acc_lines()
    invite = p.relayed(p.alice, req("INVITE", "c3", "i1"))[0]
    p.answer(invite, 486, "Busy Here")
    lines = acc_lines()
    assert [line.split(": ")[1] for line in lines] == ["call missed"]


def test_no_flag_set_no_line(acc_lines):
    p = Phone(config(flags=""))
    acc_lines()
    answered_call(p)
    assert acc_lines() == []


def test_acc_log_request_logs_the_comment_as_code_and_reason(acc_lines):
    p = Phone(config(flags='if (method == "OPTIONS") { acc_log_request("403 No options"); '
                           'sl_send_reply("403", "No"); break; }'))
    acc_lines()
    p.send(p.alice, req("OPTIONS", "o1", "o1"))
    lines = acc_lines()
    assert len(lines) == 1 and lines[0].startswith("ACC: request accounted: timestamp=")
    assert ";method=OPTIONS;" in lines[0] and ";code=403;reason=No options;" in lines[0]


def test_nothing_is_hooked_into_tm_when_acc_has_nothing_to_do():
    p = Phone(config(modparams="", flags=""))
    assert p.core.tm.watchers == () and p.core.tm.dialogs is None


@pytest.mark.parametrize("param, value", [("log_flag", 32), ("log_missed_flag", -2),
                                          ("history_size", 0), ("failed_filter", '"4x6"'),
                                          ("log_level", 9)])
def test_a_bad_parameter_is_a_config_error(param, value):
    with pytest.raises(ConfigError, match="acc"):
        compile_config(config(f'modparam("acc", "{param}", {value})\n'), "t.cfg")


def test_the_history_keeps_each_call_with_its_result_and_duration(tmp_path):
    path = tmp_path / "calls"
    p = Phone(config(FLAGS + f'modparam("acc", "history_file", "{path}")\n'))
    answered_call(p, seconds=42.0)
    invite = p.relayed(p.alice, req("INVITE", "c5", "i5", from_tag="a5"))[0]
    p.answer(invite, 180, "Ringing")
    active = p.acc.calls(10, p.clock)["active"]
    assert [(c["call_id"], c["state"]) for c in active] == [("c5", "early")]
    p.answer(invite, 486, "Busy Here")
    # an INVITE challenged downstream is no call: the phone sends it again with credentials
    invite = p.relayed(p.alice, req("INVITE", "c6", "i6", from_tag="a6"))[0]
    p.answer(invite, 407, "Proxy Authentication Required")
    calls = p.acc.calls(10, p.clock)
    assert calls["active"] == []
    assert [(c["call_id"], c["result"], c["code"]) for c in calls["history"]] == \
        [("c5", "busy", 486), ("call1", "answered", 200)]
    first = calls["history"][1]
    assert first["duration"] == 42.0 and first["answer"] - first["start"] == 3.0
    assert first["caller"] == "sip:alice@127.0.0.1" and first["callee"] == "sip:bob@127.0.0.1"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["call_id"] for x in lines] == ["call1", "c5"]


def test_an_unanswered_call_whose_transaction_times_out_is_missed(tmp_path):
    path = tmp_path / "calls"
    p = Phone(config(FLAGS + f'modparam("acc", "history_file", "{path}")\n'))
    invite = p.relayed(p.alice, req("INVITE", "c7", "i7"))[0]
    p.answer(invite, 180, "Ringing")
    for _ in range(200):            # fr_inv_timer (120 s) and the 408's wait, 1 s at a time
        p.clock += 1.0
        p.loop.run_due(p.clock)
    hist = p.acc.calls(5, p.clock)["history"]
    assert [(c["call_id"], c["result"], c["code"]) for c in hist] == [("c7", "missed", 408)]


def test_a_call_in_progress_goes_on_across_a_reload_and_is_kept_once(tmp_path, acc_lines):
    path = tmp_path / "calls"
    text = config(FLAGS + f'modparam("acc", "history_file", "{path}")\n')
    p = Phone(text)
    invite = p.relayed(p.alice, req("INVITE", "r1", "i1"))[0]
    p.answer(invite, 200, "OK")
    old = p.core.script
    new = compile_config(text, str(SEED_CFG))        # SIGHUP: Server._start_script
    p.core.use_script(new)
    for name, module in new.modules.items():
        module.start(p.core, old.modules.get(name))
    p.acc = new.modules["acc"]
    assert [c["state"] for c in p.acc.calls(5, p.clock)["active"]] == ["confirmed"]
    acc_lines()
    p.clock += 10
    rr = re.search(rb"Record-Route: <([^>]*)>", invite).group(1).decode()
    bye = p.relayed(p.alice, req("BYE", "r1", "y1", "sip:bob@127.0.0.1:7000",
                                 (f"Route: <{rr}>",), to_tag="b1", cseq=2))[0]
    p.answer(bye, 200, "OK")
    assert len(acc_lines()) == 1                     # the old acc no longer hears tm
    hist = p.acc.calls(5, p.clock)["history"]
    assert [(c["call_id"], c["duration"]) for c in hist] == [("r1", 10.0)]
    assert len(path.read_text().splitlines()) == 1
    assert old.modules["tm"].watchers == ()


def test_a_failed_reload_leaves_the_running_config_its_call_log(tmp_path, acc_lines):
    """A reload whose modules fail to start after tm's (Server._start_script stops those
    that started): the running config's acc still hears tm, and its dialog tracker still
    ends calls, as before the reload."""
    path = tmp_path / "calls"
    text = config(FLAGS + f'modparam("acc", "history_file", "{path}")\n')
    p = Phone(text)
    invite = p.relayed(p.alice, req("INVITE", "f1", "i1"))[0]
    p.answer(invite, 200, "OK")
    old = p.core.script
    running_tm = old.modules["tm"]
    watchers = running_tm.watchers
    new = compile_config(text, str(SEED_CFG))
    p.core.use_script(new)
    new_tm = new.modules["tm"]
    new_tm.start(p.core, running_tm)        # ... and the next module's start raises:
    new_tm.stop()
    p.core.use_script(old)
    assert running_tm.watchers == watchers
    acc_lines()
    p.clock += 10
    rr = re.search(rb"Record-Route: <([^>]*)>", invite).group(1).decode()
    bye = p.relayed(p.alice, req("BYE", "f1", "y1", "sip:bob@127.0.0.1:7000",
                                 (f"Route: <{rr}>",), to_tag="b1", cseq=2))[0]
    p.answer(bye, 200, "OK")
    assert len(acc_lines()) == 1                    # the BYE's line: acc hears tm
    hist = p.acc.calls(5, p.clock)["history"]
    assert [(c["call_id"], c["duration"]) for c in hist] == [("f1", 10.0)]
    assert running_tm._dialog_timer is not None and not running_tm._dialog_timer.cancelled


@pytest.mark.parametrize("wan_open", ["0", "1"])
def test_the_shipped_configs_turn_the_call_log_and_history_on(wan_open):
    from pathlib import Path

    from serlite import uci
    from serlite.script.compiler import compile_file
    shipped = Path(__file__).resolve().parents[2] / "files" / "etc" / "ser" / "ser.cfg"
    generated = uci.generate(uci.parse(f"config ser 'main'\n\tlist interface 'lan'\n"
                                       f"\toption wan_open '{wan_open}'\n"),
                             {"lan": ["192.168.1.1/24"]})
    for script in (compile_file(str(shipped)), compile_config(generated, "uci.cfg")):
        params = script.modules["acc"].params
        assert params["history_file"] == "/etc/ser/calls"
        assert (params["log_flag"], params["log_missed_flag"],
                params["failed_transaction_flag"]) == (10, 11, 12)
    assert "setflag(10);" in generated and "setflag(11);" in generated


@pytest.mark.parametrize("param, value", [("dialog_timeout", 0), ("dialog_timeout", 10 ** 29),
                                          ("max_dialogs", 0)])
def test_tms_dialog_parameters_are_range_checked(param, value):
    with pytest.raises(ConfigError, match=param):
        compile_config(config(f'modparam("tm", "{param}", {value})\n'), "t.cfg")


def test_a_forked_call_is_one_call_answered_by_one_branch_and_hung_up_by_the_callee(
        tmp_path, acc_lines):
    path = tmp_path / "calls"
    p = Phone(config(FLAGS + f'modparam("acc", "history_file", "{path}")\n'))
    p.send(p.bob, req("REGISTER", "reg", "r2", "sip:127.0.0.1:5060",
                      ("Contact: <sip:bob@127.0.0.1:7001>", "Expires: 600"), cseq=2))
    sent = []
    orig = p.tr.send
    p.tr.send = lambda proto, ip, port, data, local=None, conn=None: (
        sent.append((port, data)), orig(proto, ip, port, data, local, conn))[1]
    p.send(p.alice, req("INVITE", "f1", "i1"))
    branches = {port: d for port, d in sent if port in (7000, 7001) and d.startswith(b"INV")}
    assert set(branches) == {7000, 7001}
    acc_lines()
    p.send(p.bob, resp(branches[7000], 180, "Ringing", "b1"))
    p.send(Source("udp", "127.0.0.1", 7001, p.tr.listeners[0]),
           resp(branches[7001], 180, "Ringing", "b2"))
    p.clock += 2
    p.send(Source("udp", "127.0.0.1", 7001, p.tr.listeners[0]),
           resp(branches[7001], 200, "OK", "b2"))
    p.send(p.bob, resp(branches[7000], 487, "Request Terminated", "b1"))   # the CANCELled one
    assert [c["state"] for c in p.acc.calls(5, p.clock)["active"]] == ["confirmed"]
    p.clock += 7
    # the callee hangs up: From and To swapped, its own tag in From
    rr = re.search(rb"Record-Route: <([^>]*)>", branches[7001]).group(1).decode()
    sent.clear()
    p.send(Source("udp", "127.0.0.1", 7001, p.tr.listeners[0]),
           ("BYE sip:alice@127.0.0.1:6001 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:7001;branch=z9hG4bK-bye2\r\nMax-Forwards: 70\r\n"
            f"Route: <{rr}>\r\nFrom: <sip:bob@127.0.0.1>;tag=b2\r\n"
            "To: \"Alice\" <sip:alice@127.0.0.1>;tag=a1\r\nCall-ID: f1\r\n"
            "CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n").encode())
    bye = [d for port, d in sent if port == 6001 and d.startswith(b"BYE")]
    assert bye, sent
    lines = acc_lines()
    assert len(lines) == 1 and ";code=200;" in lines[0] and ";to_tag=b2;" in lines[0]
    hist = p.acc.calls(5, p.clock)["history"]
    assert [(c["call_id"], c["result"], c["duration"]) for c in hist] == [("f1", "answered", 7.0)]
