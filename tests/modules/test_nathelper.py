"""nathelper: nat_uac_test's bits, the header and SDP rewrites (exact bytes), and the NAT
keepalive with a fake core and fake time."""

import pytest

from serlite.modules import nathelper
from serlite.modules.nathelper import KeepAlive, Nathelper
from serlite.proxy.context import Context, Source
from serlite.script.compiler import compile_config
from serlite.script.errors import ConfigError
from serlite.sip.message import parse
from serlite.store.location import FLAG_NAT, Binding, LocationStore

SDP = (b"v=0\r\n"
       b"o=bob 1 1 IN IP4 192.168.1.50\r\n"
       b"s=-\r\n"
       b"c=IN IP4 192.168.1.50\r\n"
       b"t=0 0\r\n"
       b"m=audio 4000 RTP/AVP 0\r\n")


def request(method="INVITE", via="192.168.1.50:5060", contact="<sip:bob@192.168.1.50:5060>",
            body=b"", ctype="application/sdp", extra=()):
    lines = [f"{method} sip:alice@home.lan SIP/2.0",
             f"Via: SIP/2.0/UDP {via};branch=z9hG4bK776asdhds;rport",
             "Max-Forwards: 70",
             "From: <sip:bob@home.lan>;tag=1928301774",
             "To: <sip:alice@home.lan>",
             "Call-ID: a84b4c76e66710@pc33",
             f"CSeq: 1 {method}",
             *([f"Contact: {contact}"] if contact else []),
             *([f"Content-Type: {ctype}"] if body else []),
             *extra,
             f"Content-Length: {len(body)}"]
    return parse(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


WAN = Source("udp", "203.0.113.9", 41000)      # what the NAT box shows us


def ctx_of(msg, source=WAN):
    return Context(msg, source, None)


def module(**params):
    p = {"natping_interval": 0, "natping_method": "OPTIONS", "natping_timeout": 0,
         "ping_nated_only": 1}
    p.update(params)
    return Nathelper(p)


# --- nat_uac_test -------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, msg, source, expected", [
    # 1: the first Contact is RFC 1918 (or RFC 6598) space
    (1, request(), WAN, True),
    (1, request(contact="<sip:bob@203.0.113.9:41000>"), WAN, False),
    (1, request(contact="<sip:bob@172.31.255.1>, <sip:bob@1.2.3.4>"), WAN, True),
    (1, request(contact="<sip:bob@172.32.0.1>"), WAN, False),
    (1, request(contact="<sip:bob@100.64.1.1>"), WAN, True),
    (1, request(contact="<sip:bob@10.1.2.3;transport=tcp>"), WAN, True),
    (1, request(contact="<sip:bob@phone.lan>"), WAN, False),
    (1, request(contact="<sip:bob@[fd00::1]>"), WAN, False),
    (1, request(contact="*", extra=["Expires: 0"]), WAN, False),
    (1, request(contact=None), WAN, False),
    # 2: the Via's sent-by address is not the source address
    (2, request(via="203.0.113.9:41000"), WAN, False),
    (2, request(via="203.0.113.9:5060"), WAN, False),      # the port is flag 16's business
    (2, request(), WAN, True),
    (2, request(via="phone.example.com"), WAN, True),
    (2, request(via="[2001:db8::0:1]:5060"), Source("udp", "2001:db8::1", 5060), False),
    # 4: the top Via is private
    (4, request(), WAN, True),
    (4, request(via="203.0.113.9:41000"), WAN, False),
    # 8: a c= line is private
    (8, request(body=SDP), WAN, True),
    (8, request(body=SDP.replace(b"c=IN IP4 192.168.1.50", b"c=IN IP4 1.2.3.4")), WAN, False),
    (8, request(body=SDP, ctype="text/plain"), WAN, False),
    (8, request(), WAN, False),
    # 16: the source port is not the Via's (5060 when the Via has none)
    (16, request(via="203.0.113.9:41000"), WAN, False),
    (16, request(via="203.0.113.9"), WAN, True),
    (16, request(via="203.0.113.9"), Source("udp", "203.0.113.9", 5060), False),
    # any of several: SER's usual 19 = 1 | 2 | 16
    (19, request(via="203.0.113.9:41000", contact="<sip:bob@203.0.113.9:41000>"), WAN, False),
    (19, request(via="203.0.113.9:41000"), WAN, True),
    (18, request(via="203.0.113.9:41000"), WAN, False),
    # without a source (a reply tm relays) 2 and 16 cannot hold
    (18, request(), None, False),
])
def test_nat_uac_test(flags, msg, source, expected):
    assert module().nat_uac_test(ctx_of(msg, source), flags) == (1 if expected else -1)


def test_nat_uac_test_looks_at_the_via_as_sent_not_at_received_rport():
    # the core notes received=/rport= on the top Via before the script runs; the test must
    # still compare what the phone wrote
    from serlite.proxy.forward import fix_top_via
    msg = request()
    fix_top_via(msg, WAN)
    assert "received=203.0.113.9" in str(msg.top_via)
    assert module().nat_uac_test(ctx_of(msg), 2) == 1
    assert module().nat_uac_test(ctx_of(msg), 16) == 1


@pytest.mark.parametrize("call, message", [
    ('nat_uac_test("x")', "nat_uac_test flags must be a number, not 'x'"),
    ('nat_uac_test("0")', "nat_uac_test flags must be between 1 and 31, not 0"),
    ('nat_uac_test("32")', "nat_uac_test flags must be between 1 and 31, not 32"),
    ('fix_nated_sdp("16")', "fix_nated_sdp flags must be between 1 and 15, not 16"),
    ('fix_nated_sdp("2", "nowhere")', "fix_nated_sdp: 'nowhere' is not an IP address"),
])
def test_bad_flags_are_found_at_start_up(call, message):
    with pytest.raises(ConfigError) as info:
        compile_config(f'loadmodule "nathelper"\nroute {{ {call}; }}\n', "t.cfg")
    assert info.value.message == message


def test_the_functions_compile_where_ser_allows_them():
    compile_config('loadmodule "nathelper"\n'
                   'route { if (nat_uac_test(19)) { fix_nated_contact(); fix_nated_register();'
                   ' add_rcv_param(); fix_nated_sdp("3"); fix_nated_sdp(10, "1.2.3.4"); } }\n'
                   'onreply_route { if (nat_uac_test("1")) { fix_nated_contact();'
                   ' fix_nated_sdp("2"); } }\n', "t.cfg")
    with pytest.raises(ConfigError):
        compile_config('loadmodule "nathelper"\nroute { }\n'
                       'onreply_route { fix_nated_register(); }\n', "t.cfg")


# --- fix_nated_contact, fix_nated_register, add_rcv_param -----------------------------------------

def contact_line(msg):
    return [line for line in msg.to_bytes().split(b"\r\n") if line.startswith(b"Contact:")]


def test_fix_nated_contact_rewrites_the_first_contact_only():
    msg = request(contact='"Bob" <sip:bob@192.168.1.50:5060;transport=udp>;expires=60, '
                          "<sip:bob@192.168.1.51>")
    assert module().fix_nated_contact(ctx_of(msg)) == 1
    assert contact_line(msg) == [b'Contact: "Bob" <sip:bob@203.0.113.9:41000;transport=udp>'
                                 b';expires=60, <sip:bob@192.168.1.51>']
    assert msg.contacts[0].uri_text == "sip:bob@203.0.113.9:41000;transport=udp"
    # the rest of the message is untouched
    assert msg.to_bytes().replace(contact_line(msg)[0], b"") == request(
        contact='"Bob" <sip:bob@192.168.1.50:5060;transport=udp>;expires=60, '
                "<sip:bob@192.168.1.51>").to_bytes().replace(
        b'Contact: "Bob" <sip:bob@192.168.1.50:5060;transport=udp>;expires=60, '
        b"<sip:bob@192.168.1.51>", b"")


def test_fix_nated_contact_adds_a_port_and_brackets_ipv6():
    msg = request(contact="sip:bob@192.168.1.50")
    assert module().fix_nated_contact(ctx_of(msg, Source("udp", "2001:db8::7", 5062))) == 1
    assert contact_line(msg) == [b"Contact: sip:bob@[2001:db8::7]:5062"]


@pytest.mark.parametrize("contact", [None, "*", "<tel:+1234>"])
def test_fix_nated_contact_false_without_a_sip_contact(contact):
    msg = request(contact=contact, extra=["Expires: 0"] if contact == "*" else [])
    before = msg.to_bytes()
    assert module().fix_nated_contact(ctx_of(msg)) == -1
    assert msg.to_bytes() == before


@pytest.mark.parametrize("source, received", [
    (WAN, "sip:203.0.113.9:41000"),
    (Source("tcp", "203.0.113.9", 50123), "sip:203.0.113.9:50123;transport=tcp"),
    (Source("udp", "2001:db8::7", 5060), "sip:[2001:db8::7]:5060"),
])
def test_fix_nated_register_sets_received(source, received):
    ctx = ctx_of(request("REGISTER"), source)
    assert module().fix_nated_register(ctx) == 1
    assert ctx.received == received
    assert ctx.msg.to_bytes() == request("REGISTER").to_bytes()     # the message is unchanged


def test_add_rcv_param():
    msg = request("REGISTER", contact="<sip:bob@192.168.1.50>;expires=60, sip:bob@10.0.0.1")
    ctx = ctx_of(msg)
    assert module().add_rcv_param(ctx) == 1
    assert contact_line(msg) == [b'Contact: <sip:bob@192.168.1.50>;expires=60;'
                                 b'received="sip:203.0.113.9:41000", '
                                 b'sip:bob@10.0.0.1;received="sip:203.0.113.9:41000"']
    assert ctx.received == "sip:203.0.113.9:41000"      # save() stores it, as SER's registrar
    assert module().add_rcv_param(ctx_of(request(contact=None))) == -1


# --- fix_nated_sdp --------------------------------------------------------------------------------

def body_and_length(msg):
    data = msg.to_bytes()
    head, body = data.split(b"\r\n\r\n", 1)
    clen = [line for line in head.split(b"\r\n") if line.startswith(b"Content-Length:")]
    assert clen == [b"Content-Length: %d" % len(body)]
    return body


def test_fix_nated_sdp_2_rewrites_c_lines():
    msg = request(body=SDP)
    assert module().fix_nated_sdp(ctx_of(msg), 2) == 1
    assert body_and_length(msg) == SDP.replace(b"c=IN IP4 192.168.1.50",
                                               b"c=IN IP4 203.0.113.9")


def test_fix_nated_sdp_1_adds_direction_active():
    msg = request(body=SDP)
    assert module().fix_nated_sdp(ctx_of(msg), 1) == 1
    assert body_and_length(msg) == SDP + b"a=direction:active\r\n"


def test_fix_nated_sdp_8_rewrites_o_and_ip_argument():
    msg = request(body=SDP)
    assert module().fix_nated_sdp(ctx_of(msg), 15, "198.51.100.1") == 1
    assert body_and_length(msg) == (
        SDP.replace(b"IN IP4 192.168.1.50", b"IN IP4 198.51.100.1")
        + b"a=direction:active\r\na=nortpproxy:yes\r\n")


def test_fix_nated_sdp_false_without_sdp():
    assert module().fix_nated_sdp(ctx_of(request()), 2) == -1
    assert module().fix_nated_sdp(ctx_of(request(body=b"hello", ctype="text/plain")), 2) == -1
    no_c = request(body=b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\n")
    before = no_c.to_bytes()
    assert module().fix_nated_sdp(ctx_of(no_c), 3) == -1
    assert no_c.to_bytes() == before


def test_fix_nated_sdp_on_hold_is_left_alone():
    held = SDP.replace(b"c=IN IP4 192.168.1.50", b"c=IN IP4 0.0.0.0")
    msg = request(body=held)
    assert module().fix_nated_sdp(ctx_of(msg), 2) == 1
    assert msg.body == held


# --- keepalive: which bindings are pinged, which are dropped ------------------------------------

def binding(contact="sip:bob@192.168.1.50:5060", received="sip:203.0.113.9:41000",
            flags=FLAG_NAT, expires=10_000, aor="bob", socket="udp:127.0.0.1:5060"):
    return Binding(aor, contact, expires, received=received, socket=socket, flags=flags)


def test_keepalive_rounds_and_timeout():
    ka = KeepAlive(timeout=3, prefix="z9hG4bKnpX")
    b = binding()
    item = (("location", "bob", b.contact), b, "payload")
    pings, dead = ka.round([item], now=100.0)
    assert [p[0] for p in pings] == ["z9hG4bKnpX.1"] and not dead
    assert ka.answered("z9hG4bKnpX.1", 101.0)
    assert not ka.answered("z9hG4bKnpY.1", 101.0)
    pings, dead = ka.round([item], now=102.0)
    pings, dead = ka.round([item], now=103.5)           # last answer at 101: 2.5 s
    assert pings and not dead
    assert ka.answered("z9hG4bKnpX.2", 103.6)           # a late answer from the round before
    pings, dead = ka.round([item], now=106.5)            # 2.9 s since the answer
    assert pings and not dead
    pings, dead = ka.round([item], now=106.6)            # 3.0 s: gone
    assert not pings and dead == [(("location", "bob", b.contact), b)]
    assert ka.state == {}


def test_keepalive_a_new_registration_counts_as_alive():
    ka = KeepAlive(timeout=3, prefix="p")
    key = ("location", "bob", "sip:bob@x")
    ka.round([(key, binding(), None)], now=0.0)
    ka.round([(key, binding(), None)], now=2.9)         # registered again (a new Binding)
    pings, dead = ka.round([(key, binding(), None)], now=5.0)
    assert pings and not dead


def test_keepalive_state_follows_the_bindings():
    ka = KeepAlive(timeout=0, prefix="p")
    items = [(("location", f"u{i}", "c"), binding(aor=f"u{i}"), None) for i in range(100)]
    ka.round(items, now=0.0)
    assert len(ka.state) == 100 and len(ka.pending) == 100
    pings, dead = ka.round(items[:3], now=1.0)
    assert len(ka.state) == 3 and len(pings) == 3 and not dead
    ka.round([], now=2.0)
    ka.round([], now=3.0)
    assert ka.state == {} and ka.pending == {} and ka.previous == {}


# --- keepalive: the module with a fake core and fake time ---------------------------------------

class FakeTimer:
    def __init__(self, loop, when, fn):
        self.loop, self.when, self.fn, self.cancelled = loop, when, fn, False

    def cancel(self):
        self.cancelled = True


class FakeLoop:
    def __init__(self):
        self.t = 1000.0
        self.timers = []

    def call_later(self, delay, fn):
        timer = FakeTimer(self, self.t + delay, fn)
        self.timers.append(timer)
        return timer

    def advance(self, seconds):
        end = self.t + seconds
        while True:
            due = [t for t in self.timers if not t.cancelled and t.when <= end]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self.timers.remove(timer)
            self.t = timer.when
            timer.fn()
        self.t = end


class FakeListener:
    def __init__(self, proto, ip, port):
        self.proto, self.ip, self.port = proto, ip, port
        self.host = f"[{ip}]" if ":" in ip else ip
        self.name = f"{proto}:{self.host}:{port}"


class FakeTransport:
    def __init__(self):
        self.listeners = [FakeListener("udp", "127.0.0.1", 5060),
                          FakeListener("udp", "10.0.0.1", 5060)]
        self.sent = []

    def listener_for(self, proto, family, ip=None):
        return self.listeners[0]

    def send(self, proto, ip, port, data, local=None, conn=None):
        self.sent.append((proto, ip, port, data, local.name))
        return True


class FakeStats:
    def request_out(self, method, size):
        pass


class FakeUsrloc:
    def __init__(self):
        self.tables = {"location": LocationStore(None, 0)}


class FakeCore:
    def __init__(self):
        self.loop = FakeLoop()
        self.transport = FakeTransport()
        self.stats = FakeStats()
        self.usrloc = FakeUsrloc()
        self.handlers = {}
        self.active = None      # the running config's nathelper (Core.use_script)

    def now(self):
        return self.loop.t

    def wall(self):
        return 1_700_000_000 + self.loop.t

    def module(self, name):
        return {"usrloc": self.usrloc, "nathelper": self.active}.get(name)

    def add_response_handler(self, prefix, handler):
        self.handlers[prefix] = handler


def started(**params):
    core = FakeCore()
    nh = module(natping_interval=1, **params)
    nh.start(core)
    core.active = nh
    return core, nh, core.usrloc.tables["location"]


def register(core, store, contact, received="sip:203.0.113.9:41000", flags=FLAG_NAT,
             socket="udp:10.0.0.1:5060", aor="bob"):
    b = Binding(aor, contact, core.wall() + 3600, received=received, socket=socket,
                flags=flags)
    store.save(aor, core.wall(), put=[b])
    return b


def answer(core, sent):
    """The phone answers a ping: a 200 with the ping's Via, through the response handler."""
    data = sent[3]
    via = [line for line in data.split(b"\r\n") if line.startswith(b"Via:")][0]
    reply = parse(b"SIP/2.0 200 OK\r\n" + via + b"\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n"
                  b"Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    branch = reply.top_via.branch
    (prefix, handler), = core.handlers.items()
    assert branch.startswith(prefix)
    handler(reply, None)


def test_pings_go_from_the_bindings_socket_to_its_received_address():
    core, nh, store = started()
    register(core, store, "sip:bob@192.168.1.50:5060")
    register(core, store, "sip:carol@203.0.113.20", received="", flags=0, aor="carol")
    register(core, store, "sip:dan@192.168.1.60", received="sip:203.0.113.21:5070;transport=tcp",
             aor="dan")
    assert core.transport.sent == []
    core.loop.advance(1.0)
    (proto, ip, port, data, local), = core.transport.sent      # not carol, not dan (TCP)
    assert (proto, ip, port, local) == ("udp", "203.0.113.9", 41000, "udp:10.0.0.1:5060")
    lines = data.decode().split("\r\n")
    assert lines[0] == "OPTIONS sip:bob@192.168.1.50:5060 SIP/2.0"
    assert lines[1].startswith("Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnp")
    assert "To: <sip:bob@192.168.1.50:5060>" in lines
    assert "CSeq: 1 OPTIONS" in lines and data.endswith(b"Content-Length: 0\r\n\r\n")
    parse(data)     # a well-formed request
    core.loop.advance(3.0)
    assert len(core.transport.sent) == 4        # one per interval


def test_ping_nated_only_0_pings_every_udp_binding():
    core, nh, store = started(ping_nated_only=0)
    register(core, store, "sip:carol@203.0.113.20:5062", received="", flags=0, aor="carol")
    register(core, store, "sip:erin@phone.example.com", received="", flags=0, aor="erin")
    core.loop.advance(1.0)
    assert [(s[1], s[2]) for s in core.transport.sent] == [("203.0.113.20", 5062)]


def test_null_method_sends_crlf_crlf():
    core, nh, store = started(natping_method="NULL", natping_timeout=3)
    register(core, store, "sip:bob@192.168.1.50:5060")
    core.loop.advance(10.0)
    assert [s[3] for s in core.transport.sent] == [b"\r\n\r\n"] * 10
    assert store.lookup("bob", core.wall())     # no answers expected: never removed


def test_silent_binding_is_removed_after_natping_timeout_answering_one_stays():
    core, nh, store = started(natping_timeout=3)
    register(core, store, "sip:bob@192.168.1.50:5060")
    register(core, store, "sip:alice@192.168.1.70:5060", received="sip:203.0.113.10:5060",
             aor="alice")
    gone = None
    for _ in range(30):
        core.loop.advance(1.0)
        for sent in core.transport.sent:
            if sent[1] == "203.0.113.10":
                answer(core, sent)
        core.transport.sent.clear()
        if gone is None and not store.lookup("bob", core.wall()):
            gone = core.loop.t
    assert gone == 1004.0        # first pinged at 1001, silent until 1004
    assert store.lookup("alice", core.wall()) and len(nh.keepalive.state) == 1


def test_reregistration_keeps_a_silent_binding():
    core, nh, store = started(natping_timeout=3)
    for _ in range(10):
        register(core, store, "sip:bob@192.168.1.50:5060")
        core.loop.advance(2.0)
    assert store.lookup("bob", core.wall())


def test_reload_keeps_the_state_and_one_timer():
    core, nh, store = started(natping_timeout=3)
    register(core, store, "sip:bob@192.168.1.50:5060")
    core.loop.advance(1.0)
    sent = core.transport.sent[-1]
    nh2 = module(natping_interval=1, natping_timeout=3)
    nh2.start(core, nh)
    core.active = nh2
    answer(core, sent)              # a ping of the old config is answered after the reload
    assert nh2.keepalive is nh.keepalive
    core.transport.sent.clear()
    core.loop.advance(2.0)
    assert len(core.transport.sent) == 2         # the old config's timer stops by itself
    assert store.lookup("bob", core.wall())
    nh2.stop()
    core.loop.advance(5.0)
    assert len(core.transport.sent) == 2


def test_a_failed_reload_leaves_the_running_config_pinging():
    core, nh, store = started()
    register(core, store, "sip:bob@192.168.1.50:5060")
    nh2 = module(natping_interval=1)
    nh2.start(core, nh)
    nh2.stop()                      # another module failed to start: the old config stays
    core.loop.advance(3.0)
    assert len(core.transport.sent) == 3


def test_no_timer_when_natping_interval_is_0():
    core = FakeCore()
    nh = module()
    nh.start(core)
    assert core.loop.timers == [] and core.handlers == {}


@pytest.mark.parametrize("params, message", [
    ({"natping_interval": -1}, r"natping_interval must be 0 \(off\) or a number of seconds"),
    ({"natping_method": "OPT IONS"}, "natping_method 'OPT IONS' is not a method name"),
])
def test_bad_params(params, message):
    with pytest.raises(ValueError, match=message):
        module(**params)


def test_private_ranges():
    assert [nathelper.is_private(a) for a in (
        "10.0.0.0", "10.255.255.255", "172.15.255.255", "172.16.0.0", "172.31.255.255",
        "172.32.0.0", "192.167.255.255", "192.168.0.1", "100.63.255.255", "100.64.0.0",
        "100.127.255.255", "100.128.0.0", "8.8.8.8", "256.1.1.1", "1.2.3", "a.b.c.d", "",
        "::ffff:10.0.0.1")] == [
        True, True, False, True, True, False, False, True, False, True, True, False, False,
        False, False, False, False, False]
