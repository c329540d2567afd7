"""registrar's save() in process (RFC 3261 10.3): the 200's Contact list, refreshes, CSeq order,
expires and q, ``*``, max_contacts, and what a binding keeps; with a fake core and fake time.
(tests/e2e/test_registrar.py drives the same over UDP.)"""

import pytest

from serlite.modules import registrar, usrloc
from serlite.proxy.context import Context, Source
from serlite.sip.message import parse
from serlite.store.location import FLAG_NAT

NOW = 1_700_000_000
AOR = "alice"


class Listener:
    name = "udp:192.168.1.1:5060"


class FakeCore:
    """What the registrar asks of the core: the wall clock, usrloc, and sending its answer."""

    def __init__(self):
        self.clock = NOW + 0.25
        self.modules = {}
        self.replies = []           # (status, reason, headers)

    def wall(self):
        return self.clock

    def module(self, name):
        return self.modules.get(name)

    def send_reply(self, ctx, status, reason, headers=()):
        self.replies.append((status, reason, list(headers)))
        return True


def module_params(spec, **params):
    p = {name: param.default for name, param in spec.params.items()}
    p.update(params)
    return p


@pytest.fixture
def server():
    def make(**params):
        core = FakeCore()
        ul = usrloc.Usrloc(module_params(usrloc.EXPORTS))
        ul.core = core
        reg = registrar.Registrar(module_params(registrar.EXPORTS, **params))
        reg.core = core
        core.modules = {"usrloc": ul, "registrar": reg}
        return core, reg, ul.table("location")
    return make


def register(core, reg, contacts=(), expires=None, cseq=1, call_id="c1@phone", ua=None,
             received=None):
    """Run save("location") on one REGISTER; returns (status, reason, Contact values)."""
    lines = ["REGISTER sip:home.lan SIP/2.0",
             "Via: SIP/2.0/UDP 192.168.1.23:5060;branch=z9hG4bK-1",
             "Max-Forwards: 70",
             "From: <sip:alice@home.lan>;tag=1",
             "To: <sip:alice@home.lan>",
             f"Call-ID: {call_id}",
             f"CSeq: {cseq} REGISTER",
             *(f"Contact: {c}" for c in contacts),
             *([f"Expires: {expires}"] if expires is not None else []),
             *([f"User-Agent: {ua}"] if ua else []),
             "Content-Length: 0"]
    msg = parse(("\r\n".join(lines) + "\r\n\r\n").encode())
    ctx = Context(msg, Source("udp", "192.168.1.23", 5060, Listener()), core)
    ctx.received = received
    reg.save(ctx, "location")
    status, reason, headers = core.replies.pop()
    return status, reason, [v for name, v in headers if name == "Contact"]


def test_the_200_lists_every_binding_with_its_time_left_and_q(server):
    core, reg, _ = server()
    status, _, contacts = register(core, reg, ["<sip:a@h>;q=0.5", "<sip:b@h>;expires=120"],
                                   expires=300)
    assert status == 200
    assert contacts == ["<sip:a@h>;expires=300;q=0.5", "<sip:b@h>;expires=120"]
    core.clock += 10.5          # a REGISTER without Contact only asks (10.3 step 8)
    assert register(core, reg, cseq=2)[2] == ["<sip:a@h>;expires=290;q=0.5",
                                              "<sip:b@h>;expires=110"]


@pytest.mark.parametrize("q, shown", [("1", ";q=1"), ("1.000", ";q=1"), ("0", ";q=0"),
                                      ("0.123", ";q=0.123"), ("0.05", ";q=0.05"),
                                      ("0.7", ";q=0.7")])
def test_q_is_shown_as_given(server, q, shown):
    core, reg, _ = server()
    assert register(core, reg, [f"<sip:a@h>;q={q}"])[2] == [f"<sip:a@h>;expires=3600{shown}"]


def test_a_refresh_is_a_new_binding_and_cseq_must_rise_within_a_call_id(server):
    core, reg, store = server()
    register(core, reg, ["<sip:a@h>"], cseq=5, ua="Yealink T46S")
    first = store.get(AOR, "sip:a@h")
    core.clock += 60
    assert register(core, reg, ["<sip:a@h>"], cseq=6, ua="Yealink T46S")[0] == 200
    refreshed = store.get(AOR, "sip:a@h")
    # a new object (nathelper's keepalive tells a re-registration by identity), same strings
    assert refreshed is not first
    assert (refreshed.cseq, refreshed.expires) == (6, NOW + 60 + 3600)
    assert refreshed.aor is first.aor and refreshed.user_agent is first.user_agent
    assert len(store) == 1
    # 10.3 step 7: same Call-ID, CSeq not higher -> 400, nothing changed
    assert register(core, reg, ["<sip:a@h>"], cseq=6)[:2] == (400, "Out of Order CSeq")
    assert store.get(AOR, "sip:a@h") is refreshed
    # another Call-ID (the phone restarted) may start low again
    assert register(core, reg, ["<sip:a@h>"], cseq=1, call_id="c2@phone")[0] == 200
    assert store.get(AOR, "sip:a@h").call_id == "c2@phone"


def test_contacts_are_compared_as_uris(server):
    core, reg, store = server()
    register(core, reg, ["<sip:alice@Example.COM:5060;transport=udp>"])
    # 19.1.4: the host compares case-insensitively; the new text replaces the old binding
    _, _, contacts = register(core, reg, ["<sip:alice@example.com:5060;transport=UDP>"], cseq=2)
    assert contacts == ["<sip:alice@example.com:5060;transport=UDP>;expires=3600"]
    assert len(store) == 1


def test_expires_0_removes_a_contact_and_star_removes_all(server):
    core, reg, store = server()
    register(core, reg, ["<sip:a@h>", "<sip:b@h>", "<sip:c@h>"])
    assert register(core, reg, ["<sip:a@h>;expires=0"], cseq=2)[2] == [
        "<sip:c@h>;expires=3600", "<sip:b@h>;expires=3600"]
    assert register(core, reg, ["<sip:b@h>"], expires=0, cseq=3)[2] == [
        "<sip:c@h>;expires=3600"]
    # 10.3 step 6: "*" needs Expires: 0
    assert register(core, reg, ["*"], cseq=4)[0] == 400
    assert register(core, reg, ["*"], expires=0, cseq=5)[:3] == (200, "OK", [])
    assert len(store) == 0


def test_expires_limits(server):
    core, reg, _ = server(min_expires=60, max_expires=600)
    assert register(core, reg, ["<sip:a@h>;expires=7200", "<sip:b@h>;expires=10"])[2] == [
        "<sip:b@h>;expires=60", "<sip:a@h>;expires=600"]
    assert register(core, reg, ["<sip:c@h>"], expires=2 ** 32 - 1, cseq=2)[2][0] == \
        "<sip:c@h>;expires=600"
    assert register(core, reg, ["<sip:d@h>;expires=4294967296"], cseq=3)[0] == 400
    assert register(core, reg, ["<sip:d@h>;expires=soon"], cseq=4)[0] == 400
    assert register(core, reg, ["<sip:d@h>"], expires=4294967296, cseq=5)[0] == 400
    core, reg, _ = server(min_expires=60, min_expires_mode=1)
    status, reason, _ = register(core, reg, ["<sip:a@h>;expires=10"])
    assert (status, reason) == (423, "Interval Too Brief")


def test_bad_q_is_refused_unless_the_contact_goes(server):
    core, reg, store = server()
    assert register(core, reg, ["<sip:a@h>;q=1.5"])[0] == 400
    assert register(core, reg, ["<sip:a@h>;q=x;expires=0"], cseq=2)[0] == 200
    assert len(store) == 0


def test_max_contacts(server):
    core, reg, store = server(max_contacts=2)
    register(core, reg, ["<sip:a@h>", "<sip:b@h>"])
    assert register(core, reg, ["<sip:c@h>"], cseq=2)[:2] == (
        403, "Too Many Registered Contacts")
    # replacing one within the limit is fine
    assert register(core, reg, ["<sip:a@h>;expires=0", "<sip:c@h>"], cseq=3)[0] == 200
    assert sorted(b.contact for b in store.lookup(AOR, NOW)) == ["sip:b@h", "sip:c@h"]


def test_the_binding_keeps_user_agent_socket_and_nat(server):
    core, reg, store = server()
    register(core, reg, ["<sip:a@h>"], ua="Yealink T46S", received="sip:203.0.113.9:41000")
    b = store.get(AOR, "sip:a@h")
    assert (b.user_agent, b.socket, b.received, b.flags, b.q) == (
        "Yealink T46S", "udp:192.168.1.1:5060", "sip:203.0.113.9:41000", FLAG_NAT, -1)
    register(core, reg, ["<sip:b@h>"], cseq=2)
    b = store.get(AOR, "sip:b@h")
    assert (b.user_agent, b.received, b.flags) == ("", "", 0)


def test_lookup_to_dset_appends_the_aors_contacts_and_leaves_the_r_uri(server):
    """Kamailio's lookup_to_dset(table, uri): a provider's call rings a second extension too."""
    from serlite.sip.uri import URI
    core, reg, store = server()
    register(core, reg, ["<sip:a@192.168.1.23>", "<sip:b@192.168.1.24>"],
             received="sip:203.0.113.9:41000")
    invite = parse(b"INVITE sip:house@192.168.1.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;"
                   b"branch=z9hG4bK-2\r\nFrom: <sip:pstn@192.0.2.2>;tag=9\r\nTo: <sip:house@"
                   b"192.168.1.1>\r\nCall-ID: x@p\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    ctx = Context(invite, Source("udp", "192.0.2.2", 5060, Listener()), core)
    assert reg.lookup_to_dset(ctx, "location", URI.parse("sip:alice@home.lan")) == 1
    assert ctx.ruri == "sip:house@192.168.1.1" and ctx.ruri_new
    assert sorted((b.uri, b.dst_uri) for b in ctx.branches) == [
        ("sip:a@192.168.1.23", "sip:203.0.113.9:41000"),
        ("sip:b@192.168.1.24", "sip:203.0.113.9:41000")]
    assert reg.lookup_to_dset(ctx, "location", URI.parse("sip:nobody@home.lan")) == -1
    assert len(ctx.branches) == 2
