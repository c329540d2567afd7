"""msilo's module logic without a network: what m_dump sends through tm's t_uac and what each
answer does (delete on 2xx, keep on a refusal, a bounded retry after a timeout), the handover
at SIGHUP, the offline notice, the Date format."""

from serlite.modules import msilo as msilo_module
from serlite.modules.msilo import RETRIES, Msilo, sip_date
from serlite.proxy.context import Context, Source
from serlite.sip.grammar import is_sip_date
from serlite.sip.message import parse

T0 = 1765000000.0


class Timer:
    def __init__(self, loop, when, callback):
        self.loop, self.when, self.callback = loop, when, callback

    def cancel(self):
        if self in self.loop.timers:
            self.loop.timers.remove(self)


class Loop:
    def __init__(self, core):
        self.core = core
        self.timers = []

    def call_later(self, delay, callback):
        t = Timer(self, self.core.clock + delay, callback)
        self.timers.append(t)
        return t


class Tm:
    """tm as msilo uses it: t_uac's arguments kept, the test answers through the callback."""

    def __init__(self):
        self.sent = []

    def t_uac(self, method, ruri, rest, hop, callback):
        self.sent.append((method, ruri, rest, hop, callback))


class Stats:
    def __init__(self):
        self.counters = {}

    def incr(self, name, n=1):
        self.counters[name] = self.counters.get(name, 0) + n


class Core:
    def __init__(self):
        self.clock = T0
        self.loop = Loop(self)
        self.tm = Tm()
        self.stats = Stats()

    def wall(self):
        return self.clock

    def module(self, name):
        return self.tm if name == "tm" else None

    def advance(self, seconds):
        """Move the clock on, running the timers that fall due (bounded)."""
        end = self.clock + seconds
        for _ in range(1000):
            due = sorted((t for t in self.loop.timers if t.when <= end), key=lambda t: t.when)
            if not due:
                break
            t = due[0]
            self.loop.timers.remove(t)
            self.clock = t.when
            t.callback()
        self.clock = end


def make(tmp_path, **params):
    p = {name: spec.default for name, spec in msilo_module.EXPORTS.params.items()}
    p["db_url"] = f"dbtext://{tmp_path}"
    p.update(params)
    module = Msilo(p)
    core = Core()
    module.start(core)
    return module, core


def ctx_of(core, text, source=("udp", "192.0.2.7", 5062)):
    return Context(parse(text.replace("\n", "\r\n").encode()), Source(*source), core)


def message(body="hi", to="alice"):
    return ctx_of(None, f"""MESSAGE sip:{to}@home.lan SIP/2.0
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1
From: "Bob" <sip:bob@home.lan>;tag=1
To: <sip:{to}@home.lan>
Call-ID: m1
CSeq: 1 MESSAGE
Contact: <sip:bob@192.0.2.7:5062>
Content-Type: text/plain
Content-Length: {len(body)}

{body}""")


def register(core, cseq=1):
    return ctx_of(core, f"""REGISTER sip:home.lan SIP/2.0
Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK{cseq}
From: <sip:alice@home.lan>;tag=2
To: <sip:alice@home.lan>
Call-ID: r1
CSeq: {cseq} REGISTER
Contact: <sip:alice@192.0.2.9:5060>
Expires: 600
Content-Length: 0

""")


def store(module, core, *bodies):
    for body in bodies:
        ctx = message(body)
        ctx.core = core
        assert module.m_store(ctx) == 1


def test_dump_sends_one_at_a_time_in_order_and_deletes_on_2xx(tmp_path):
    module, core = make(tmp_path)
    store(module, core, "one", "two")
    assert module.m_dump(register(core)) == 1
    (method, ruri, rest, hop, answer), = core.tm.sent
    assert (method, ruri, hop) == ("MESSAGE", "sip:alice@192.0.2.9:5060",
                                   ("udp", "192.0.2.9", 5060))
    assert rest.endswith(b"\r\n\r\none")
    assert f"Date: {sip_date(T0)}\r\n".encode() in rest
    assert b"From: <sip:bob@home.lan>;tag=" in rest and b"To: <sip:alice@home.lan>\r\n" in rest
    answer(200, None)
    assert len(core.tm.sent) == 2 and core.tm.sent[1][2].endswith(b"two")
    core.tm.sent[1][4](200, None)
    assert len(module.store) == 0 and module.dumps == {}
    assert core.stats.counters == {"msilo_stored": 2, "msilo_dumped": 2}


def test_a_second_dump_while_one_is_in_flight_sends_nothing(tmp_path):
    module, core = make(tmp_path)
    store(module, core, "one")
    module.m_dump(register(core, 1))
    module.m_dump(register(core, 2))
    assert len(core.tm.sent) == 1
    core.tm.sent[0][4](100, None)       # a provisional answer changes nothing
    assert len(module.store) == 1 and module.store.messages("alice@home.lan")[0].sending


def test_a_refusal_keeps_the_message_for_the_next_dump(tmp_path):
    module, core = make(tmp_path)
    store(module, core, "one", "two")
    module.m_dump(register(core))
    core.tm.sent[0][4](415, None)
    assert len(core.tm.sent) == 1           # the run stops: "two" is not sent after it
    assert len(module.store) == 2 and module.dumps == {}
    module.m_dump(register(core, 2))
    assert core.tm.sent[1][2].endswith(b"one")


def test_a_timeout_is_retried_check_time_later_a_bounded_number_of_times(tmp_path):
    module, core = make(tmp_path, check_time=5)
    store(module, core, "one")
    module.m_dump(register(core))
    for i in range(RETRIES):
        core.tm.sent[-1][4](408, None)
        core.advance(5)
        assert len(core.tm.sent) == i + 2
    core.tm.sent[-1][4](408, None)
    core.advance(60)
    assert len(core.tm.sent) == RETRIES + 1     # given up until the next REGISTER
    assert len(module.store) == 1 and module.dumps == {}
    module.m_dump(register(core, 2))
    assert len(core.tm.sent) == RETRIES + 2


def test_expiry_by_the_timer_drops_old_messages(tmp_path):
    module, core = make(tmp_path, expire_time=30, check_time=10, clean_period=2)
    store(module, core, "old")
    core.advance(20)            # the expiry check at 20 s: not yet 30 s old
    assert len(module.store) == 1
    core.advance(20)            # the next one, at 40 s
    assert len(module.store) == 0
    assert module.m_dump(register(core)) == -1 and core.tm.sent == []


def test_answers_after_a_reload_reach_the_new_module_and_the_store_is_kept(tmp_path):
    module, core = make(tmp_path)
    store(module, core, "one", "two")
    module.m_dump(register(core))
    new = Msilo(dict(module.params))
    new.start(core, previous=module)
    assert new.store is module.store
    core.tm.sent[0][4](200, None)           # the answer to what the old module sent
    assert len(new.store) == 1 and core.tm.sent[1][2].endswith(b"two")


def test_the_offline_notice_goes_back_to_the_sender_only_when_configured(tmp_path):
    module, core = make(tmp_path)
    store(module, core, "quiet")
    assert core.tm.sent == []
    module, core = make(tmp_path / "2", from_address="sip:silo@home.lan",
                        offline_message="alice is offline; she will get it later",
                        content_type_hdr="Content-Type: text/plain\\r\\n")
    store(module, core, "hello")
    (method, ruri, rest, hop, _), = core.tm.sent
    assert (method, ruri, hop) == ("MESSAGE", "sip:bob@192.0.2.7:5062",
                                   ("udp", "192.0.2.7", 5062))
    assert b"From: <sip:silo@home.lan>;tag=" in rest and b"To: <sip:bob@home.lan>\r\n" in rest
    assert b"Content-Type: text/plain\r\n" in rest
    assert rest.endswith(b"\r\n\r\nalice is offline; she will get it later")


def test_m_store_refuses_what_is_over_the_limits(tmp_path):
    module, core = make(tmp_path, max_messages=1, max_body=5)
    store(module, core, "12345")
    ctx = message("x")
    ctx.core = core
    assert module.m_store(ctx) == -1        # alice's inbox is full
    ctx = message("123456", to="carol")
    ctx.core = core
    assert module.m_store(ctx) == -1        # over max_body
    assert module.store.counts() == {"alice@home.lan": 1}


def test_sip_date_is_rfc_3261_rfc1123_date():
    assert sip_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert sip_date(T0) == "Sat, 06 Dec 2025 05:46:40 GMT"
    assert is_sip_date(sip_date(T0))


class Usrloc:
    """usrloc as msilo reads it: its tables."""

    def __init__(self, store):
        self.tables = {"location": store}

    def table(self, name):
        return self.tables[name]


def test_a_nated_binding_gets_its_messages_at_its_received_address(tmp_path):
    from serlite.store.location import FLAG_NAT, Binding, LocationStore
    module, core = make(tmp_path)
    location = LocationStore(None, 0)
    location.save("alice@home.lan", T0, put=[Binding(
        "alice@home.lan", "sip:alice@192.168.1.20:5060", T0 + 600, -1, "r1", 1, "phone",
        "sip:203.0.113.5:40000", "udp:192.0.2.1:5060", "", FLAG_NAT)])
    usrloc = Usrloc(location)
    core.module = lambda name: {"tm": core.tm, "usrloc": usrloc}.get(name)
    store(module, core, "behind NAT")
    assert module.m_dump(register(core)) == 1
    (method, ruri, rest, hop, _), = core.tm.sent
    assert ruri == "sip:alice@192.168.1.20:5060"
    assert hop == ("udp", "203.0.113.5", 40000)


def test_a_register_that_made_no_binding_dumps_nothing(tmp_path):
    from serlite.store.location import LocationStore
    module, core = make(tmp_path)
    usrloc = Usrloc(LocationStore(None, 0))     # Expires: 0, or save() refused it
    core.module = lambda name: {"tm": core.tm, "usrloc": usrloc}.get(name)
    store(module, core, "later")
    assert module.m_dump(register(core)) == -1 and core.tm.sent == []
    assert len(module.store) == 1


def test_a_folded_content_type_is_kept_on_one_line(tmp_path):
    module, core = make(tmp_path)
    ctx = ctx_of(core, """MESSAGE sip:alice@home.lan SIP/2.0
Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1
From: <sip:bob@home.lan>;tag=1
To: <sip:alice@home.lan>
Call-ID: m1
CSeq: 1 MESSAGE
Content-Type: text/plain;
 charset=utf-8
Content-Length: 2

hi""")
    assert module.m_store(ctx) == 1
    module.m_dump(register(core))
    assert b"Content-Type: text/plain; charset=utf-8\r\n" in core.tm.sent[0][2]
