"""The shipped default config, files/etc/ser/ser.cfg, end to end: the router as it is
installed, with only its file paths moved into the test's directory.

What the config promises (see its header) and what is checked here, with sipp and raw UDP
peers on loopback:
- every REGISTER is authenticated (www_authorize/www_challenge) and a phone may register its
  own address only (check_to); every call needs credentials, from the house too (407, then
  sipp's retry); a pre-loaded Route never takes a call to a gateway;
- tm: a call CANCELled while it rings ends with 200 for the CANCEL and 487;
- calls from outside the house must authenticate (proxy_authorize), but CANCEL and ACK are
  never challenged (RFC 3261 22.1);
- pike throttles outside sources, never the house;
- bindings are written through (usrloc db_mode 1) and survive a restart.

The accounts are what the router has: the config user sections of a UCI file whose
option config names the shipped ser.cfg, turned into the table by `python3 -m serlite.uci`
(as the init script does), realm "serlite".
"""

import re
import secrets
import subprocess
import sys

import pytest

from . import sipnet
from .sipnet import UdpPeer, barrier, is_final, is_request, make_request, status_of
from .test_auth import Phone, authorization, bindings, challenge_of
from .test_stateful import RawUas

SHIPPED = sipnet.REPO / "files" / "etc" / "ser" / "ser.cfg"
USERS = {"alice": "secret", "bob": "bobpw"}
CALLS = 20
OUTSIDE = "127.0.0.2"           # a caller from the internet
SCANNER = "127.0.0.3"           # a flood from the internet
PIKE_DENSITY = 30               # the shipped reqs_density_per_unit
BURST = 60


def shipped_config(tmp_path, *, outside=False):
    """ser.cfg with its file paths in tmp_path. Every replacement must happen exactly once:
    a change of the shipped config fails here, loudly, instead of the tests below quietly
    running something else.

    outside=True also narrows the house's loopback range to 127.0.0.1 alone. The tests have
    only loopback addresses; with the shipped 127.0.0.0/8 every one of them is inside. With
    the narrow range, 127.0.0.1 stays in the house (the phones, the callee) and 127.0.0.2,
    127.0.0.3 ... are the outside: exactly what an internet address gets (pike, proxy auth).
    """
    text = SHIPPED.read_text()
    swaps = [('modparam("usrloc", "db_url", "dbtext:///etc/ser/usrloc")',
              f'modparam("usrloc", "db_url", "dbtext://{tmp_path}/usrloc")'),
             ('modparam("auth_db", "db_url", "dbtext:///var/etc/ser/db")',
              f'modparam("auth_db", "db_url", "dbtext://{tmp_path}/run/db")'),
             ('modparam("auth", "secret_file", "/etc/ser/auth_secret")',
              f'modparam("auth", "secret_file", "{tmp_path}/auth_secret")'),
             ('modparam("acc", "history_file", "/etc/ser/calls")',
              f'modparam("acc", "history_file", "{tmp_path}/calls")'),
             ('modparam("secfilter", "ban_file", "/etc/ser/bans")',
              f'modparam("secfilter", "ban_file", "{tmp_path}/bans")'),
             ('modparam("presence", "db_url", "dbtext:///etc/ser/presence")',
              f'modparam("presence", "db_url", "dbtext://{tmp_path}/presence")')]
    if outside:
        swaps.append(("src_ip == 127.0.0.0/8", "src_ip == 127.0.0.1"))
    for old, new in swaps:
        assert text.count(old) == 1, f"{SHIPPED} changed: {old!r} is not there exactly once"
        text = text.replace(old, new)
    # no other path of the router's file system is left in the script (comments aside)
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert "/etc/ser" not in code, f"{SHIPPED} uses another /etc/ser path: adapt this test"
    return text


def start(ser, tmp_path, *, outside=False):
    uci = tmp_path / "ser.uci"
    uci.write_text(f"config ser 'main'\n\toption config '{SHIPPED}'\n" + "".join(
        f"config user\n\toption name '{u}'\n\toption password '{p}'\n"
        for u, p in USERS.items()))
    gen = subprocess.run([sys.executable, "-m", "serlite.uci", "-c", str(uci),
                          "-o", str(tmp_path / "run")], cwd=sipnet.REPO, capture_output=True,
                         text=True, timeout=30)
    assert gen.returncode == 0 and gen.stdout.strip() == str(SHIPPED), gen.stderr
    return ser(shipped_config(tmp_path, outside=outside))


def auth_args(server, user="alice"):
    """sipp's [authentication] as `user`, the digest uri the Request-URI (sip:bob@SERVER)."""
    return ["-au", user, "-ap", USERS[user],
            "-auth_uri", f"bob@{sipnet.hostport(*server.addr)}"]


def auth_register(server, workdir, user, contact_host, contact_port, transport="udp"):
    """sipp auth_register.xml over UDP from 127.0.0.1: REGISTER -> 401 -> REGISTER with
    credentials -> 200 listing the contact (its ;transport= is `transport`)."""
    row = (user, sipnet.contact_uri(user, contact_host, contact_port), transport, 600)
    inf = sipnet.users_csv(workdir / f"reg-{user}-{secrets.token_hex(3)}.csv", [row])
    args = ["-sf", sipnet.SCENARIOS / "auth_register.xml", "-inf", inf, "-au", user,
            "-ap", USERS[user], "-t", "u1", "-i", "127.0.0.1",
            "-p", sipnet.free_port("udp"), "-m", 1, sipnet.hostport(*server.addr)]
    return sipnet.run_sipp(args, workdir=workdir, timeout=10)


def grace(uac, calls=1):
    # the UAS ends by itself after its last call; if the caller failed, a few seconds only
    return None if uac.ok(calls) else 5


def router_options(server_addr, peer):
    """OPTIONS sip:ROUTER (no user part): the phones' keepalive, answered 200 by the script."""
    uri = f"sip:{sipnet.hostport(*server_addr)}"
    return make_request("OPTIONS", uri, via=(peer.host, peer.port), to=uri)


# --- 1. the core scenarios, with credentials ----------------------------------------------

def test_shipped_config_starts_clean(ser, tmp_path):
    # The router's syslog after a start: a warning or an error in it (at the shipped
    # debug=2) would tell the owner that something of the config does not work.
    server = start(ser, tmp_path, outside=True)
    barrier(server.addr)
    complaints = [line for line in server.log().splitlines()
                  if re.search(r"\b(WARNING|ERROR|CRITICAL|ALERT)\b", line)]
    assert complaints == [], "\n".join(complaints)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_registered_callee_gets_calls_from_the_house(ser, tmp_path, transport):
    # bob's UAS registers with digest auth (auth_register.xml wants the 401, then the 200);
    # the REGISTER itself goes over UDP from the port it names in its Via, so that nathelper
    # sees no NAT: a TCP REGISTER from this short-lived sipp would be bound (fix_nated_register)
    # to its own connection, gone when it exits. The calls go over `transport` from
    # 127.0.0.1, inside the house: 407, then sipp's retry with alice's credentials.
    server = start(ser, tmp_path)
    with sipnet.start_uas(workdir=tmp_path, transport=transport, calls=CALLS) as uas:
        auth_register(server, tmp_path, "bob", uas.host, uas.port, transport).assert_ok(1)
        uac = sipnet.run_uac(server.addr, workdir=tmp_path, service="bob", transport=transport,
                             calls=CALLS, rate=50, scenario="auth_invite.xml",
                             extra=auth_args(server))
        uas_result = uas.wait(timeout=grace(uac, CALLS))
    uac.assert_ok(CALLS)
    uas_result.assert_ok(CALLS)


def test_unknown_callee_gets_404_once_the_caller_logged_in(ser, tmp_path):
    server = start(ser, tmp_path)
    uri = f"sip:nobody@{sipnet.hostport(*server.addr)}"
    with UdpPeer() as caller:
        invite = make_request("INVITE", uri, via=(caller.host, caller.port), to=uri,
                              from_=f"sip:alice@{sipnet.hostport(*server.addr)}")
        caller.send(invite, server.addr)
        got = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
        assert got and status_of(got[0]) == 407, got
        creds = authorization(challenge_of(got[0], "Proxy-Authenticate"), "alice",
                              USERS["alice"], "INVITE", uri, nc=1)
        caller.send(make_request("INVITE", uri, via=(caller.host, caller.port), to=uri,
                                 from_=f"sip:alice@{sipnet.hostport(*server.addr)}",
                                 headers=["Proxy-" + creds]), server.addr)
        got = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
    assert got and status_of(got[0]) == 404, got


def test_wrong_password_or_unknown_user_is_never_200(ser, tmp_path):
    server = start(ser, tmp_path)
    for user, password in (("alice", "wrong"), ("mallory", "secret")):
        phone = Phone(server, user)
        try:
            ch = challenge_of(phone.register())
            reply = phone.register(authorization(ch, user, password, "REGISTER", phone.ruri,
                                                 nc=1))
        finally:
            phone.close()
        assert status_of(reply) == 401, reply
    assert bindings(server, "alice", USERS["alice"]) == []


def test_register_without_credentials_gets_401_and_binds_nothing(ser, tmp_path):
    server = start(ser, tmp_path)
    phone = Phone(server, "alice")
    try:
        reply = phone.register()        # a Contact, no Authorization
    finally:
        phone.close()
    assert status_of(reply) == 401, reply
    challenge = challenge_of(reply)
    assert challenge["realm"] == "serlite" and challenge["nonce"], challenge
    assert bindings(server, "alice", USERS["alice"]) == []


def test_register_for_someone_else_is_forbidden(ser, tmp_path):
    server = start(ser, tmp_path)
    phone = Phone(server, "alice", to_user="bob")       # alice's password, bob's AOR
    try:
        ch = challenge_of(phone.register())
        reply = phone.register(authorization(ch, "alice", USERS["alice"], "REGISTER",
                                             phone.ruri, nc=1))
    finally:
        phone.close()
    assert status_of(reply) == 403, reply
    assert bindings(server, "bob", USERS["bob"]) == []


# --- 2. tm --------------------------------------------------------------------------------

def test_cancel_while_ringing(ser, tmp_path):
    server = start(ser, tmp_path)
    with sipnet.start_uas(workdir=tmp_path, scenario="uas_ring_cancel.xml",
                          trace_msg=True) as uas:
        auth_register(server, tmp_path, "bob", uas.host, uas.port).assert_ok(1)
        uac = sipnet.run_uac(server.addr, workdir=tmp_path, scenario="auth_cancel.xml",
                             trace_msg=True, extra=auth_args(server))
        uas_result = uas.wait(timeout=grace(uac))
    uac.assert_ok(1)            # 180, 200 for the CANCEL, 487
    uas_result.assert_ok(1)     # 180 sent, the CANCEL and the ACK for its 487 received
    assert uas_result.received("CANCEL") == 1, uas_result.describe()


# --- 3. from outside the house --------------------------------------------------------------

class Callee(RawUas):
    """bob on a raw UDP socket (registered by auth_register): answers only when told to, and
    keeps every datagram it received in `seen`, unexpected ones too."""

    def __init__(self, server):
        super().__init__(server, "bob")
        self.seen = []

    def recv_until(self, until, timeout):
        got = super().recv_until(until, timeout)
        self.seen += got
        return got

    def requests(self, method):
        return [m for m in self.seen if is_request(method)(m)]


def start_caller(server, workdir, scenario):
    """sipp on OUTSIDE calling sip:bob@server as alice, in the background."""
    args = ["-sf", sipnet.SCENARIOS / scenario, "-s", "bob", "-au", "alice",
            "-ap", USERS["alice"], "-auth_uri", f"bob@{sipnet.hostport(*server.addr)}",
            "-t", "u1", "-i", OUTSIDE, "-p", sipnet.free_port("udp"), "-m", 1,
            sipnet.hostport(*server.addr)]
    return sipnet.start_sipp(args, workdir=workdir, timeout=10, trace_msg=True,
                             name=f"outside-{scenario.split('.')[0]}")


def test_invite_without_credentials_gets_407_from_outside_and_from_the_house(ser, tmp_path):
    # The same INVITE for bob, without credentials, from outside and from the house.
    server = start(ser, tmp_path, outside=True)
    uri = f"sip:bob@{sipnet.hostport(*server.addr)}"
    with Callee(server) as bob:
        auth_register(server, tmp_path, "bob", bob.host, bob.port).assert_ok(1)
        with UdpPeer(host=OUTSIDE) as caller:
            caller.send(make_request("INVITE", uri, via=(caller.host, caller.port), to=uri,
                                     from_=f"sip:alice@{sipnet.hostport(*server.addr)}"),
                        server.addr)
            got = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
        assert got and status_of(got[0]) == 407, got
        assert challenge_of(got[0], "Proxy-Authenticate")["realm"] == "serlite"
        with UdpPeer(host="127.0.0.1") as caller:
            caller.send(make_request("INVITE", uri, via=(caller.host, caller.port), to=uri,
                                     from_=f"sip:alice@{sipnet.hostport(*server.addr)}"),
                        server.addr)
            got = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
        assert got and status_of(got[0]) == 407, got     # the house logs in too
        barrier(server.addr)
        assert bob.drain() == [], "an unauthenticated INVITE reached bob"


def test_preloaded_route_never_reaches_the_gateway(ser, tmp_path):
    # Toll fraud: an INVITE with Route: <sip:GATEWAY;lr> and no credentials, from outside
    # and from the house, is challenged and never relayed to the gateway.
    server = start(ser, tmp_path, outside=True)
    uri = f"sip:bob@{sipnet.hostport(*server.addr)}"
    with UdpPeer() as gateway:
        for local in (OUTSIDE, "127.0.0.1"):
            with UdpPeer(host=local) as caller:
                caller.send(make_request(
                    "INVITE", uri, via=(caller.host, caller.port), to=uri,
                    from_=f"sip:alice@{sipnet.hostport(*server.addr)}",
                    headers=[f"Route: <sip:{sipnet.hostport(gateway.host, gateway.port)};lr>"]),
                    server.addr)
                got = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
            assert got and status_of(got[0]) == 407, (local, got)
        barrier(server.addr)
        assert gateway.drain() == [], "an INVITE with a pre-loaded Route reached the gateway"


def test_outside_call_with_credentials_reaches_the_callee(ser, tmp_path):
    # auth_invite.xml: INVITE -> 407 -> ACK; INVITE with Proxy-Authorization -> 180, 200 ->
    # ACK, BYE (record-routed: through the proxy, in the dialog, never challenged).
    server = start(ser, tmp_path, outside=True)
    with Callee(server) as bob:
        auth_register(server, tmp_path, "bob", bob.host, bob.port).assert_ok(1)
        with start_caller(server, tmp_path, "auth_invite.xml") as uac:
            invite = bob.expect("INVITE")
            bob.answer_call(invite)
            result = uac.wait()
        barrier(server.addr)
        bob.seen += bob.drain()
    result.assert_ok(1)
    assert len(bob.requests("INVITE")) == 1, bob.seen
    assert b"proxy-authorization" not in invite.lower()   # consume_credentials()
    # The ACK for the 407 is the end of a transaction the proxy answered itself: it is not
    # challenged, and it goes no further than the proxy (SER's sl module absorbs the ACK of
    # its own replies before the script runs). bob gets the ACK of his 200 only.
    acks = bob.requests("ACK")
    assert [sipnet.header_values(m, "CSeq") for m in acks] == [["2 ACK"]], \
        "the ACK for the proxy's 407 reached the callee:\n" + \
        "\n".join(m.decode(errors="replace") for m in acks)


def test_sipp_stock_authentication_register_and_invite(ser, tmp_path):
    # sipp's [authentication] as it comes puts sip:SERVER:PORT in the digest uri, which is not
    # the Request-URI (REGISTER sip:SERVER:PORT;transport=UDP, INVITE sip:bob@SERVER:PORT):
    # accepted, as SER and Kamailio do (issue 13, item 4)
    server = start(ser, tmp_path, outside=True)
    with Callee(server) as bob:
        row = ("bob", sipnet.contact_uri("bob", bob.host, bob.port), "udp", 600)
        inf = sipnet.users_csv(tmp_path / "stock-bob.csv", [row])
        sipnet.run_sipp(["-sf", sipnet.SCENARIOS / "auth_register_stock.xml", "-inf", inf,
                         "-au", "bob", "-ap", USERS["bob"], "-t", "u1", "-i", "127.0.0.1",
                         "-p", sipnet.free_port("udp"), "-m", 1,
                         sipnet.hostport(*server.addr)],
                        workdir=tmp_path, timeout=10).assert_ok(1)
        args = ["-sf", sipnet.SCENARIOS / "auth_invite.xml", "-s", "bob", "-au", "alice",
                "-ap", USERS["alice"], "-t", "u1", "-i", OUTSIDE,
                "-p", sipnet.free_port("udp"), "-m", 1, sipnet.hostport(*server.addr)]
        with sipnet.start_sipp(args, workdir=tmp_path, timeout=10, name="stock-invite") as uac:
            bob.answer_call(bob.expect("INVITE"))
            result = uac.wait()
    result.assert_ok(1)


def test_outside_cancel_is_not_challenged(ser, tmp_path):
    # auth_cancel.xml: the authenticated INVITE rings, then a CANCEL without credentials:
    # it must get 200 (a 407 would fail the caller), reach bob, and end the INVITE with 487.
    server = start(ser, tmp_path, outside=True)
    with Callee(server) as bob:
        auth_register(server, tmp_path, "bob", bob.host, bob.port).assert_ok(1)
        with start_caller(server, tmp_path, "auth_cancel.xml") as uac:
            invite = bob.expect("INVITE")
            bob.reply(invite, 180, "Ringing")
            cancel = bob.expect("CANCEL")
            bob.reply(cancel, 200, "OK")
            bob.reply(invite, 487, "Request Terminated")
            bob.expect("ACK")       # the proxy's ACK for the 487 (RFC 3261 17.1.1.3)
            result = uac.wait()
    result.assert_ok(1)
    assert b"proxy-authorization" not in cancel.lower()


# --- 4. pike ------------------------------------------------------------------------------

def burst(server, local):
    """BURST keepalive OPTIONS from `local`, sent back to back; how many got their 200.

    serlite handles datagrams in the order they come: once a later OPTIONS from the house
    (barrier) is answered, every answer to the burst has been sent and is in the socket."""
    with UdpPeer(host=local) as peer:
        for _ in range(BURST):
            peer.send(router_options(server.addr, peer), server.addr)
        barrier(server.addr)
        return sum(status_of(m) == 200 for m in peer.drain())


def test_pike_throttles_outside_sources_only(ser, tmp_path):
    server = start(ser, tmp_path, outside=True)
    outside = burst(server, SCANNER)
    assert 0 < outside <= PIKE_DENSITY, f"{outside} of {BURST} answered"
    inside = burst(server, "127.0.0.1")
    assert inside == BURST, f"{inside} of {BURST} answered"


# --- 5. persistence -----------------------------------------------------------------------

def test_binding_survives_a_restart(ser, tmp_path):
    server = start(ser, tmp_path)
    auth_register(server, tmp_path, "bob", "127.0.0.1", 7001).assert_ok(1)
    wanted = ["sip:bob@127.0.0.1:7001;transport=udp"]
    assert bindings(server, "bob", USERS["bob"]) == wanted
    assert server.stop() == 0
    server.start()
    assert bindings(server, "bob", USERS["bob"]) == wanted
