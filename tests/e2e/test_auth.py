"""Digest authentication end to end: serlite with auth + auth_db, accounts made with ser-ctl,
sipp's [authentication] as the phone, and a raw UDP client for what sipp cannot do (replaying
an Authorization header, coming back with an expired nonce).

The realm: the config says www_authorize("", ...), so a REGISTER is challenged with the To
host, here 127.0.0.1 (the server's address, as the phones of a house use it), and an INVITE
with the From host, 127.0.0.1 too. ser-ctl computes HA1 with the domain of USER@DOMAIN as the
realm, so the accounts are added as alice@127.0.0.1 and bob@127.0.0.1.
"""

import hashlib
import os
import re
import secrets
import subprocess
import sys
import time

from . import sipnet

NONCE_EXPIRE = 3

CONFIG = """
debug=3
loadmodule "sl"
loadmodule "tm"
loadmodule "rr"
loadmodule "usrloc"
loadmodule "registrar"
loadmodule "auth"
loadmodule "auth_db"

modparam("usrloc", "db_mode", 0)
modparam("auth_db", "db_url", "dbtext://{db}")
modparam("auth", "secret_file", "{secret}")
modparam("auth", "nonce_expire", {expire})

route {{
    if (loose_route()) {{
        t_relay();
        exit;
    }}
    if (method == "ACK") {{
        exit;               # the ACK of a 401/407 this script sent
    }}
    if (method == "REGISTER") {{
        if (!www_authorize("", "subscriber")) {{
            www_challenge("", "1");
            exit;
        }}
        if (!check_to()) {{
            sl_send_reply("403", "Forbidden");
            exit;
        }}
        consume_credentials();
        save("location");
        exit;
    }}
    # callers whose From user is "local" are trusted (a stand-in for a src_ip test)
    if (method == "INVITE" && $fU != "local") {{
        if (!proxy_authorize("", "subscriber")) {{
            proxy_challenge("", "1");
            exit;
        }}
        if (!check_from()) {{
            sl_send_reply("403", "Use From=ID");
            exit;
        }}
        consume_credentials();
    }}
    record_route();
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    t_relay();
}}
"""


def ser_ctl(*args, db, stdin=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(sipnet.REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "serlite.ctl", "-d", f"dbtext://{db}", *args],
                          cwd=sipnet.REPO, env=env, input=stdin, capture_output=True,
                          text=True, timeout=30)


def start(ser, tmp_path, users=(("alice", "secret"), ("bob", "bobpw"))):
    db = tmp_path / "db"
    for user, password in users:
        out = ser_ctl("user", "add", f"{user}@127.0.0.1", password, db=db)
        assert out.returncode == 0, out.stderr
    return ser(CONFIG.format(db=db, secret=tmp_path / "secret", expire=NONCE_EXPIRE))


def auth_register(server, workdir, user, password, contact_host, contact_port, expires=600,
                  scenario="auth_register.xml"):
    row = (user, sipnet.contact_uri(user, contact_host, contact_port), "udp", expires)
    inf = sipnet.users_csv(workdir / f"auth-{user}-{secrets.token_hex(3)}.csv", [row])
    args = ["-sf", sipnet.SCENARIOS / scenario, "-inf", inf, "-au", user, "-ap", password,
            "-t", "u1", "-i", "127.0.0.1", "-p", sipnet.free_port("udp"), "-m", 1,
            sipnet.hostport(*server.addr)]
    return sipnet.run_sipp(args, workdir=workdir, timeout=10)


# --- a phone by hand -----------------------------------------------------------------------

def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


def challenge_of(reply, header="WWW-Authenticate"):
    values = sipnet.header_values(reply, header)
    assert values, f"no {header} in {reply!r}"
    value = values[0]
    assert value.startswith("Digest "), value
    return {k: a or b for k, a, b in re.findall(r'([a-z]+)=(?:"([^"]*)"|([^\s,]+))', value)}


def authorization(challenge, user, password, method, uri, nc, cnonce="0a4f113b"):
    """RFC 2617 3.2.2 credentials with qop=auth, computed here independently of serlite."""
    realm, nonce = challenge["realm"], challenge["nonce"]
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    nc = f"{nc:08x}"
    resp = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{resp}", algorithm=MD5, qop=auth, nc={nc}, '
            f'cnonce="{cnonce}"')


class Phone:
    """REGISTERs from one UDP socket: one Call-ID, CSeq counting up, a new branch each."""

    def __init__(self, server, user, to_user=None):
        self.server = server
        self.user = user
        self.peer = sipnet.UdpPeer()
        host, port = server.addr
        self.ruri = f"sip:{sipnet.hostport(host, port)}"
        self.aor = f"sip:{to_user or user}@{sipnet.hostport(host, port)}"
        self.call_id = secrets.token_hex(8) + "@auth-e2e"
        self.cseq = 0

    def close(self):
        self.peer.close()

    def request(self, *extra, contact=True):
        self.cseq += 1
        binding = [f"Contact: <sip:{self.user}@{self.peer.host}:{self.peer.port}>",
                   "Expires: 600"] if contact else []
        return sipnet.make_request(
            "REGISTER", self.ruri, via=(self.peer.host, self.peer.port), to=self.aor,
            call_id=self.call_id, cseq=self.cseq, headers=[*binding, *extra])

    def send(self, data):
        self.peer.send(data, self.server.addr)
        finals = [r for r in self.peer.recv_until(sipnet.is_final, 3) if sipnet.is_final(r)]
        assert finals, f"no final reply to:\n{data.decode()}"
        return finals[0]

    def register(self, *extra, contact=True):
        return self.send(self.request(*extra, contact=contact))


def bindings(server, user, password):
    """The contacts of sip:user@server: an authenticated REGISTER without Contact
    (RFC 3261 10.2.3)."""
    phone = Phone(server, user)
    try:
        ch = challenge_of(phone.register(contact=False))
        reply = phone.register(authorization(ch, user, password, "REGISTER", phone.ruri, nc=1),
                               contact=False)
        assert sipnet.status_of(reply) == 200, reply
        return sipnet.contacts_of(reply)
    finally:
        phone.close()


# --- the tests -----------------------------------------------------------------------------

def test_register_401_then_200_with_the_right_password(ser, tmp_path):
    server = start(ser, tmp_path)
    auth_register(server, tmp_path, "alice", "secret", "127.0.0.1", 7001).assert_ok(1)
    assert bindings(server, "alice", "secret") == ["sip:alice@127.0.0.1:7001;transport=udp"]


def test_register_on_python3_light(ser, tmp_path):
    # the router has only python3-light: hashlib without _hashlib, hmac, no secrets needed
    db = tmp_path / "db"
    assert ser_ctl("user", "add", "alice@127.0.0.1", "secret", db=db).returncode == 0
    server = ser(CONFIG.format(db=db, secret=tmp_path / "secret", expire=NONCE_EXPIRE),
                 python=sipnet.PYTHON3_LIGHT)
    auth_register(server, tmp_path, "alice", "secret", "127.0.0.1", 7002).assert_ok(1)


def test_wrong_password_gets_401_every_time(ser, tmp_path):
    server = start(ser, tmp_path)
    # the scenario answers three challenges with the wrong password and wants 401 each time
    args = ["-sf", sipnet.SCENARIOS / "auth_register_wrong.xml", "-s", "alice", "-au", "alice",
            "-ap", "wrong", "-t", "u1", "-i", "127.0.0.1", "-p", sipnet.free_port("udp"),
            "-m", 1, sipnet.hostport(*server.addr)]
    sipnet.run_sipp(args, workdir=tmp_path, timeout=10).assert_ok(1)
    assert bindings(server, "alice", "secret") == []


def test_replayed_authorization_is_refused(ser, tmp_path):
    server = start(ser, tmp_path)
    phone = Phone(server, "alice")
    try:
        first = phone.register()
        assert sipnet.status_of(first) == 401
        ch = challenge_of(first)
        assert ch["realm"] == "127.0.0.1" and ch["qop"] == "auth" and "stale" not in ch
        creds = authorization(ch, "alice", "secret", "REGISTER", phone.ruri, nc=1)
        assert sipnet.status_of(phone.register(creds)) == 200
        # the same credentials again (same nonce, same nc), new branch and CSeq: a replay
        again = phone.register(creds)
        assert sipnet.status_of(again) == 401
        # the phone itself just counts on: nc=2 on the same nonce is fine
        assert sipnet.status_of(phone.register(
            authorization(ch, "alice", "secret", "REGISTER", phone.ruri, nc=2))) == 200
    finally:
        phone.close()


def test_expired_nonce_gets_stale_and_the_retry_succeeds(ser, tmp_path):
    server = start(ser, tmp_path)
    phone = Phone(server, "alice")
    try:
        first = phone.register()
        issued = time.monotonic()
        ch = challenge_of(first)
        assert sipnet.status_of(phone.register(
            authorization(ch, "alice", "secret", "REGISTER", phone.ruri, nc=1))) == 200
        # A nonce is good for nonce_expire seconds, rounded up to a whole second: waiting
        # for it to expire is inherently a wait on the clock, so sleep until that computed
        # deadline (plus a little) rather than poll anything.
        deadline = issued + NONCE_EXPIRE + 1.2
        while time.monotonic() < deadline:
            time.sleep(deadline - time.monotonic())
        stale = phone.register(authorization(ch, "alice", "secret", "REGISTER", phone.ruri,
                                             nc=2))
        assert sipnet.status_of(stale) == 401
        ch2 = challenge_of(stale)
        assert ch2.get("stale") == "true", stale
        assert ch2["nonce"] != ch["nonce"]
        assert sipnet.status_of(phone.register(
            authorization(ch2, "alice", "secret", "REGISTER", phone.ruri, nc=1))) == 200
    finally:
        phone.close()


def test_register_for_someone_else_is_forbidden(ser, tmp_path):
    server = start(ser, tmp_path)
    phone = Phone(server, "alice", to_user="bob")     # alice's password, bob's AOR
    try:
        ch = challenge_of(phone.register())
        reply = phone.register(authorization(ch, "alice", "secret", "REGISTER", phone.ruri,
                                             nc=1))
        assert sipnet.status_of(reply) == 403
    finally:
        phone.close()
    assert bindings(server, "bob", "bobpw") == []


def test_invite_gets_407_then_reaches_the_registered_callee(ser, tmp_path):
    server = start(ser, tmp_path)
    with sipnet.start_uas(workdir=tmp_path, calls=1, trace_msg=True) as uas:
        auth_register(server, tmp_path, "bob", "bobpw", uas.host, uas.port).assert_ok(1)
        # sipp's own [authentication], as it comes: its digest uri is sip:HOST:PORT, not the
        # Request-URI sip:bob@HOST:PORT; SER and Kamailio accept that, so does serlite
        args = ["-sf", sipnet.SCENARIOS / "auth_invite.xml", "-s", "bob", "-au", "alice",
                "-ap", "secret", "-t", "u1", "-i", "127.0.0.1", "-p", sipnet.free_port("udp"),
                "-m", 1, sipnet.hostport(*server.addr)]
        uac = sipnet.run_sipp(args, workdir=tmp_path, timeout=15)
        uas_result = uas.wait(timeout=None if uac.ok(1) else 5)
    uac.assert_ok(1)
    uas_result.assert_ok(1)
    # consume_credentials(): the callee never sees alice's Proxy-Authorization
    log = uas_result.path("messages.log").read_text(errors="replace")
    assert "INVITE sip:" in log
    assert "proxy-authorization" not in log.lower()


def test_sipp_stock_register_whose_uri_is_not_the_request_uri(ser, tmp_path):
    # REGISTER sip:127.0.0.1:PORT;transport=UDP answered with sipp's uri sip:127.0.0.1:PORT
    # (issue 13, item 4)
    server = start(ser, tmp_path)
    auth_register(server, tmp_path, "alice", "secret", "127.0.0.1", 7003,
                  scenario="auth_register_stock.xml").assert_ok(1)
    assert bindings(server, "alice", "secret") == ["sip:alice@127.0.0.1:7003;transport=udp"]
    assert " 400 " not in server.log()


def test_strict_digest_uri_gives_400_to_another_uri(ser, tmp_path):
    db = tmp_path / "db"
    assert ser_ctl("user", "add", "alice@127.0.0.1", "secret", db=db).returncode == 0
    server = ser(CONFIG.format(db=db, secret=tmp_path / "secret", expire=NONCE_EXPIRE)
                 .replace('loadmodule "auth_db"\n',
                          'loadmodule "auth_db"\nmodparam("auth", "strict_digest_uri", 1)\n'))
    phone = Phone(server, "alice")
    try:
        ch = challenge_of(phone.register())
        other = "sip:alice@127.0.0.1:1"
        assert sipnet.status_of(phone.register(
            authorization(ch, "alice", "secret", "REGISTER", other, nc=1))) == 400
        assert sipnet.status_of(phone.register(
            authorization(ch, "alice", "secret", "REGISTER", phone.ruri, nc=2))) == 200
    finally:
        phone.close()


def authorization_without_qop(challenge, user, password, method, uri):
    """RFC 2069 credentials (no qop, no nc): KD(HA1, nonce ":" HA2)."""
    realm, nonce = challenge["realm"], challenge["nonce"]
    resp = md5(f"{md5(f'{user}:{realm}:{password}')}:{nonce}:{md5(f'{method}:{uri}')}")
    return (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{resp}", algorithm=MD5')


def test_no_qop_answer_to_a_qop_challenge_gets_401(ser, tmp_path):
    server = start(ser, tmp_path)
    phone = Phone(server, "alice")
    try:
        ch = challenge_of(phone.register())
        assert ch["qop"] == "auth"
        reply = phone.register(authorization_without_qop(ch, "alice", "secret", "REGISTER",
                                                         phone.ruri))
        assert sipnet.status_of(reply) == 401
    finally:
        phone.close()
    assert bindings(server, "alice", "secret") == []


def test_replayed_no_qop_register_with_another_contact_does_not_bind(ser, tmp_path):
    # www_challenge("", "0"): no qop, so no nc; a captured REGISTER replayed with the
    # attacker's Contact must not bind alice to the attacker (issue 13, item 8)
    db = tmp_path / "db"
    assert ser_ctl("user", "add", "alice@127.0.0.1", "secret", db=db).returncode == 0
    text = CONFIG.format(db=db, secret=tmp_path / "secret", expire=NONCE_EXPIRE)
    assert text.count('www_challenge("", "1")') == 1
    server = ser(text.replace('www_challenge("", "1")', 'www_challenge("", "0")'))
    phone = Phone(server, "alice")
    try:
        ch = challenge_of(phone.register())
        assert "qop" not in ch
        creds = authorization_without_qop(ch, "alice", "secret", "REGISTER", phone.ruri)
        assert sipnet.status_of(phone.register(creds)) == 200
        with sipnet.UdpPeer() as attacker:
            # the captured request, its Contact swapped for the attacker's (Via too, so the
            # answer comes to this test)
            replay = phone.request(creds).replace(
                f"sip:alice@{phone.peer.host}:{phone.peer.port}".encode(),
                f"sip:alice@{attacker.host}:{attacker.port}".encode()).replace(
                f"{phone.peer.host}:{phone.peer.port};branch".encode(),
                f"{attacker.host}:{attacker.port};branch".encode())
            assert f":{attacker.port}".encode() in replay
            attacker.send(replay, server.addr)
            finals = [r for r in attacker.recv_until(sipnet.is_final, 3) if sipnet.is_final(r)]
        assert finals and sipnet.status_of(finals[0]) == 401, finals
        assert challenge_of(finals[0]).get("stale") == "true"
    finally:
        phone.close()
    assert bindings(server, "alice", "secret") == \
        [f"sip:alice@{phone.peer.host}:{phone.peer.port}"]


def rfc4475_message(name):
    return (sipnet.REPO / "tests" / "data" / "rfc4475" / name).read_bytes()


def test_unknown_authorization_scheme_is_challenged(ser, tmp_path):
    # RFC 4475 3.1.2.17 (regaut01): "Authorization: NoOneKnowsThisScheme opaque-data=here".
    # Only its Via is changed, so that the answer comes back to this test's socket.
    server = start(ser, tmp_path)
    data = rfc4475_message("regaut01.dat")
    with sipnet.UdpPeer() as peer:
        data = re.sub(rb"Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bKkdjuw",
                      f"Via: SIP/2.0/UDP {peer.host}:{peer.port};branch=z9hG4bKkdjuw;rport"
                      .encode(), data)
        assert b"NoOneKnowsThisScheme" in data and str(peer.port).encode() in data
        peer.send(data, server.addr)
        replies = [r for r in peer.recv_until(sipnet.is_final, 3) if sipnet.is_final(r)]
    assert replies and sipnet.status_of(replies[0]) == 401, replies
    ch = challenge_of(replies[0])
    assert ch["realm"] == "example.com"       # the To host of the REGISTER
    assert ch["nonce"]
