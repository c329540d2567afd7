"""pua_dialoginfo in process: a real Core on the seed config with dialoginfo_set() on the
initial INVITE, the tracker fed by tm as calls pass, and what reaches the presence module's
local_publish (a recorder standing in for the presence module: its NOTIFYs are its own
tests').  The config checks: the presence module is needed, the side argument."""

import re
import sys
import types

import pytest

from test_acc import req, resp
from test_tm_shed import SEED_CFG, Transport

from serlite import modules
from serlite.control.stats import Stats
from serlite.loop import Loop
from serlite.modules.export import Module, ModuleSpec
from serlite.proxy.context import Source
from serlite.proxy.core import Core
from serlite.script.compiler import compile_config
from serlite.script.errors import ConfigError

_REGISTRAR = 'loadmodule "/usr/lib/ser/modules/registrar.so"\n'
ALICE, BOB = "sip:alice@127.0.0.1", "sip:bob@127.0.0.1"


class Recorder(Module):
    """The presence module's local_publish, recorded."""
    name = "presence"

    def __init__(self, params):
        super().__init__(params)
        self.published = []

    def local_publish(self, presentity, event, body, content_type, expires, source):
        self.published.append((presentity, event, body, content_type, expires, source))


@pytest.fixture
def presence(monkeypatch):
    fake = types.ModuleType("serlite.modules.presence")
    fake.EXPORTS = ModuleSpec(name="presence", factory=Recorder)
    monkeypatch.setitem(sys.modules, "serlite.modules.presence", fake)
    if "presence" not in modules.AVAILABLE:
        monkeypatch.setattr(modules, "AVAILABLE", modules.AVAILABLE + ("presence",))
    return fake


def config(call='dialoginfo_set()', params="", presence=True):
    text = SEED_CFG.read_text()
    load = ('loadmodule "/usr/lib/ser/modules/presence.so"\n' if presence else "") + \
        'loadmodule "/usr/lib/ser/modules/pua_dialoginfo.so"\n' + params
    text = text.replace(_REGISTRAR, _REGISTRAR + load)
    return text.replace("route {\n", 'route {\n    if (method == "INVITE" && !has_totag()) '
                        f'{{ {call}; }}\n', 1)


class Phones:
    """The proxy with bob registered at 127.0.0.1:7000 (and 7001 for a fork); alice calls
    from 127.0.0.1:6001."""

    def __init__(self, text, forks=1):
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
        self.presence = script.modules["presence"]
        self.alice = Source("udp", "127.0.0.1", 6001, self.tr.listeners[0])
        self.bob = Source("udp", "127.0.0.1", 7000, self.tr.listeners[0])
        for port in range(7000, 7000 + forks):
            self.send(self.bob, req("REGISTER", f"reg{port}", f"r{port}", "sip:127.0.0.1:5060",
                                    (f"Contact: <sip:bob@127.0.0.1:{port}>", "Expires: 600")))

    def send(self, source, data):
        self.core.receive(data, source)

    def invite(self, call_id="call1", extra=("Contact: <sip:alice@10.0.0.2:6001>",)):
        """alice's INVITE; the copies relayed to bob's phones, by port."""
        out = {}
        orig = self.tr.send

        def keep(proto, ip, port, data, local=None, conn=None):
            if not data.startswith(b"SIP/"):
                out[port] = data
            return orig(proto, ip, port, data, local, conn)
        self.tr.send = keep
        try:
            self.send(self.alice, req("INVITE", call_id, "i1", extra=extra))
        finally:
            self.tr.send = orig
        return out

    def docs(self, presentity):
        return [(re.findall(rb"<state[^>]*>[a-z]+</state>", p[2]), p[4])
                for p in self.presence.published if p[0] == presentity]


def states(docs):
    return [[s.decode() for s in doc] for doc, _ in docs]


def test_a_call_through_the_proxy_is_published_for_both_parties_in_order(presence):
    p = Phones(config())
    inv = p.invite()[7000]
    p.send(p.bob, resp(inv, 180, "Ringing", "b1"))
    p.send(p.bob, resp(inv, 200, "OK", "b1"))
    rr = re.search(rb"Record-Route: <([^>]*)>", inv).group(1).decode()
    p.send(p.alice, req("ACK", "call1", "k1", "sip:bob@127.0.0.1:7000", (f"Route: <{rr}>",),
                        to_tag="b1"))
    # bob hangs up: his BYE has the tags the other way round
    bye = (f"BYE sip:alice@127.0.0.1:6001 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:7000;"
           f"branch=z9hG4bK-bye\r\nMax-Forwards: 70\r\nRoute: <{rr}>\r\n"
           "From: <sip:bob@127.0.0.1>;tag=b1\r\nTo: \"Alice\" <sip:alice@127.0.0.1>;tag=a1\r\n"
           "Call-ID: call1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n").encode()
    p.send(p.bob, bye)
    assert states(p.docs(BOB)) == [['<state>early</state>'], ['<state>confirmed</state>'],
                                   ['<state event="local-bye">terminated</state>']]
    assert states(p.docs(ALICE)) == [['<state>trying</state>'], ['<state>early</state>'],
                                     ['<state>confirmed</state>'],
                                     ['<state event="remote-bye">terminated</state>']]
    first = [d for d in p.presence.published if d[0] == BOB][0]
    assert first[0] == BOB and first[1:2] == ("dialog",)
    assert first[3:] == ("application/dialog-info+xml", 43200, "pua_dialoginfo")
    body = first[2]
    assert b'version="0"' in body and b'entity="sip:bob@127.0.0.1"' in body
    # the caller, for a pick-up: name, address, Contact; the early dialog's tags
    assert b'<identity display="Alice">sip:alice@127.0.0.1</identity>' in body
    assert b'<target uri="sip:alice@10.0.0.2:6001"/>' in body
    assert b'call-id="call1" local-tag="b1" remote-tag="a1" direction="recipient"' in body
    assert p.presence.published[-1][4] == 10


def test_a_forked_call_shows_one_dialog_the_answering_phones(presence):
    p = Phones(config(), forks=2)
    sent = p.invite()
    assert set(sent) == {7000, 7001}
    p.send(p.bob, resp(sent[7000], 180, "Ringing", "f1"))
    p.send(p.bob, resp(sent[7001], 180, "Ringing", "f2"))
    p.send(p.bob, resp(sent[7001], 200, "OK", "f2"))
    docs = [d for d in p.presence.published if d[0] == BOB]
    assert len(docs) == 2 and all(d[2].count(b"<dialog ") == 1 for d in docs)
    assert b'local-tag="f1"' in docs[0][2] and b'local-tag="f2"' in docs[1][2]
    assert b"<state>confirmed</state>" in docs[1][2]


def test_a_cancelled_call_ends_cancelled(presence):
    p = Phones(config())
    inv = p.invite()[7000]
    p.send(p.bob, resp(inv, 180, "Ringing", "b1"))
    cancel = req("CANCEL", "call1", "i1").replace(b"CSeq: 1 CANCEL", b"CSeq: 1 CANCEL")
    p.send(p.alice, cancel)
    relayed_cancel = p.tr.last
    assert relayed_cancel.startswith(b"CANCEL ")
    p.send(p.bob, resp(inv, 487, "Request Terminated", "b1"))
    assert states(p.docs(BOB))[-1] == ['<state event="cancelled">terminated</state>']
    assert states(p.docs(ALICE))[-1] == ['<state event="cancelled">terminated</state>']


def test_a_rejected_call_ends_rejected_with_its_code(presence):
    p = Phones(config())
    inv = p.invite()[7000]
    p.send(p.bob, resp(inv, 486, "Busy Here", "b1"))
    assert states(p.docs(BOB)) == [['<state event="rejected" code="486">terminated</state>']]


def test_side_b_publishes_the_callee_only_and_a_foreign_caller_never(presence):
    p = Phones(config('dialoginfo_set("B")'))
    inv = p.invite()[7000]
    p.send(p.bob, resp(inv, 180, "Ringing", "b1"))
    assert {d[0] for d in p.presence.published} == {BOB}
    q = Phones(config())
    foreign = req("INVITE", "call2", "i2").replace(b"sip:alice@127.0.0.1",
                                                   b"sip:alice@provider.example")
    q.send(q.alice, foreign)
    assert {d[0] for d in q.presence.published} == set()    # bob's shows once it rings


def test_a_call_not_marked_is_not_published(presence):
    p = Phones(config("xlog(\"x\")".replace('xlog("x")', 'sl_send_reply("100", "x")')))
    inv = p.invite()[7000]
    p.send(p.bob, resp(inv, 180, "Ringing", "b1"))
    assert p.presence.published == []


def test_without_the_presence_module_the_config_is_refused():
    with pytest.raises(ConfigError) as e:
        compile_config(config(presence=False), "ser.cfg")
    assert "module 'pua_dialoginfo' needs module 'presence'" in str(e.value)


@pytest.mark.parametrize("bad", ['dialoginfo_set("C")', 'dialoginfo_set("")'])
def test_a_wrong_side_is_a_config_error(presence, bad):
    with pytest.raises(ConfigError) as e:
        compile_config(config(bad), "ser.cfg")
    assert 'side is "A"' in str(e.value)


def test_a_reload_keeps_the_calls_under_way(presence):
    p = Phones(config())
    inv = p.invite()[7000]
    p.send(p.bob, resp(inv, 180, "Ringing", "b1"))
    old = p.core.script.modules
    script = compile_config(config(), str(SEED_CFG))
    p.core.use_script(script)       # as Server._start_script: then the modules start
    for name, m in script.modules.items():
        m.start(p.core, old.get(name))
    p.send(p.bob, resp(inv, 200, "OK", "b1"))
    assert b"<state>confirmed</state>" in script.modules["presence"].published[-1][2]


def test_include_req_uri_names_the_callee_by_the_request_uri(presence):
    # the To names the number dialled (the front desk), the Request-URI the phone reached
    to_desk = req("INVITE", "call1", "i1").replace(b"To: <sip:bob@127.0.0.1>",
                                                   b"To: <sip:desk@127.0.0.1>")
    for params, callee in (("", "sip:desk@127.0.0.1"),
                           ('modparam("pua_dialoginfo", "include_req_uri", 1)\n', BOB)):
        p = Phones(config(params=params))
        p.send(p.alice, to_desk)
        inv = p.tr.last
        p.send(p.bob, resp(inv, 180, "Ringing", "b1"))
        assert [d[0] for d in p.presence.published] == [ALICE, ALICE, callee]


def test_a_caller_by_tel_uri_is_shown_but_not_published(presence):
    p = Phones(config())
    tel = req("INVITE", "call1", "i1").replace(b'"Alice" <sip:alice@127.0.0.1>',
                                               b"<tel:+4930123>")
    p.send(p.alice, tel)
    p.send(p.bob, resp(p.tr.last, 180, "Ringing", "b1"))
    assert [d[0] for d in p.presence.published] == [BOB]
    assert b"<identity>tel:+4930123</identity>" in p.presence.published[0][2]
