"""rtpproxy in process: a real Core and the real relay (its sockets on loopback), a transport
that records what it would send, two listeners standing in for the router's WAN (127.0.0.2,
where the caller's INVITE comes in) and LAN (127.0.0.1, where it leaves for the phone).
Which address each leg gets, what closes a session (CANCEL, a rejected call, the dialog's end)
and what does not (a failed re-INVITE), the bounds, and the config errors."""

import re

import pytest

from serlite.control.stats import Stats
from serlite.loop import Loop
from serlite.proxy.context import Source
from serlite.proxy.core import Core
from serlite.script.compiler import compile_config
from serlite.script.errors import ConfigError

MANAGE = """
loadmodule "sl"
loadmodule "tm"
loadmodule "rr"
loadmodule "rtpproxy"
modparam("rtpproxy", "rtp_port_min", 42000)
modparam("rtpproxy", "rtp_port_max", 42099)
%s
route {
    if (loose_route()) { rtpproxy_manage(); t_on_reply("1"); t_relay(); exit; }
    if (method == "INVITE") { record_route(); t_on_reply("1"); t_on_failure("1"); }
    if (method == "INVITE" || method == "CANCEL") { rtpproxy_manage(); }
    t_relay();
}
onreply_route[1] { rtpproxy_manage(); }
failure_route[1] { rtpproxy_manage(); }
"""

# offer and answer only: the session ends with the dialog (tm's tracker) or its silence
OFFER_ANSWER = """
loadmodule "sl"
loadmodule "tm"
loadmodule "rr"
loadmodule "rtpproxy"
modparam("rtpproxy", "rtp_port_min", 42100)
modparam("rtpproxy", "rtp_port_max", 42199)
route {
    if (loose_route()) { t_relay(); exit; }
    if (method == "INVITE") { record_route(); t_on_reply("1"); rtpproxy_offer(); }
    t_relay();
}
onreply_route[1] { if (status =~ "^(18|2)") { rtpproxy_answer(); } }
"""


class Listener:
    proto, family, port = "udp", 2, 5060
    backlog = 0.0

    def __init__(self, ip):
        self.ip = self.host = ip
        self.name = f"udp:{ip}:5060"


class Transport:
    def __init__(self):
        self.lan, self.wan = Listener("127.0.0.1"), Listener("127.0.0.2")
        self.listeners = [self.lan, self.wan]
        self.connections = {}
        self.sent = []

    def send(self, proto, ip, port, data, local=None, conn=None):
        self.sent.append((port, data))
        return True

    def listener_for(self, proto, family, ip=None):
        return self.lan


class Proxy:
    def __init__(self, text):
        self.loop = Loop()
        self.tr = Transport()
        self.core = Core(self.loop, self.tr, Stats(0))
        self.core.set_identity(self.tr.listeners, [])
        script = compile_config(text, "test.cfg")
        self.core.use_script(script)
        for m in script.modules.values():
            m.start(self.core, None)
        self.relay = script.modules["rtpproxy"].relay
        self.alice = Source("udp", "127.0.0.9", 6001, self.tr.wan)
        self.bob = Source("udp", "127.0.0.1", 7000, self.tr.lan)

    def close(self):
        self.relay.close_all()
        self.loop.close()

    def send(self, source, data, to_port):
        """Receive ``data`` from ``source``; the messages sent to ``to_port``."""
        self.tr.sent.clear()
        self.core.receive(data, source)
        return [d for port, d in self.tr.sent if port == to_port]


def sdp(ip, port):
    return (f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\n").encode()


def req(method, call_id, branch, *, body=b"", to_tag=None, cseq=1, route=None,
        from_tag="a1"):
    ruri = "sip:bob@127.0.0.1:7000"
    lines = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.9:6001;branch=z9hG4bK-{branch}",
             "Max-Forwards: 70", f"From: <sip:alice@example.net>;tag={from_tag}",
             "To: <sip:bob@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
             f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
             *([f"Route: <{route}>"] if route else []),
             *(["Content-Type: application/sdp"] if body else []),
             f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def resp(request, status, reason, *, body=b"", tag="b1"):
    head = request.split(b"\r\n\r\n")[0].decode().split("\r\n")[1:]
    keep = [h + (f";tag={tag}" if h.startswith("To:") and ";tag=" not in h else "")
            for h in head if h.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq",
                                                   "Record-Route")]
    extra = ["Contact: <sip:bob@127.0.0.1:7000>"]
    if body:
        extra.append("Content-Type: application/sdp")
    return (f"SIP/2.0 {status} {reason}\r\n" + "\r\n".join(keep + extra) +
            f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def media(msg):
    body = msg.split(b"\r\n\r\n", 1)[1]
    return (re.search(rb"^c=IN IP4 (\S+)", body, re.M).group(1).decode(),
            int(re.search(rb"^m=audio (\d+) ", body, re.M).group(1)))


@pytest.fixture
def proxy():
    made = []

    def make(text=MANAGE % ""):
        made.append(Proxy(text))
        return made[-1]
    yield make
    for p in made:
        p.close()


def call(p, call_id="c1"):
    invite = p.send(p.alice, req("INVITE", call_id, "i-" + call_id,
                                 body=sdp("192.168.1.50", 4000)), 7000)[0]
    ok = p.send(p.bob, resp(invite, 200, "OK", body=sdp("127.0.0.1", 8000)), 6001)[-1]
    return invite, ok


def test_each_leg_is_on_the_address_facing_its_phone(proxy):
    p = proxy()
    invite, ok = call(p)
    # the INVITE came in on the WAN address and leaves by the LAN one
    assert media(invite)[0] == "127.0.0.1" and media(ok)[0] == "127.0.0.2"
    entry = p.relay.entry("c1")
    (stream,), (fork,) = entry.session.streams, entry.session.forks.values()
    caller_socks, callee_socks = fork.pairs[0][0].io, stream.io
    assert [s.getsockname() for s in caller_socks] == [("127.0.0.2", media(ok)[1]),
                                                       ("127.0.0.2", media(ok)[1] + 1)]
    assert [s.getsockname() for s in callee_socks] == [("127.0.0.1", media(invite)[1]),
                                                       ("127.0.0.1", media(invite)[1] + 1)]
    # without flag r the caller's media is expected from its SIP source, not its SDP's
    leg = fork.pairs[0][0]
    assert leg.peer[0] == ("127.0.0.9", 4000)
    assert leg.allowed == ("127.0.0.9", "192.168.1.50", "192.168.1.50")


def test_a_failed_reinvite_keeps_the_media_a_rejected_call_frees_it(proxy):
    p = proxy()
    invite, ok = call(p)
    rr = re.search(rb"Record-Route: <([^>]*)>", invite).group(1).decode()
    reinvite = p.send(p.alice, req("INVITE", "c1", "i2", body=sdp("192.168.1.50", 4000),
                                   to_tag="b1", cseq=2, route=rr), 7000)[0]
    assert media(reinvite) == media(invite)     # the same legs, the same ports
    p.send(p.bob, resp(reinvite, 488, "Not Acceptable Here"), 6001)
    assert p.relay.get("c1") is not None and p.relay.sockets() == 4
    invite2 = p.send(p.alice, req("INVITE", "c2", "j1", body=sdp("192.168.1.50", 4002)),
                     7000)[0]
    assert p.relay.sockets() == 6       # the offer's pair facing the callee
    p.send(p.bob, resp(invite2, 486, "Busy Here", tag="b2"), 6001)
    assert p.relay.get("c2") is None and p.relay.sockets() == 4
    bye = p.send(p.alice, req("BYE", "c1", "y1", to_tag="b1", cseq=3, route=rr), 7000)[0]
    p.send(p.bob, resp(bye, 200, "OK"), 6001)
    assert len(p.relay) == 0 and p.relay.sockets() == 0
    assert p.core.stats.counters["rtp_sessions"] == 2


def test_cancel_frees_the_session(proxy):
    p = proxy()
    p.send(p.alice, req("INVITE", "c3", "k1", body=sdp("192.168.1.50", 4000)), 7000)
    assert p.relay.sockets() == 2
    p.send(p.alice, req("CANCEL", "c3", "k1"), 7000)
    assert p.relay.sockets() == 0


def test_the_dialogs_end_frees_it_when_the_script_does_not(proxy):
    p = proxy(OFFER_ANSWER)
    invite = p.send(p.alice, req("INVITE", "d1", "i1", body=sdp("10.0.0.5", 4000)), 7000)[0]
    p.send(p.bob, resp(invite, 486, "Busy Here"), 6001)
    assert len(p.relay) == 0 and p.relay.sockets() == 0
    invite, ok = call(p, "d2")
    early = p.relay.get("d2")
    assert early is not None and media(ok)[0] == "127.0.0.2"
    rr = re.search(rb"Record-Route: <([^>]*)>", invite).group(1).decode()
    bye = p.send(p.bob, req("BYE", "d2", "y1", from_tag="b1", to_tag="a1", route=rr), 7000)
    assert p.relay.get("d2") is None and p.relay.sockets() == 0, bye


def test_no_room_leaves_the_call_unrelayed_with_its_own_sdp(proxy):
    p = proxy(MANAGE % 'modparam("rtpproxy", "rtp_max_sessions", 1)')
    call(p, "e1")
    invite = p.send(p.alice, req("INVITE", "e2", "i9", body=sdp("192.168.1.50", 4000)),
                    7000)[0]
    assert media(invite) == ("192.168.1.50", 4000)
    assert p.core.stats.counters["rtp_refused"] == 1 and len(p.relay) == 1


@pytest.mark.parametrize("extra, message", [
    ('modparam("rtpproxy", "rtpproxy_sock", "unix:/var/run/rtpproxy.sock")',
     "unix sockets are not supported"),
    ('modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1:7722 udp:127.0.0.1:7723")',
     "one socket only"),
    ('modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1")', "expected udp:host:port"),
    ('modparam("rtpproxy", "rtp_port_min", 80)', "rtp_port_min"),
    ('modparam("rtpproxy", "rtp_port_max", 70000)', "rtp_port_max"),
    ('modparam("rtpproxy", "rtp_port_min", 42100)', "rtp_port_min 42100 must be below"),
])
def test_config_errors(extra, message):
    with pytest.raises(ConfigError, match=message):
        compile_config(MANAGE % extra, "test.cfg")


def test_unknown_flags_are_a_config_error():
    with pytest.raises(ConfigError, match="rtpproxy flag 'x' not supported"):
        compile_config((MANAGE % "").replace("rtpproxy_manage(); }\n    t_relay",
                                      'rtpproxy_manage("x"); }\n    t_relay'), "test.cfg")
    with pytest.raises(ConfigError, match="exclude each other"):
        compile_config((MANAGE % "").replace('onreply_route[1] { rtpproxy_manage(); }',
                                      'onreply_route[1] { rtpproxy_manage("aw"); }'),
                       "test.cfg")


def test_sighup_keeps_the_relay_and_its_calls(proxy):
    p = proxy()
    call(p, "h1")
    relay, sockets = p.relay, p.relay.sockets()
    script = compile_config(MANAGE % 'modparam("rtpproxy", "rtp_timeout", 30)', "test.cfg")
    old = p.core.script
    p.core.use_script(script)
    for m in script.modules.values():
        m.start(p.core, old.modules.get(m.name))
    new = script.modules["rtpproxy"]
    assert new.relay is relay and relay.timeout == 30.0
    assert relay.get("h1") is not None and relay.sockets() == sockets
    running = old.modules["rtpproxy"]
    assert relay.on_timeout == new._silent
    new.stop()                  # a failed reload's stop leaves the running calls alone
    assert relay.sockets() == sockets
    # ... and the running config's silence hook (it ends the calls of vanished phones)
    assert relay.on_timeout == running._silent


def test_a_late_offer_opens_in_the_reply_and_the_ack_answers(proxy):
    p = proxy()
    invite = p.send(p.alice, req("INVITE", "l1", "i-l1"), 7000)[0]
    assert len(p.relay) == 0 and p.relay.sockets() == 0     # noted, nothing bound
    ok = p.send(p.bob, resp(invite, 200, "OK", body=sdp("127.0.0.1", 8000)), 6001)[-1]
    assert media(ok)[0] == "127.0.0.2"          # the offer, to the caller: its WAN-side leg
    session = p.relay.get("l1")
    assert session is not None and media(ok)[1] == session.ports(0, "b1")[0]
    rr = re.search(rb"Record-Route: <([^>]*)>", invite).group(1).decode()
    ack = p.send(p.alice, req("ACK", "l1", "k-l1", body=sdp("192.168.1.50", 4000),
                              to_tag="b1", route=rr), 7000)[0]
    assert media(ack) == ("127.0.0.1", session.ports(1)[0])   # the answer, to the callee
    (pair,) = session.forks["b1"].pairs
    assert pair[0].peer[0] == ("127.0.0.9", 4000)
    assert pair[1].peer[0] == ("127.0.0.1", 8000)
    assert p.core.module("rtpproxy").late == {}
    # the 2xx that opened the session answered the call: a failed re-INVITE keeps it
    reinvite = p.send(p.alice, req("INVITE", "l1", "r-l1", body=sdp("192.168.1.50", 4000),
                                   to_tag="b1", cseq=2, route=rr), 7000)[0]
    p.send(p.bob, resp(reinvite, 488, "Not Acceptable Here"), 6001)
    assert p.relay.get("l1") is session and p.relay.sockets() == 4


def test_a_wildcard_listener_is_not_put_in_an_sdp(proxy):
    p = proxy()
    p.tr.wan.ip = "0.0.0.0"     # c=IN IP4 0.0.0.0 would put the call on hold
    invite = p.send(p.alice, req("INVITE", "w1", "i-w1", body=sdp("192.168.1.50", 4000)),
                    7000)[0]
    assert media(invite) == ("192.168.1.50", 4000) and len(p.relay) == 0


def test_an_sdp_without_a_stream_to_relay_opens_nothing(proxy):
    p = proxy()
    body = b"v=0\r\nc=IN IP4 192.168.1.50\r\nm=audio 0 RTP/AVP 0\r\n"
    invite = p.send(p.alice, req("INVITE", "z1", "i-z1", body=body), 7000)[0]
    assert invite.endswith(body) and len(p.relay) == 0


# --- forked calls ---------------------------------------------------------------------------

# the INVITE goes to two phones (RFC 3261 16.6): bob at 127.0.0.1:7000, bob2 at 127.0.0.3:7002
FORK = (MANAGE % "").replace('if (method == "INVITE") { record_route();',
                      'if (method == "INVITE") { append_branch("sip:bob2@127.0.0.3:7002"); '
                      'record_route();')


def forked(p, call_id):
    """The caller's INVITE and the two forks' 183s with SDP (b1 from bob, b2 from bob2): the
    INVITEs each phone got, the 183s the caller got."""
    p.bob2 = Source("udp", "127.0.0.3", 7002, p.tr.lan)
    p.tr.sent.clear()
    p.core.receive(req("INVITE", call_id, "i-" + call_id, body=sdp("192.168.1.50", 4000)),
                   p.alice)
    sent = {port: data for port, data in p.tr.sent}
    inv1, inv2 = sent[7000], sent[7002]
    r1 = p.send(p.bob, resp(inv1, 183, "Session Progress", body=sdp("127.0.0.1", 8000),
                            tag="b1"), 6001)[-1]
    r2 = p.send(p.bob2, resp(inv2, 183, "Session Progress", body=sdp("127.0.0.3", 8002),
                             tag="b2"), 6001)[-1]
    return inv1, inv2, r1, r2


def test_each_fork_gets_its_own_caller_port_and_the_answer_closes_the_other(proxy):
    p = proxy(FORK)
    inv1, inv2, r1, r2 = forked(p, "f1")
    # the fault: both 183s named the one caller-facing port (measured before the fix:
    # 127.0.0.2:42000 twice), so the caller's media went to whichever fork spoke last
    assert media(r1)[1] != media(r2)[1], (media(r1), media(r2))
    session = p.relay.get("f1")
    # both phones were offered the one shared port; each 183 names its own to the caller
    assert media(inv1) == media(inv2) == ("127.0.0.1", session.ports(1)[0])
    assert media(r1) == ("127.0.0.2", session.ports(0, "b1")[0])
    assert media(r2) == ("127.0.0.2", session.ports(0, "b2")[0])
    assert media(r1)[1] != media(r2)[1] and p.relay.sockets() == 6
    legs = {tag: fork.pairs[0] for tag, fork in session.forks.items()}
    assert legs["b1"][1].peer[0] == ("127.0.0.1", 8000)
    assert legs["b2"][1].peer[0] == ("127.0.0.3", 8002)
    assert legs["b1"][0].peer[0] == legs["b2"][0].peer[0] == ("127.0.0.9", 4000)
    # bob2 answers: its 200 names its own port again, bob's fork is closed, tm CANCELs it
    p.tr.sent.clear()
    p.core.receive(resp(inv2, 200, "OK", body=sdp("127.0.0.3", 8002), tag="b2"), p.bob2)
    ok = [d for port, d in p.tr.sent if port == 6001][-1]
    assert media(ok) == media(r2)
    assert any(d.startswith(b"CANCEL ") for port, d in p.tr.sent if port == 7000)
    assert list(session.forks) == ["b2"] and p.relay.sockets() == 4
    assert media(r1)[1] not in p.relay.pool.used
    p.send(p.bob, resp(inv1, 487, "Request Terminated", tag="b1"), 6001)
    assert p.relay.sockets() == 4
    rr = re.search(rb"Record-Route: <([^>]*)>", inv1).group(1).decode()
    p.send(p.alice, req("BYE", "f1", "y-f1", to_tag="b2", cseq=2, route=rr), 7000)
    assert len(p.relay) == 0 and p.relay.sockets() == 0


def test_a_fork_that_fails_leaves_the_other_ringing(proxy):
    p = proxy(FORK)
    inv1, inv2, r1, r2 = forked(p, "f2")
    p.send(p.bob, resp(inv1, 486, "Busy Here", tag="b1"), 6001)
    session = p.relay.get("f2")
    assert session is not None and list(session.forks) == ["b2"] and p.relay.sockets() == 4
    p.send(p.bob2, resp(inv2, 480, "Temporarily Unavailable", tag="b2"), 6001)
    assert len(p.relay) == 0 and p.relay.sockets() == 0    # the call failed: all closed


@pytest.mark.parametrize("order", ["extra-first", "answer-first"])
def test_two_answers_each_live_until_their_own_bye(proxy, order):
    """RFC 3261 13.2.2.4: both forks answer; the caller ACKs and BYEs the second (before or
    after the call it keeps: the tracker's end of the first dialog is not the session's)."""
    p = proxy(FORK)
    inv1, inv2, r1, r2 = forked(p, "f3")
    ok1 = p.send(p.bob, resp(inv1, 200, "OK", body=sdp("127.0.0.1", 8000), tag="b1"), 6001)
    ok2 = p.send(p.bob2, resp(inv2, 200, "OK", body=sdp("127.0.0.3", 8002), tag="b2"), 6001)
    assert ok1 and ok2, "tm forwards every 2xx (16.7 step 5)"
    session = p.relay.get("f3")
    assert set(session.forks) == {"b1", "b2"} and p.relay.sockets() == 6
    rr = re.search(rb"Record-Route: <([^>]*)>", inv1).group(1).decode()
    first, second = ("b2", "b1") if order == "extra-first" else ("b1", "b2")
    p.send(p.alice, req("BYE", "f3", "y2-f3", to_tag=first, cseq=2, route=rr), 7000)
    assert list(session.forks) == [second] and p.relay.sockets() == 4
    p.send(p.alice, req("BYE", "f3", "y1-f3", to_tag=second, cseq=3, route=rr), 7000)
    assert len(p.relay) == 0 and p.relay.sockets() == 0


def test_forks_are_bounded_and_a_late_18x_opens_nothing(proxy, capsys):
    from serlite import log
    from serlite.media.session import MAX_FORKS
    p = proxy()
    invite = p.send(p.alice, req("INVITE", "f4", "i-f4", body=sdp("192.168.1.50", 4000)),
                    7000)[0]
    # a forking proxy behind bob: every branch's 183 comes up this one
    old = log.level
    log.configure(debug=log.WARN, stderr=True)
    log._last.clear()       # the rate limit of an earlier test's line
    try:
        for i in range(MAX_FORKS + 1):
            got = p.send(p.bob, resp(invite, 183, "Session Progress",
                                     body=sdp("127.0.0.1", 8000 + 2 * i), tag=f"t{i}"), 6001)
    finally:
        log.level = old
    assert media(got[-1]) == ("127.0.0.1", 8000 + 2 * MAX_FORKS)     # not relayed: as sent
    assert f"more than {MAX_FORKS} phones" in capsys.readouterr().err
    assert p.relay.sockets() == 2 + 2 * MAX_FORKS
    p.send(p.bob, resp(invite, 200, "OK", body=sdp("127.0.0.1", 8000), tag="t0"), 6001)
    assert p.relay.sockets() == 4
    # after the answer, a provisional response with a new tag makes no fork
    p.send(p.bob, resp(invite, 183, "Session Progress", body=sdp("127.0.0.1", 9000),
                       tag="late"), 6001)
    assert list(p.relay.get("f4").forks) == ["t0"] and p.relay.sockets() == 4


def test_the_callees_reinvite_names_its_own_forks_port_to_the_caller(proxy):
    p = proxy(FORK)
    inv1, inv2, r1, r2 = forked(p, "f5")
    ok = p.send(p.bob2, resp(inv2, 200, "OK", body=sdp("127.0.0.3", 8002), tag="b2"), 6001)
    assert media(ok[-1]) == media(r2)
    rr = re.search(rb"Record-Route: <([^>]*)>", inv2).group(1).decode()
    # bob2 moves its media (a re-INVITE of its own: From and To swapped)
    reinvite = req("INVITE", "f5", "r-f5", body=sdp("127.0.0.3", 8100), from_tag="b2",
                   to_tag="a1", cseq=7, route=rr)
    p.tr.sent.clear()
    p.core.receive(reinvite, p.bob2)
    (to_alice,) = [d for port, d in p.tr.sent if d.startswith(b"INVITE ")]
    assert media(to_alice) == media(r2)
    (pair,) = p.relay.get("f5").forks["b2"].pairs
    assert pair[1].peer[0] == ("127.0.0.3", 8100) and p.relay.sockets() == 4


def test_a_call_silent_for_rtp_timeout_ends_with_its_relay(proxy):
    """Both phones vanished (no BYE will come): the relay's timeout closes the session and
    ends the call in tm's tracker (``ser-ctl calls`` no longer shows it going on, the history
    says why); a call still ringing is left to its INVITE transaction."""
    p = proxy(MANAGE % 'modparam("rtpproxy", "rtp_timeout", 5)')
    tracker = p.core.module("tm").dialog_tracker()
    call(p, "s1")
    invite2 = p.send(p.alice, req("INVITE", "s2", "i-s2", body=sdp("192.168.1.50", 4000)),
                     7000)[0]
    assert tracker.find("s1", "a1").state == "confirmed"
    assert tracker.find("s2", "a1").state == "trying"
    later = p.loop.time() + 7
    p.loop.time = lambda: later
    p.loop.run_due(later)
    p.loop.run_due(later)
    # the answered call's relay is closed; the ringing one keeps its own (a phone may ring
    # longer than rtp_timeout without a packet: its 200 must still find the relay)
    assert [e for e in p.relay.entries] == ["s2"] and p.relay.sockets() == 2
    assert tracker.find("s1", "a1") is None
    assert [d["call_id"] for d in tracker.active(later)] == ["s2"]
    ok = p.send(p.bob, resp(invite2, 200, "OK", body=sdp("127.0.0.1", 8000)), 6001)[-1]
    assert media(ok) == ("127.0.0.2", p.relay.get("s2").ports(0, "b1")[0])   # relayed
