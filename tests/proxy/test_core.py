"""proxy/core.py as a unit: a real Core on a small stateless script, a transport that records
what it would send (tests/modules/test_tm_shed.py's), a clock the test sets.  The receive path
(RFC 3261 16.3 checks, 18.1.2 responses not ours), the stateless forward (16.6, 16.11), replies
to the Via (18.2.2, RFC 3581), is_myself (16.4) and next_hop (16.6 steps 6-7)."""

import pytest

from serlite.control.stats import Stats
from serlite.loop import Loop
from serlite.proxy.context import Source
from serlite.proxy.core import Core
from serlite.sip.message import parse
from serlite.script.compiler import compile_config
from tests.modules.test_tm_shed import Listener, Transport, request

STATELESS = """
loadmodule "sl"
alias="proxy.example.org"
route {
    if (method == "OPTIONS" && uri == myself) { sl_send_reply("200", "OK"); exit; }
    forward();
}
onreply_route { }
"""


class Clock:
    """The loop's monotonic clock, moved by the test."""
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


class Recorder(Transport):
    """test_tm_shed's transport, also noting the protocol and address of each send."""
    def __init__(self):
        super().__init__()
        self.to = []

    def send(self, proto, ip, port, data, local=None, conn=None):
        self.to.append((proto, ip, port))
        return super().send(proto, ip, port, data, local, conn)


def make_core(clock=None):
    """A started Core on STATELESS with a Recorder: (loop, transport, core)."""
    loop = Loop()
    loop.time = clock or Clock()
    tr = Recorder()
    core = Core(loop, tr, Stats(0))
    core.set_identity(tr.listeners, ["proxy.example.org", "[::1]:5070"])
    script = compile_config(STATELESS, "test.cfg")
    core.use_script(script)
    for m in script.modules.values():
        m.start(core, None)
    return loop, tr, core


@pytest.fixture
def proxy():
    loop, tr, core = make_core()
    yield tr, core
    loop.close()


def src(ip="127.0.0.1", port=6001, proto="udp"):
    return Source(proto, ip, port, Listener())


def test_options_to_myself_is_answered_to_the_via(proxy):
    tr, core = proxy
    core.receive(request("OPTIONS", "o1", "o1", user="x"), src())
    assert tr.sent == [("127.0.0.1", 6001, "SIP/2.0 200 OK")]
    reply = parse(tr.last)
    assert reply.call_id == "o1" and reply.to.tag.startswith(core.tag_prefix)
    assert reply.top_via.branch == "z9hG4bK-o1"


def test_a_reply_goes_to_received_and_rport_not_the_via_host(proxy):
    # RFC 3581 4 / RFC 3261 18.2.2: the Via names 127.0.0.1:6001, the request came from
    # 127.0.0.7:7777 with ;rport: the answer goes where it came from
    tr, core = proxy
    data = request("OPTIONS", "o2", "o2").replace(b";branch=", b";rport;branch=")
    core.receive(data, src("127.0.0.7", 7777))
    assert tr.to == [("udp", "127.0.0.7", 7777)]
    via = parse(tr.last).top_via
    assert via.received == "127.0.0.7" and via.rport == "7777"


def test_a_request_from_another_address_gets_received_but_keeps_its_port(proxy):
    tr, core = proxy
    core.receive(request("OPTIONS", "o3", "o3"), src("127.0.0.8", 9999))
    # no rport: received= only, and a UDP reply goes to received:Via port (18.2.2)
    assert tr.to == [("udp", "127.0.0.8", 6001)]


def test_stateless_forward_adds_our_via_and_counts_down_max_forwards(proxy):
    tr, core = proxy
    data = request("INVITE", "c1", "i1", user="bob").replace(
        b"sip:bob@127.0.0.1:5060 SIP/2.0", b"sip:bob@127.0.0.3:5080 SIP/2.0")
    core.receive(data, src())
    assert [(ip, port, line) for ip, port, line in tr.sent] == [
        ("127.0.0.3", 5080, "INVITE sip:bob@127.0.0.3:5080 SIP/2.0")]
    out = parse(tr.last)
    vias = out.values("Via")
    assert len(vias) == 2 and vias[0].startswith("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK")
    assert out.max_forwards == 69
    # 16.11: the same request again gets the same branch (a retransmission)
    first = out.top_via.branch
    core.receive(data, src())
    assert parse(tr.last).top_via.branch == first


def test_max_forwards_zero_is_refused_with_483(proxy):
    tr, core = proxy
    data = request("INVITE", "c2", "i2").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    data = data.replace(b"127.0.0.1:5060 SIP/2.0", b"127.0.0.3:5080 SIP/2.0")
    core.receive(data, src())
    assert tr.sent == [("127.0.0.1", 6001, "SIP/2.0 483 Too Many Hops")]


def test_proxy_require_is_refused_with_420_naming_it(proxy):
    tr, core = proxy
    data = request("INVITE", "c3", "i3", extra=("Proxy-Require: foo",)).replace(
        b"127.0.0.1:5060 SIP/2.0", b"127.0.0.3:5080 SIP/2.0")
    core.receive(data, src())
    assert tr.sent == [("127.0.0.1", 6001, "SIP/2.0 420 Bad Extension")]
    assert parse(tr.last).values("Unsupported") == ["foo"]


def test_an_unparsable_request_gets_400_to_its_source_a_response_nothing(proxy):
    tr, core = proxy
    bad = request("INVITE", "c4", "i4").replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE")
    core.receive(bad, src("127.0.0.9", 6009))
    assert len(tr.sent) == 1 and tr.sent[0][:2] == ("127.0.0.9", 6009)
    assert tr.sent[0][2].startswith("SIP/2.0 400")
    assert core.stats.counters.get("drop_invalid") == 1
    tr.sent.clear()
    core.receive(b"SIP/2.0 200 OK\r\nVia: junk\r\n\r\n", src())
    assert tr.sent == []


def response(via_host, via_port, *, below=True):
    lines = ["SIP/2.0 200 OK",
             f"Via: SIP/2.0/UDP {via_host}:{via_port};branch=z9hG4bK-ours"]
    if below:
        lines.append("Via: SIP/2.0/UDP 127.0.0.4:6004;received=127.0.0.5;rport=6005"
                     ";branch=z9hG4bK-up")
    lines += ["From: <sip:alice@127.0.0.1>;tag=a1", "To: <sip:bob@127.0.0.1>;tag=b1",
              "Call-ID: r1", "CSeq: 1 INVITE", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_response_goes_up_to_the_next_via_received_and_rport(proxy):
    tr, core = proxy
    core.receive(response("127.0.0.1", 5060), src("127.0.0.3", 5080))
    assert tr.sent == [("127.0.0.5", 6005, "SIP/2.0 200 OK")]
    assert parse(tr.last).values("Via") == [
        "SIP/2.0/UDP 127.0.0.4:6004;received=127.0.0.5;rport=6005;branch=z9hG4bK-up"]


def test_a_response_whose_top_via_is_not_ours_is_dropped(proxy):
    tr, core = proxy
    core.receive(response("127.0.0.1", 5999), src("127.0.0.3", 5080))
    core.receive(response("10.9.9.9", 5060), src("127.0.0.3", 5080))
    assert tr.sent == []
    assert core.stats.counters.get("drop_not_ours") == 2


def test_a_response_with_no_via_below_ours_goes_nowhere(proxy):
    tr, core = proxy
    core.receive(response("127.0.0.1", 5060, below=False), src("127.0.0.3", 5080))
    assert tr.sent == []


@pytest.mark.parametrize("host, port, mine", [
    ("127.0.0.1", 5060, True), ("127.0.0.1", None, True), ("127.0.0.1", 5061, False),
    ("PROXY.example.org", None, True), ("proxy.example.org", 5060, True),
    ("proxy.example.org", 5061, False), ("[::1]", 5070, True), ("[0:0::1]", 5070, True),
    ("[::1]", 5060, False), ("127.0.0.2", 5060, False), ("example.org", None, False)])
def test_is_myself(proxy, host, port, mine):
    _, core = proxy
    assert core.is_myself(host, port) is mine
    assert core.is_myself(host, port) is mine       # the cached answer is the same


def test_is_myself_uri_takes_text_and_refuses_what_does_not_parse(proxy):
    _, core = proxy
    assert core.is_myself_uri("sip:bob@proxy.example.org")
    assert not core.is_myself_uri("sip:bob@example.org")
    assert not core.is_myself_uri("sip:bob@[::1")
    assert not core.is_myself_uri(None)


def test_next_hop_is_destination_then_first_route_then_ruri(proxy):
    _, core = proxy
    plain = parse(request("INVITE", "n1", "n1"))
    assert core.next_hop(plain, "sip:bob@127.0.0.3:5080") == ("udp", "127.0.0.3", 5080)
    routed = parse(request("INVITE", "n2", "n2", extra=(
        "Route: <sip:127.0.0.6;transport=tcp;lr>, <sip:127.0.0.7;lr>",)))
    assert core.next_hop(routed, "sip:bob@127.0.0.3") == ("tcp", "127.0.0.6", 5060)
    assert core.next_hop(routed, "sip:bob@127.0.0.3", "sips:127.0.0.8") == (
        "tls", "127.0.0.8", 5061)


def test_the_clock_is_the_loops(proxy):
    _, core = proxy
    core.loop.time.now = 1234.5
    assert core.now() == 1234.5


def test_a_source_filter_drops_before_parsing(proxy):
    tr, core = proxy
    core.add_source_filter(lambda source: source.ip == "127.0.0.66")
    core.receive(b"not sip at all", src("127.0.0.66"))
    assert tr.sent == [] and core.stats.counters.get("drop_filtered") == 1
    assert core.stats.counters.get("drop_invalid") is None
