"""tm's early shedding: while the transport reports its UDP receive buffer fuller than
``shed_backlog``, a new INVITE/REGISTER/... gets 503 before the script; a retransmission, an
in-dialog request and an OPTIONS still go their usual way.  A real Core on the seed config with
a transport that records what it would send (tests/e2e/test_overload.py does it over UDP)."""

from pathlib import Path

import pytest

from serlite.control.stats import Stats
from serlite.loop import Loop
from serlite.proxy.context import Source
from serlite.proxy.core import Core
from serlite.script.compiler import compile_config

SEED_CFG = Path(__file__).resolve().parents[1] / "data" / "configs" / "valid" / "seed.cfg"
_USRLOC = 'modparam("usrloc", "db_mode", 0)'


def seed_with(modparams):
    """SER's seed config as shipped in tests/data, with tm parameters added."""
    text = SEED_CFG.read_text()
    assert _USRLOC in text
    return text.replace(_USRLOC, f'{_USRLOC}\nmodparam("tm", "retry_after", 9)\n{modparams}')


class Listener:
    proto, family, ip, host, port = "udp", 2, "127.0.0.1", "127.0.0.1", 5060
    name = "udp:127.0.0.1:5060"
    backlog = 0.0       # how full its receive buffer was after the last read (tests set it)


class Transport:
    def __init__(self):
        self.sent = []              # (ip, port, first line)
        self.last = b""             # the last message sent, whole
        self.listeners = [Listener()]
        self.connections = {}

    def send(self, proto, ip, port, data, local=None, conn=None):
        self.sent.append((ip, port, data.split(b"\r\n", 1)[0].decode()))
        self.last = data
        return True

    def listener_for(self, proto, family, ip=None):
        return self.listeners[0]


def request(method, call_id, branch, *, to_tag=None, cseq=1, user="bob", extra=()):
    lines = [f"{method} sip:{user}@127.0.0.1:5060 SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-{branch}",
             "Max-Forwards: 70",
             "From: <sip:alice@127.0.0.1>;tag=a1",
             f"To: <sip:{user}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
             f"Call-ID: {call_id}",
             f"CSeq: {cseq} {method}",
             *extra,
             "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def seed_core(modparams="", clock=lambda: 1000.0):
    """A started Core on the seed config (plus ``modparams``), its loop reading ``clock``:
    (loop, transport, core)."""
    loop = Loop()
    loop.time = clock
    tr = Transport()
    core = Core(loop, tr, Stats(0))
    core.set_identity(tr.listeners, [])
    script = compile_config(seed_with(modparams), str(SEED_CFG))
    core.use_script(script)
    for m in script.modules.values():
        m.start(core, None)
    return loop, tr, core


@pytest.fixture
def server():
    def make(modparams=""):
        _, tr, core = seed_core(modparams)
        src = Source("udp", "127.0.0.1", 6001, tr.listeners[0])
        core.receive(request("REGISTER", "reg1", "r1", extra=(
            "Contact: <sip:bob@127.0.0.1:7000>", "Expires: 600")), src)
        assert tr.sent[-1][2].startswith("SIP/2.0 200"), tr.sent
        tr.sent.clear()

        def receive(data):
            core.receive(data, src)
            sent, tr.sent[:] = list(tr.sent), []
            return sent
        return tr, core, receive
    return make


def test_behind_a_new_invite_gets_503_and_reaches_no_one(server):
    tr, core, receive = server()
    tr.listeners[0].backlog = 0.9
    sent = receive(request("INVITE", "c1", "i1"))
    assert [(port, line) for _, port, line in sent] == [(6001, "SIP/2.0 503 Service Unavailable")]
    assert b"\r\nRetry-After: 9\r\n" in tr.last
    assert core.stats.counters.get("shed") == 1
    assert core.tm.unanswered == 0 and not core.tm.table.server


@pytest.mark.parametrize("method", ["REGISTER", "SUBSCRIBE", "MESSAGE", "PUBLISH"])
def test_behind_other_new_work_is_shed_too(server, method):
    tr, _, receive = server()
    tr.listeners[0].backlog = 0.9
    sent = receive(request(method, "c2", "m1"))
    assert [line for _, _, line in sent] == ["SIP/2.0 503 Service Unavailable"]


def test_below_shed_backlog_a_new_invite_is_relayed(server):
    tr, _, receive = server()
    tr.listeners[0].backlog = 0.4
    sent = receive(request("INVITE", "c1", "i1"))
    assert [(port, line.split()[0]) for _, port, line in sent] == [(6001, "SIP/2.0"),
                                                                     (7000, "INVITE")]


def test_only_requests_on_the_socket_that_is_behind_are_shed(server):
    # The WAN socket is flooded, the LAN socket is read empty: the house's phone still gets
    # its call through; a new call on the flooded socket gets 503.
    tr, core, receive = server()
    wan = tr.listeners[0]
    lan = Listener()
    lan.ip = lan.host = "192.168.1.1"
    wan.backlog = 0.9
    lan.backlog = 0.0
    core.receive(request("INVITE", "c5", "i5"), Source("udp", "192.168.1.20", 6001, lan))
    sent, tr.sent[:] = list(tr.sent), []
    assert [(port, line.split()[0]) for _, port, line in sent] == [(6001, "SIP/2.0"),
                                                                     (7000, "INVITE")]
    assert "503" not in sent[0][2]
    sent = receive(request("INVITE", "c6", "i6"))
    assert [line for _, _, line in sent] == ["SIP/2.0 503 Service Unavailable"]


def test_a_retransmission_is_absorbed_not_shed(server):
    tr, _, receive = server()
    receive(request("INVITE", "c1", "i1"))          # taken while caught up: 100, relayed
    tr.listeners[0].backlog = 0.9
    sent = receive(request("INVITE", "c1", "i1"))   # its retransmission: the 100 again
    assert [line for _, _, line in sent] == ["SIP/2.0 100 Trying"]


def test_in_dialog_requests_and_options_go_on(server):
    tr, _, receive = server()
    tr.listeners[0].backlog = 0.9
    reinvite = request("INVITE", "c3", "i3", to_tag="b1", cseq=2,
                       extra=("Route: <sip:127.0.0.1:5060;lr>",))
    assert "503" not in " ".join(line for _, _, line in receive(reinvite))
    options = request("OPTIONS", "c4", "o1")
    assert "503" not in " ".join(line for _, _, line in receive(options))


def test_shed_backlog_0_never_sheds(server):
    tr, _, receive = server('modparam("tm", "shed_backlog", 0)')
    tr.listeners[0].backlog = 1.0
    sent = receive(request("INVITE", "c1", "i1"))
    assert [port for _, port, _ in sent] == [6001, 7000]
