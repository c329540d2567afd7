"""The registrar of RFC 3261 10.3, driven by raw REGISTERs over UDP built here.

Each test starts serlite on the SER seed config (usrloc db_mode 0) with the registrar's
modparams it needs, sends REGISTERs from one loopback socket and reads the 200's Contact
list: every current binding of the AOR with its remaining expires (and q when set).
The last test forks an INVITE to two registered contacts (t_relay after lookup).
"""

import re
import secrets

import pytest

from . import sipnet
from .sipnet import UdpPeer, has_status, is_final, is_request, response_to, status_of

SEED = sipnet.SEED_CFG.read_text()
USRLOC = 'modparam("usrloc", "db_mode", 0)'
assert USRLOC in SEED


def seed_with(*modparams):
    """The seed config with extra modparam lines after usrloc's."""
    return SEED.replace(USRLOC, "\n".join([USRLOC, *modparams]))


class Client:
    """A UA registering one AOR: one Call-ID and a rising CSeq unless told otherwise."""

    def __init__(self, server, user):
        self.server = server
        self.addr = server.addr
        self.user = user
        self.peer = UdpPeer()
        self.call_id = secrets.token_hex(10) + "@e2e"
        self.cseq = 0
        self.aor = f"sip:{user}@{sipnet.hostport(*self.addr)}"

    def close(self):
        self.peer.close()

    def register(self, contacts=(), expires=None, *, call_id=None, cseq=None, headers=()):
        """Send one REGISTER; return its final response (fail if none within 2 s).

        contacts: Contact header values, one header line each (a value may list several).
        """
        if cseq is None:
            cseq = self.cseq + 1
        self.cseq = max(self.cseq, cseq)
        extra = [f"Contact: {c}" for c in contacts]
        if expires is not None:
            extra.append(f"Expires: {expires}")
        req = sipnet.make_request("REGISTER", f"sip:{sipnet.hostport(*self.addr)}",
                                  via=(self.peer.host, self.peer.port), to=self.aor,
                                  call_id=call_id or self.call_id, cseq=cseq,
                                  headers=[*extra, *headers])
        self.peer.send(req, self.addr)
        finals = [r for r in self.peer.recv_until(is_final, 2.0) if is_final(r)]
        assert finals, f"no final response to\n{req.decode()}"
        return finals[0]

    def bindings(self):
        """The AOR's bindings as a REGISTER without Contact lists them."""
        reply = self.register()
        assert status_of(reply) == 200, reply
        return bindings_of(reply)


def bindings_of(reply):
    """{contact URI: {param: value}} from a 200's Contact header values."""
    out = {}
    for value in sipnet.header_values(reply, "contact"):
        for part in re.findall(r'(?:"[^"]*"|<[^>]*>|[^,])+', value):
            m = re.match(r"\s*<([^>]*)>(.*)$", part)
            assert m, f"Contact value not in <>: {part!r}"
            params = {}
            for p in m.group(2).split(";")[1:]:
                name, _, val = p.strip().partition("=")
                params[name.lower()] = val
            out[m.group(1)] = params
    return out


def contact(n, user="u"):
    return f"sip:{user}@127.0.0.1:{41000 + n}"


def expires_in(reply_or_bindings, uri):
    b = reply_or_bindings if isinstance(reply_or_bindings, dict) else bindings_of(reply_or_bindings)
    assert uri in b, f"{uri} not among the bindings {b}"
    return int(b[uri]["expires"])


def near(value, want):
    # the registrar reports the time left: a second may pass between save and answer
    return want - 2 <= value <= want


@pytest.fixture
def client(ser):
    clients = []

    def make(config=SEED, user=None, server=None):
        server = server or ser(config)
        c = Client(server, user or f"u{secrets.token_hex(3)}")
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


# --- expiry (10.3 step 7) -------------------------------------------------------------------

def test_contact_expires_param_wins_over_expires_header(client):
    c = client()
    reply = c.register([f"<{contact(1)}>;expires=120", f"<{contact(2)}>"], expires=300)
    assert status_of(reply) == 200, reply
    assert near(expires_in(reply, contact(1)), 120)
    assert near(expires_in(reply, contact(2)), 300)


def test_default_expires_is_3600(client):
    c = client()
    reply = c.register([f"<{contact(1)}>"])
    assert status_of(reply) == 200, reply
    assert near(expires_in(reply, contact(1)), 3600)


def test_max_expires_caps(client):
    c = client(seed_with('modparam("registrar", "max_expires", 600)'))
    reply = c.register([f"<{contact(1)}>;expires=3600", f"<{contact(2)}>", f"<{contact(3)}>"],
                       expires=7200)
    assert status_of(reply) == 200, reply
    b = bindings_of(reply)
    assert near(expires_in(b, contact(1)), 600)     # param above the cap
    assert near(expires_in(b, contact(2)), 600)     # Expires header above the cap
    reply = c.register([f"<{contact(4)}>;expires=500"])
    assert near(expires_in(reply, contact(4)), 500)  # below the cap: as asked


def test_min_expires_raises_short_values_to_60(client):
    c = client()
    reply = c.register([f"<{contact(1)}>;expires=10", f"<{contact(2)}>;expires=59"])
    assert status_of(reply) == 200, reply
    assert near(expires_in(reply, contact(1)), 60)
    assert near(expires_in(reply, contact(2)), 60)


def test_min_expires_mode_1_answers_423_with_min_expires(client):
    c = client(seed_with('modparam("registrar", "min_expires_mode", 1)'))
    reply = c.register([f"<{contact(1)}>;expires=10"])
    assert status_of(reply) == 423, reply
    assert sipnet.header_values(reply, "Min-Expires") == ["60"]
    assert c.bindings() == {}                       # nothing was saved
    reply = c.register([f"<{contact(1)}>;expires=60"])
    assert status_of(reply) == 200 and near(expires_in(reply, contact(1)), 60), reply


# --- the Contact list -----------------------------------------------------------------------

def test_several_contacts_in_one_header_and_in_several(client):
    c = client()
    reply = c.register([f"<{contact(1)}>, <{contact(2)}>;expires=100", f"<{contact(3)}>"],
                       expires=200)
    assert status_of(reply) == 200, reply
    b = bindings_of(reply)
    assert set(b) == {contact(1), contact(2), contact(3)}
    assert [near(expires_in(b, contact(i)), want) for i, want in ((1, 200), (2, 100), (3, 200))] \
        == [True] * 3


def test_200_lists_every_binding_with_expires_and_q(client):
    c = client()
    first = c.register([f"<{contact(1)}>;q=0.5;expires=300"])
    assert status_of(first) == 200, first
    # a second UA of the same AOR (its own Call-ID): the 200 lists both bindings
    other = client(server=c.server, user=c.user)
    reply = other.register([f"<{contact(2)}>;expires=200"])
    assert status_of(reply) == 200, reply
    b = bindings_of(reply)
    assert set(b) == {contact(1), contact(2)}
    assert b[contact(1)]["q"] == "0.5" and near(int(b[contact(1)]["expires"]), 300)
    assert "q" not in b[contact(2)] and near(int(b[contact(2)]["expires"]), 200)
    line = [v for v in sipnet.header_values(reply, "contact") if contact(1) in v]
    assert any(";q=0.5" in v for v in line), line


def test_register_without_contact_lists_bindings_without_changing_them(client):
    c = client()
    c.register([f"<{contact(1)}>;expires=300", f"<{contact(2)}>;expires=600"])
    listed = c.bindings()
    assert set(listed) == {contact(1), contact(2)}
    # not even an Expires: 0 without Contact changes anything (10.3 step 6 needs a Contact)
    reply = c.register(expires=0)
    assert status_of(reply) == 200 and set(bindings_of(reply)) == set(listed), reply
    again = c.bindings()
    assert set(again) == set(listed)
    assert near(expires_in(again, contact(2)), 600)   # not refreshed to the default


# --- Contact: * -----------------------------------------------------------------------------

def test_star_with_expires_0_removes_all(client):
    c = client()
    c.register([f"<{contact(1)}>", f"<{contact(2)}>"])
    other = client(server=c.server, user=c.user)
    other.register([f"<{contact(3)}>"])
    assert len(c.bindings()) == 3
    reply = c.register(["*"], expires=0)
    assert status_of(reply) == 200, reply
    assert sipnet.contacts_of(reply) == []
    assert c.bindings() == {}


@pytest.mark.parametrize("contacts, expires", [
    (["*"], 3600),
    (["*"], None),
    (["*", "<sip:x@127.0.0.1:41999>"], 0),
    (["*, <sip:x@127.0.0.1:41999>"], 0),
], ids=["expires-3600", "no-expires", "star-and-another-header", "star-and-another-value"])
def test_star_otherwise_is_400(client, contacts, expires):
    c = client()
    c.register([f"<{contact(1)}>"])
    reply = c.register(contacts, expires=expires)
    assert status_of(reply) == 400, reply
    assert set(c.bindings()) == {contact(1)}


# --- Call-ID and CSeq (10.3 step 7) ---------------------------------------------------------

def test_same_call_id_needs_a_higher_cseq(client):
    c = client()
    assert status_of(c.register([f"<{contact(1)}>;expires=300"], cseq=5)) == 200
    for cseq in (5, 4):
        reply = c.register([f"<{contact(1)}>;expires=1000"], cseq=cseq)
        assert status_of(reply) == 400, reply
        assert near(expires_in(c.bindings(), contact(1)), 300)
    reply = c.register([f"<{contact(1)}>;expires=1000"], cseq=c.cseq + 1)
    assert status_of(reply) == 200, reply
    assert near(expires_in(reply, contact(1)), 1000)


def test_out_of_order_register_changes_no_binding(client):
    # the whole request fails: the other contact it carried is not saved either
    c = client()
    c.register([f"<{contact(1)}>;expires=300"], cseq=5)
    reply = c.register([f"<{contact(2)}>", f"<{contact(1)}>;expires=900"], cseq=3)
    assert status_of(reply) == 400, reply
    assert set(c.bindings()) == {contact(1)}


def test_other_call_id_replaces_the_binding(client):
    c = client()
    c.register([f"<{contact(1)}>;expires=3000"], cseq=10)
    reply = c.register([f"<{contact(1)}>;expires=100"], call_id="another@e2e", cseq=1)
    assert status_of(reply) == 200, reply
    b = bindings_of(reply)
    assert list(b) == [contact(1)] and near(expires_in(b, contact(1)), 100)


def test_expires_0_removes_just_that_contact(client):
    c = client()
    c.register([f"<{contact(1)}>", f"<{contact(2)}>"])
    reply = c.register([f"<{contact(1)}>;expires=0"])
    assert status_of(reply) == 200, reply
    assert set(bindings_of(reply)) == {contact(2)}
    assert set(c.bindings()) == {contact(2)}


@pytest.mark.parametrize("where", ["param", "header"])
def test_overlarge_expires_is_400(client, where):
    # delta-seconds above 2**32-1 (RFC 3261 20.19) do not fit SER's 32-bit field
    c = client()
    c.register([f"<{contact(1)}>;expires=300"])
    huge = str(2 ** 32)
    if where == "param":
        reply = c.register([f"<{contact(2)}>;expires={huge}"])
    else:
        reply = c.register([f"<{contact(2)}>"], expires=huge)
    assert status_of(reply) == 400, reply
    assert set(c.bindings()) == {contact(1)}


# --- lookup forks -------------------------------------------------------------------------

def test_lookup_forks_to_every_contact_and_cancels_the_ringing_one(client):
    c = client(user="bob")
    server = c.server
    with UdpPeer() as phone1, UdpPeer() as phone2, UdpPeer() as caller:
        reply = c.register([f"<sip:bob@127.0.0.1:{phone1.port}>",
                            f"<sip:bob@127.0.0.1:{phone2.port}>"])
        assert len(bindings_of(reply)) == 2, reply

        invite = sipnet.make_request("INVITE", f"sip:bob@{sipnet.hostport(*server.addr)}",
                                     via=(caller.host, caller.port),
                                     to=f"sip:bob@{sipnet.hostport(*server.addr)}",
                                     from_="sip:alice@127.0.0.1",
                                     headers=[f"Contact: <sip:alice@127.0.0.1:{caller.port}>"])
        caller.send(invite, server.addr)
        inv1 = phone1.recv_until(is_request("INVITE"), 2.0)
        inv2 = phone2.recv_until(is_request("INVITE"), 2.0)
        assert inv1 and is_request("INVITE")(inv1[-1]), "phone 1 got no INVITE"
        assert inv2 and is_request("INVITE")(inv2[-1]), "phone 2 got no INVITE"
        inv1, inv2 = inv1[-1], inv2[-1]
        assert sipnet.request_line(inv1)[1] == f"sip:bob@127.0.0.1:{phone1.port}"
        assert sipnet.request_line(inv2)[1] == f"sip:bob@127.0.0.1:{phone2.port}"

        # a UAS's 100 stays at serlite (16.7 step 5): the caller has serlite's own 100 only
        phone1.send(response_to(inv1, 100, "Trying"), server.addr)
        phone1.send(response_to(inv1, 180, "Ringing", to_tag="p1"), server.addr)
        ringing = caller.recv_until(has_status(180), 2.0)
        assert [status_of(m) for m in ringing] == [100, 180], ringing
        phone2.send(response_to(inv2, 200, "OK", to_tag="p2",
                                headers=[f"Contact: <sip:bob@127.0.0.1:{phone2.port}>"]),
                    server.addr)
        got = caller.recv_until(has_status(200), 2.0)
        assert got and status_of(got[-1]) == 200, got

        # 16.7 step 10: the branch that rang is cancelled once a 2xx went up
        cancel = phone1.recv_until(is_request("CANCEL"), 2.0)
        assert cancel and is_request("CANCEL")(cancel[-1]), cancel
        cancel = cancel[-1]
        assert sipnet.request_line(cancel)[1] == sipnet.request_line(inv1)[1]
        assert sipnet.header_values(cancel, "via")[0] == sipnet.header_values(inv1, "via")[0]
        phone1.send(response_to(cancel, 200, "OK", to_tag="p1"), server.addr)
        phone1.send(response_to(inv1, 487, "Request Terminated", to_tag="p1"), server.addr)
        ack = phone1.recv_until(is_request("ACK"), 2.0)
        assert ack and is_request("ACK")(ack[-1]), "the 487 was not ACKed hop by hop"

        sipnet.barrier(server.addr)
        # the answered phone is not cancelled, and the caller never sees the 487
        assert not [m for m in phone2.drain() if is_request("CANCEL")(m)]
        assert [status_of(m) for m in caller.drain()
                if status_of(m) is not None and status_of(m) >= 300] == []


# --- contacts compared as URIs (10.3 step 7, 19.1.4) ---------------------------------------

@pytest.mark.parametrize("saved, sent", [
    ("sip:u@Host.Example:41001", "sip:u@host.example:41001"),
    ("sip:u@127.0.0.1:41001;transport=UDP", "sip:u@127.0.0.1:41001;transport=udp"),
], ids=["host-case", "param-value-case"])
def test_contact_matched_by_uri_equality(client, saved, sent):
    # "the registrar then searches the list of current bindings using the URI comparison
    # rules": hosts and parameter values compare case-insensitively, so expires=0 on the
    # other spelling removes the binding
    c = client()
    assert set(bindings_of(c.register([f"<{saved}>"]))) == {saved}
    reply = c.register([f"<{sent}>;expires=0"])
    assert status_of(reply) == 200, reply
    assert bindings_of(reply) == {}


def test_cancel_of_a_forked_invite_reaches_every_ringing_branch(client):
    # 16.10: serlite answers the CANCEL and cancels each pending branch; once the branches
    # answer 487 (and are ACKed hop by hop) the caller gets one 487
    c = client(user="bob")
    server = c.server
    with UdpPeer() as phone1, UdpPeer() as phone2, UdpPeer() as caller:
        c.register([f"<sip:bob@127.0.0.1:{phone1.port}>", f"<sip:bob@127.0.0.1:{phone2.port}>"])
        aor = f"sip:bob@{sipnet.hostport(*server.addr)}"
        invite = sipnet.make_request("INVITE", aor, via=(caller.host, caller.port), to=aor,
                                     from_="sip:alice@127.0.0.1")
        caller.send(invite, server.addr)
        invites = []
        for phone, tag in ((phone1, "p1"), (phone2, "p2")):
            got = phone.recv_until(is_request("INVITE"), 2.0)
            assert got and is_request("INVITE")(got[-1]), got
            invites.append(got[-1])
            phone.send(response_to(got[-1], 180, "Ringing", to_tag=tag), server.addr)
        assert [status_of(m) for m in caller.recv_until(has_status(180), 2.0)][-1:] == [180]

        cancel = invite.replace(b"INVITE sip:", b"CANCEL sip:", 1).replace(b" INVITE\r\n",
                                                                           b" CANCEL\r\n")
        caller.send(cancel, server.addr)
        for phone, inv, tag in ((phone1, invites[0], "p1"), (phone2, invites[1], "p2")):
            got = phone.recv_until(is_request("CANCEL"), 2.0)
            assert got and is_request("CANCEL")(got[-1]), f"phone {tag} got no CANCEL: {got}"
            phone.send(response_to(got[-1], 200, "OK", to_tag=tag), server.addr)
            phone.send(response_to(inv, 487, "Request Terminated", to_tag=tag), server.addr)
            ack = phone.recv_until(is_request("ACK"), 2.0)
            assert ack and is_request("ACK")(ack[-1]), f"phone {tag}: 487 not ACKed"
        got = caller.recv_until(has_status(487), 2.0)
        sipnet.barrier(server.addr)
        got += caller.drain()
    finals = [(status_of(m), sipnet.header_values(m, "cseq")[0].split()[1])
              for m in got if is_final(m)]
    assert sorted(finals) == [(200, "CANCEL"), (487, "INVITE")], finals
