"""uac's parts without a network: tm's t_uac (a request of serlite's own, its
retransmissions, responses and timeout to a callback), the ;vsf= coding of
uac_replace_from and its restore in the dialog's requests, the credential modparam."""

import pytest

from serlite.loop import Loop
from serlite.modules import tm as tm_module
from serlite.modules._uac_replace import decode, encode, in_dialog_edits
from serlite.script.compiler import compile_config
from serlite.script.errors import ConfigError
from serlite.sip.message import parse
from serlite.sip.uri import URI


class Listener:
    proto, host, port = "udp", "192.0.2.1", 5060


class Stats:
    def request_out(self, method, size):
        pass


class Transport:
    def __init__(self):
        self.sent = []

    def send(self, proto, ip, port, data, listener):
        self.sent.append((ip, port, data))
        return True


class FakeCore:
    def __init__(self):
        self.loop = Loop()
        self.clock = 0.0
        self.loop.time = lambda: self.clock
        self.transport = Transport()
        self.stats = Stats()

    def now(self):
        return self.clock

    def resolve(self, host):
        return host if host[0].isdigit() else None

    def listener_for(self, proto, host):
        return Listener()

    def run_until(self, t):
        while self.clock < t:
            self.clock = round(self.clock + 0.01, 6)
            self.loop.run_due(self.clock)


def make_tm():
    params = {name: p.default for name, p in tm_module.EXPORTS.params.items()}
    tm = tm_module.Tm(params)
    core = FakeCore()
    tm.start(core)
    return tm, core


REST = (b"To: <sip:a@b>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\n"
        b"Content-Length: 0\r\n\r\n")


def test_t_uac_sends_retransmits_and_hands_the_response_to_the_callback():
    tm, core = make_tm()
    got = []
    branch = tm.t_uac("REGISTER", "sip:b", REST, ("udp", "203.0.113.9", 5060),
                      lambda status, msg: got.append((status, msg)))
    (ip, port, data), = core.transport.sent
    assert (ip, port) == ("203.0.113.9", 5060)
    assert data.startswith(b"REGISTER sip:b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch="
                           + branch.encode())
    core.run_until(0.6)                         # timer E: retransmitted after T1
    assert len(core.transport.sent) == 2
    reply = parse(f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n"
                  f"To: <sip:a@b>;tag=x\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c1\r\n"
                  f"CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n".encode())
    assert tm.on_reply(reply, None)
    assert [s for s, _ in got] == [200] and got[0][1] is reply
    core.run_until(40.0)                        # nothing more: no timeout after the answer
    assert [s for s, _ in got] == [200] and len(core.transport.sent) == 2


def test_t_uac_timeout_is_a_408_once():
    tm, core = make_tm()
    got = []
    tm.t_uac("REGISTER", "sip:b", REST, ("udp", "203.0.113.9", 5060),
             lambda status, msg: got.append((status, msg)))
    core.run_until(40.0)
    assert got == [(408, None)]
    assert len(tm.table.client) == 0


def test_t_uac_unresolvable_answers_from_the_loop_not_from_the_call():
    tm, core = make_tm()
    got = []
    tm.t_uac("REGISTER", "sip:b", REST, ("udp", "provider.invalid", 5060),
             lambda status, msg: got.append(status))
    assert got == []                            # not inside t_uac's own call
    core.run_until(0.05)
    assert got == [478]


def test_t_uac_a_failing_callback_does_not_break_tm():
    tm, core = make_tm()

    def broken(status, msg):
        raise RuntimeError("bug")
    tm.t_uac("REGISTER", "sip:b", REST, ("udp", "203.0.113.9", 5060), broken)
    core.run_until(40.0)                        # the 408 reaches it; tm goes on
    assert len(tm.table.client) == 0


@pytest.mark.parametrize("old,new", [("sip:alice@192.168.1.20", "sip:4930123@voip.example"),
                                     ("sip:a@b", "sip:a-much-longer-user@provider.example"),
                                     ("sip:a-much-longer-user@x.example", "sip:a@b")])
def test_vsf_gives_each_uri_from_the_other(old, new):
    value = encode(old, new)
    assert decode(value, old) == new and decode(value, new) == old
    assert "=" not in value and ";" not in value


def _request(from_, to):
    return parse((f"BYE sip:x@192.0.2.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK1\r\n"
                  f"From: {from_}\r\nTo: {to}\r\nCall-ID: c\r\nCSeq: 5 BYE\r\n"
                  f"Content-Length: 0\r\n\r\n").encode())


def test_in_dialog_restore_both_directions():
    old, new = "sip:alice@192.168.1.20", "sip:4930123@voip.example"
    route = URI.parse(f"sip:192.0.2.1;lr;ftag=t1;vsf={encode(old, new)}")
    # the caller's BYE carries its old From: it goes on with the new
    caller = _request(f"<{old}>;tag=t1", "<sip:bob@voip.example>;tag=t2")
    assert in_dialog_edits(caller, route, True) == [("From", f"<{new}>;tag=t1")]
    # the provider's BYE knows the caller by the new URI, in its To: the old one back
    callee = _request("<sip:bob@voip.example>;tag=t2", f"<{new}>;tag=t1")
    assert in_dialog_edits(callee, route, False) == [("To", f"<{old}>;tag=t1")]
    # a forged value that decodes to no URI changes nothing
    bad = URI.parse("sip:192.0.2.1;lr;ftag=t1;vsf=AAAA")
    assert in_dialog_edits(caller, bad, True) == []


def test_credential_is_repeatable_and_checked():
    base = 'loadmodule "sl.so"\nloadmodule "tm.so"\nloadmodule "uac.so"\n'
    script = compile_config(base + 'modparam("uac", "credential", "a:r1:p1")\n'
                                   'modparam("uac", "credential", "b:r2:p:w")\n'
                                   'route { t_relay(); }\n', "t.cfg")
    assert script.modules["uac"].credentials == {"r1": ("a", "p1", False),
                                                 "r2": ("b", "p:w", False)}
    with pytest.raises(ConfigError):
        compile_config(base + 'modparam("uac", "credential", "nocolons")\n'
                              'route { t_relay(); }\n', "t.cfg")


def test_in_dialog_restore_of_a_replaced_to():
    old, new = "sip:0301234567@voip.example", "sip:+49301234567@voip.example"
    route = URI.parse(f"sip:192.0.2.1;lr;ftag=t1;vst={encode(old, new)}")
    # the caller's requests carry the To it dialled: on with the new one
    caller = _request("<sip:alice@192.168.1.20>;tag=t1", f"<{old}>;tag=t2")
    assert in_dialog_edits(caller, route, True) == [("To", f"<{new}>;tag=t2")]
    # the callee's carry the new one as their From: back to what the caller dialled
    callee = _request(f"<{new}>;tag=t2", "<sip:alice@192.168.1.20>;tag=t1")
    assert in_dialog_edits(callee, route, False) == [("From", f"<{old}>;tag=t2")]
