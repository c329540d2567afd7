"""rtpproxy with an external relay (rtpproxy_sock), in process: the hold (proxy/hold.py) in
tm and the core -- a message whose SDP waits for the relay's answer is not sent, everything
else goes on -- with the relay's control socket replaced by a stand-in whose commands the
test answers (no sockets, no clock); and serlite.extrelay's retransmissions and cookie
matching on a fake clock, the relay a UDP socket of the test."""

import re
import socket

import pytest
from test_rtpproxy import MANAGE, Proxy, media, req, resp, sdp

from serlite.control.stats import Stats
from serlite.extrelay import ExternalRelay
from serlite.media import rtpp
from serlite.proxy.context import Context, Source
from serlite.proxy.hold import hold

EXTERNAL = MANAGE % ('modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1:9")\n'
                     'modparam("rtpproxy", "rtpproxy_retr", 2)')


class Commands:
    """Stands in for ExternalRelay: keeps each command and its callback for the test to
    answer."""

    ip = "127.0.0.1"

    def __init__(self):
        self.commands = []
        self.up = True

    def usable(self):
        return self.up

    def send(self, build, callback):
        if not self.up:
            return False
        self.commands.append([build(f"k{len(self.commands)}").decode(), callback])
        return True

    def text(self, i):
        return self.commands[i][0]

    def answer(self, i, reply):
        self.commands[i][1](None if reply is None else reply.encode().split())

    def close(self):
        pass


@pytest.fixture
def ext():
    made = []

    def make(text=EXTERNAL):
        p = Proxy(text)
        module = p.core.module("rtpproxy")
        module.external.close()     # the real socket: this test answers for the relay
        module.external = p.ext = Commands()
        made.append(p)
        return p
    yield make
    for p in made:
        p.loop.close()


def sent(p, port):
    return [d for to, d in p.tr.sent if to == port]


def test_the_invite_waits_for_the_relay_and_goes_rewritten(ext):
    p = ext()
    tm = p.core.module("tm")
    invite = req("INVITE", "c1", "i1", body=sdp("192.168.1.50", 4000))
    assert p.send(p.alice, invite, 7000) == []                  # held ...
    assert [d.split(b"\r\n")[0] for d in sent(p, 6001)] == [b"SIP/2.0 100 Trying"]
    assert not tm.table.client                                  # no client transaction yet
    # without flag r: the SIP source's address, the SDP's port
    assert p.ext.text(0) == "k0 U c1 127.0.0.9 4000 a1;1"
    # ... a retransmission is absorbed (100 again), nothing new goes to the relay
    assert p.send(p.alice, invite, 7000) == []
    assert [d.split(b"\r\n")[0] for d in sent(p, 6001)] == [b"SIP/2.0 100 Trying"]
    assert len(p.ext.commands) == 1
    p.tr.sent.clear()
    p.ext.answer(0, "30000 203.0.113.1 4")
    out, = sent(p, 7000)
    assert media(out) == ("203.0.113.1", 30000) and b"a=rtcp" not in out
    assert len(tm.table.client) == 1                            # started when it went
    # the answer waits too: a 183 with SDP, then a 180 without, go up in that order
    p.tr.sent.clear()
    p.core.receive(resp(out, 183, "Session Progress", body=sdp("127.0.0.1", 8000)), p.bob)
    p.core.receive(resp(out, 180, "Ringing"), p.bob)
    assert sent(p, 6001) == []
    assert p.ext.text(1) == "k1 L c1 127.0.0.1 8000 a1;1 b1;1"
    p.ext.answer(1, "30002 198.51.100.1 4")
    up = sent(p, 6001)
    assert [d.split(b"\r\n")[0] for d in up] == [b"SIP/2.0 183 Session Progress",
                                                 b"SIP/2.0 180 Ringing"]
    assert media(up[0]) == ("198.51.100.1", 30002)
    # the 200: the server transaction keeps the rewritten one for retransmissions
    p.tr.sent.clear()
    p.core.receive(resp(out, 200, "OK", body=sdp("127.0.0.1", 8000)), p.bob)
    assert sent(p, 6001) == []
    p.ext.answer(2, "30002 198.51.100.1 4")
    ok, = sent(p, 6001)
    assert media(ok) == ("198.51.100.1", 30002)
    # the BYE deletes the session and waits for nothing
    rr = re.search(rb"Record-Route: <([^>]*)>", out).group(1).decode()
    bye = p.send(p.alice, req("BYE", "c1", "y1", to_tag="b1", cseq=2, route=rr), 7000)
    assert len(bye) == 1 and p.ext.text(3) == "k3 D c1 a1 b1"
    assert p.core.module("rtpproxy").calls == {}


def test_a_relay_that_fails_lets_the_message_go_unchanged(ext):
    p = ext()
    body = sdp("192.168.1.50", 4000)
    assert p.send(p.alice, req("INVITE", "f1", "i1", body=body), 7000) == []
    p.ext.answer(0, None)                   # no answer after its tries
    out, = sent(p, 7000)
    assert out.endswith(body)
    assert p.core.stats.counters["rtpp_unrelayed"] == 1
    p.tr.sent.clear()
    p.core.receive(req("INVITE", "f2", "i2", body=body), p.alice)
    p.ext.answer(1, "E8")                   # the relay said no
    out, = sent(p, 7000)
    assert out.endswith(body) and p.core.stats.counters["rtpp_errors"] == 1
    # an answer the relay knows no call for (a call it does not carry): no fault, not counted
    p.tr.sent.clear()
    invite = req("INVITE", "f4", "i4", body=body)
    p.ext.up = False                    # the INVITE went on unrelayed (counted)
    p.core.receive(invite, p.alice)
    p.ext.up = True
    out, = sent(p, 7000)
    p.tr.sent.clear()
    p.core.receive(resp(out, 200, "OK", body=sdp("127.0.0.1", 8000)), p.bob)
    p.ext.answer(2, "0 0.0.0.0")
    ok, = sent(p, 6001)
    assert media(ok) == ("127.0.0.1", 8000)
    assert p.core.stats.counters["rtpp_unrelayed"] == 3
    # a relay left alone after a failure: nothing waits at all
    p.ext.up = False
    out, = p.send(p.alice, req("INVITE", "f3", "i3", body=body), 7000)
    assert out.endswith(body) and p.core.stats.counters["rtpp_unrelayed"] == 4


def test_a_rejected_call_deletes_the_whole_session(ext):
    p = ext()
    p.send(p.alice, req("INVITE", "r1", "i1", body=sdp("192.168.1.50", 4000)), 7000)
    p.ext.answer(0, "30000 203.0.113.1 4")
    out, = sent(p, 7000)
    p.core.receive(resp(out, 486, "Busy Here", tag="b7"), p.bob)
    # not "D r1 a1 b7": the relay never heard of the branch b7 and would delete nothing
    # (the onreply_route's and the failure_route's rtpproxy_manage() each send one, as
    # Kamailio's would)
    assert [c.split(" ", 1)[1] for c, _ in p.ext.commands[1:]] == ["D r1 a1", "D r1 a1"]


def test_a_cancel_while_the_invite_waits_sends_nothing_down(ext):
    p = ext()
    p.send(p.alice, req("INVITE", "x1", "i1", body=sdp("192.168.1.50", 4000)), 7000)
    p.tr.sent.clear()
    p.core.receive(req("CANCEL", "x1", "i1"), p.alice)
    assert [d.split(b"\r\n")[0] for d in sent(p, 6001)] == [b"SIP/2.0 200 OK"]
    assert p.ext.text(1) == "k1 D x1 a1"
    p.tr.sent.clear()
    p.ext.answer(0, "30000 203.0.113.1 4")
    assert sent(p, 7000) == []
    assert [d.split(b"\r\n")[0] for d in sent(p, 6001)] == [b"SIP/2.0 487 Request Terminated"]


def test_a_late_offer_and_the_ack_that_answers_it(ext):
    p = ext()
    invite, = p.send(p.alice, req("INVITE", "l1", "i-l1"), 7000)    # no SDP: at once
    assert p.ext.commands == []
    p.tr.sent.clear()
    p.core.receive(resp(invite, 200, "OK", body=sdp("127.0.0.1", 8000)), p.bob)
    assert sent(p, 6001) == []
    # the offer comes from the callee: its tag first
    assert p.ext.text(0) == "k0 U l1 127.0.0.1 8000 b1;1 a1;1"
    p.ext.answer(0, "30004 198.51.100.1 4")
    ok, = sent(p, 6001)
    assert media(ok) == ("198.51.100.1", 30004)
    rr = re.search(rb"Record-Route: <([^>]*)>", invite).group(1).decode()
    ack = req("ACK", "l1", "k-l1", body=sdp("192.168.1.50", 4000), to_tag="b1", route=rr)
    assert p.send(p.alice, ack, 7000) == []        # the stateless forward waits too
    assert p.ext.text(1) == "k1 L l1 127.0.0.9 4000 b1;1 a1;1"
    p.ext.answer(1, "30006 203.0.113.1 4")
    out, = sent(p, 7000)
    assert media(out) == ("203.0.113.1", 30006)


BRANCH = """
loadmodule "sl"
loadmodule "tm"
loadmodule "rr"
loadmodule "rtpproxy"
modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1:9")
route {
    if (method == "INVITE") { record_route(); t_on_branch("1"); }
    t_relay();
}
branch_route[1] { rtpproxy_manage("ie"); }
"""


def test_a_branch_routes_offer_holds_that_branch(ext):
    p = ext(BRANCH)
    assert p.send(p.alice, req("INVITE", "b1", "i1", body=sdp("192.168.1.50", 4000)),
                  7000) == []
    assert p.ext.text(0) == "k0 UIE b1 127.0.0.9 4000 a1;1"
    assert not p.core.module("tm").table.client
    p.tr.sent.clear()
    p.ext.answer(0, "30008 203.0.113.9 4")
    out, = sent(p, 7000)
    assert media(out) == ("203.0.113.9", 30008)
    assert len(p.core.module("tm").table.client) == 1


def test_flags_become_the_commands_modifiers(ext):
    p = ext((EXTERNAL.replace('rtpproxy_manage(); }\n    t_relay',
                              'rtpproxy_manage("ier"); }\n    t_relay')))
    p.send(p.alice, req("INVITE", "m1", "i1", body=sdp("192.168.1.50", 4000)), 7000)
    # r: the SDP's address is trusted
    assert p.ext.text(0) == "k0 UIE m1 192.168.1.50 4000 a1;1"


def test_sighup_keeps_the_relays_socket_unless_it_names_another():
    from test_rtpproxy import compile_config
    p = Proxy(EXTERNAL)
    old = p.core.module("rtpproxy")
    ext = old.external
    for text, same in ((EXTERNAL.replace("rtpproxy_retr\", 2", "rtpproxy_retr\", 3"), True),
                       (EXTERNAL.replace("127.0.0.1:9", "127.0.0.1:7"), False)):
        script = compile_config(text, "test.cfg")
        previous = p.core.script
        p.core.use_script(script)
        for m in script.modules.values():
            m.start(p.core, previous.modules.get(m.name))
        new = script.modules["rtpproxy"]
        assert (new.external is ext) == same
        if same:
            assert ext.tries == 3 and ext.sock is not None
        else:
            assert ext.sock is None and str(new.external) == "udp:127.0.0.1:7"
    new.stop()
    p.loop.close()


def test_the_hold_runs_its_sends_once_everything_is_released():
    ctx = Context(None, None, None)
    first, second = hold(ctx), hold(ctx)
    assert first is second and ctx.hold is first
    ran = []
    ctx.hold.then(lambda: ran.append("a"))
    ctx.hold.then(lambda: 1 / 0)                # one failing send keeps no other back
    ctx.hold.then(lambda: ran.append("b"))
    first.release()
    assert ran == [] and ctx.hold is first
    second.release()
    assert ran == ["a", "b"] and ctx.hold is None


# -- serlite.extrelay: retransmissions, cookies, a relay that is not there ---------------------
class FakeLoop:
    """The loop's clock and timers, turned by the test; readers are kept, not polled."""

    def __init__(self):
        self.now = 100.0
        self.timers = []
        self.readers = {}

    def time(self):
        return self.now

    def call_at(self, when, callback, *args):
        timer = _Timer(when, callback, args)
        self.timers.append(timer)
        return timer

    def call_later(self, delay, callback, *args):
        return self.call_at(self.now + delay, callback, *args)

    def add_reader(self, fd, callback):
        self.readers[fd] = callback

    def remove_reader(self, fd):
        del self.readers[fd]

    def advance(self, seconds):
        self.now += seconds
        due = [t for t in self.timers if t.when <= self.now and not t.cancelled]
        self.timers = [t for t in self.timers if t not in due]
        for t in due:
            t.callback(*t.args)


class _Timer:
    def __init__(self, when, callback, args):
        self.when, self.callback, self.args, self.cancelled = when, callback, args, False

    def cancel(self):
        self.cancelled = True


@pytest.fixture
def relay_sock():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


def test_a_command_is_sent_again_each_timeout_then_given_up(relay_sock):
    loop, stats = FakeLoop(), Stats(0)
    port = relay_sock.getsockname()[1]
    ext = ExternalRelay(loop, stats, rtpp.parse_sock(f"udp:127.0.0.1:{port}"), 1, 3, 60)
    got = []
    assert ext.send(lambda c: rtpp.delete(c, "call", "tag"), got.append)
    first = relay_sock.recv(100)
    assert first.endswith(b" D call tag")
    loop.advance(0.9)
    loop.advance(0.2)                               # 1 s: the second try, the same cookie
    assert relay_sock.recv(100) == first
    loop.advance(1.0)
    assert relay_sock.recv(100) == first and got == []
    loop.advance(1.0)                               # three tries: given up
    assert got == [None] and stats.counters["rtpp_timeouts"] == 1
    assert stats.counters["rtpp_retransmissions"] == 2
    # left alone for rtpproxy_disable_tout: nothing is sent, the caller goes on at once
    assert not ext.send(lambda c: rtpp.version(c), got.append)
    loop.advance(60)
    assert ext.send(lambda c: rtpp.version(c), got.append)
    ext.close()
    assert got == [None, None]                      # closing fails what is in flight


def test_replies_are_matched_by_cookie(relay_sock):
    loop, stats = FakeLoop(), Stats(0)
    port = relay_sock.getsockname()[1]
    ext = ExternalRelay(loop, stats, rtpp.parse_sock(f"udp:127.0.0.1:{port}"), 1, 3, 60)
    got = []
    ext.send(lambda c: rtpp.version(c), lambda t: got.append(("v", t)))
    ext.send(lambda c: rtpp.capability(c), lambda t: got.append(("vf", t)))
    v, where = relay_sock.recvfrom(100)
    vf, _ = relay_sock.recvfrom(100)
    relay_sock.sendto(vf.split()[0] + b" 1\n", where)
    relay_sock.sendto(b"stranger 2\n", where)       # no such cookie: ignored
    relay_sock.sendto(v.split()[0] + b" 20040107\n", where)
    relay_sock.sendto(v.split()[0] + b" 20040107\n", where)   # a second reply: ignored
    for _ in range(50):
        if len(got) == 2:
            break
        socket.socket.settimeout(relay_sock, 0.05)
        loop.readers[ext.sock.fileno()]()
    assert got == [("vf", [b"1"]), ("v", [b"20040107"])]
    assert ext.pending == {}
    ext.close()


def test_nothing_listening_fails_the_commands_at_once():
    loop, stats = FakeLoop(), Stats(0)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()                                   # a port where nothing listens
    ext = ExternalRelay(loop, stats, rtpp.parse_sock(f"udp:127.0.0.1:{port}"), 1, 5, 60)
    got = []
    ext.send(lambda c: rtpp.version(c), got.append)
    ext.send(lambda c: rtpp.version(c), got.append)
    assert got == []
    # the kernel has the ICMP port unreachable queued: the reader learns it, not a timeout
    loop.readers[ext.sock.fileno()]()
    loop.advance(0)
    assert got == [None, None] and ext.down_until == loop.now + 60
    assert stats.counters["rtpp_timeouts"] == 0
    ext.close()


def test_sources_are_not_needed_for_the_hold():
    # Context made by the core for a reply carries no hold until a module sets one
    assert Context(None, Source("udp", "1.2.3.4", 5060), None).hold is None


def test_rtpproxy_sock_names_an_address_not_a_name():
    """A name would be looked up blocking at start and at every SIGHUP: refused with how to
    write it; localhost is the loopback address."""
    loop, stats = FakeLoop(), Stats(0)
    with pytest.raises(ValueError, match=r"name the relay by its address \(udp:127.0.0.1"):
        ExternalRelay(loop, stats, rtpp.parse_sock("udp:relay.example.net:7722"), 1, 3, 60)
    ext = ExternalRelay(loop, stats, rtpp.parse_sock("udp:localhost:7722"), 1, 3, 60)
    try:
        assert ext.ip == "127.0.0.1"
    finally:
        ext.close()
