"""Every phone logs in, and the accounts are one list that changes live: the router's config as
the init script makes it (``python3 -m serlite.uci`` on a UCI file with ``config user``
sections, then the server on the generated config), with sipp and raw UDP peers on loopback.

- REGISTER from a LAN address: no credentials -> 401; the right password -> 200; a wrong
  password or an unknown user -> never 200; a call or MESSAGE from the LAN -> 407;
- an INVITE with a pre-loaded Route to a "gateway" (a raw UDP peer) never reaches it, from the
  LAN or from outside, with credentials or without; an in-dialog BYE follows its route set;
- ``ser-ctl user add`` registers within a second without a restart; ``user del`` drops the
  account's bindings and refuses its next REGISTER; a call in progress goes on meanwhile.

The only change to the generated config is where its router files go (the nonce secret and
the call history, in /etc/ser on the router): into the test's directory.  The LAN is 127.0.0.1/8, or 127.0.0.1/32 when
127.0.0.2 plays an address from outside.
"""

import os
import secrets
import subprocess
import sys
import time

from . import sipnet
from .sipnet import UdpPeer, barrier, is_final, make_request, status_of
from .test_auth import Phone, authorization, challenge_of
from .test_stateful import RawUas

REALM = "serlite"               # option domain not set
USERS = {"100": "hundred", "alice": "secret", "bob": "bobpw"}
OUTSIDE = "127.0.0.2"


def uci_text(port, tmp_path, users=USERS, extra=""):
    sections = "".join(f"\nconfig user\n\toption name '{u}'\n\toption password '{p}'\n"
                       for u, p in users.items())
    return (f"config ser 'main'\n\toption enabled '1'\n\tlist interface 'lan'\n"
            f"\toption port '{port}'\n\toption location_db 'dbtext://{tmp_path}/usrloc'\n"
            f"{extra}{sections}")


def env_for(house):
    env = dict(os.environ, SER_UCI=str(house.uci), SER_RUN_DIR=str(house.run),
               SER_UCI_BIN="", SER_UNIX_SOCK=house.server.ctl_sock if house.server else "")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(sipnet.REPO), env.get("PYTHONPATH")]))
    return env


class House:
    """The UCI file, the run directory, and the server started on the generated config."""

    def __init__(self, ser, tmp_path, lan="127.0.0.1/8", users=USERS, extra=""):
        self.uci = tmp_path / "config" / "ser"
        self.uci.parent.mkdir(exist_ok=True)
        self.run = tmp_path / "run"
        port = sipnet.free_port_pair()
        self.uci.write_text(uci_text(port, tmp_path, users, extra))
        self.server = None
        gen = subprocess.run([sys.executable, "-m", "serlite.uci", "-c", str(self.uci),
                              "-o", str(self.run), "-a", f"lan={lan}"], cwd=sipnet.REPO,
                             capture_output=True, text=True, timeout=30)
        assert gen.returncode == 0, gen.stderr
        text = open(gen.stdout.strip()).read()
        text = sipnet.localize_generated(text, tmp_path)
        self.server = ser(text, port=port)

    def ctl(self, *args, stdin=None):
        return subprocess.run([sys.executable, "-m", "serlite.ctl", *args], cwd=sipnet.REPO,
                              env=env_for(self), input=stdin, capture_output=True, text=True,
                              timeout=30)


def register(server, user, password, *, local="127.0.0.1"):
    """REGISTER without credentials, then (if a password is given) with them: the replies."""
    phone = Phone(server, user)
    if local != "127.0.0.1":
        phone.peer.close()
        phone.peer = UdpPeer(host=local)
    try:
        first = phone.register()
        if password is None or status_of(first) != 401:
            return [first]
        creds = authorization(challenge_of(first), user, password, "REGISTER", phone.ruri, nc=1)
        return [first, phone.register(creds)]
    finally:
        phone.close()


def ul_show(server):
    from serlite.control.client import Client
    with Client(server.ctl_sock) as client:
        return client.call("ul", "show")


# --- every phone logs in ------------------------------------------------------------------

def test_every_phone_logs_in_from_the_lan(ser, tmp_path):
    house = House(ser, tmp_path)
    server = house.server
    first, ok = register(server, "alice", USERS["alice"])
    assert status_of(first) == 401, first
    assert challenge_of(first)["realm"] == REALM
    assert status_of(ok) == 200, ok
    # a wrong password, an unknown user (with some password): never 200
    assert [status_of(r) for r in register(server, "alice", "wrong")] == [401, 401]
    assert [status_of(r) for r in register(server, "mallory", "x")] == [401, 401]
    assert [status_of(r) for r in register(server, "mallory", None)] == [401]
    # a call and a MESSAGE from the LAN without credentials: 407
    uri = f"sip:alice@{sipnet.hostport(*server.addr)}"
    for method in ("INVITE", "MESSAGE"):
        with UdpPeer() as caller:
            caller.send(make_request(method, uri, via=(caller.host, caller.port), to=uri,
                                     from_=f"sip:bob@{sipnet.hostport(*server.addr)}"),
                        server.addr)
            finals = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
        assert finals and status_of(finals[0]) == 407, (method, finals)
        assert challenge_of(finals[0], "Proxy-Authenticate")["realm"] == REALM


def test_sipp_call_between_two_phones_of_the_house(ser, tmp_path):
    # sipp's own [authentication]: 407, then the retry with credentials (the uri the
    # harness's scenario gives, the Request-URI)
    house = House(ser, tmp_path)
    server = house.server
    with sipnet.start_uas(workdir=tmp_path) as uas:
        reg = auth_register(server, tmp_path, "bob", uas.host, uas.port)
        reg.assert_ok(1)
        uac = sipnet.run_sipp(
            ["-sf", sipnet.SCENARIOS / "auth_invite.xml", "-s", "bob", "-au", "alice",
             "-ap", USERS["alice"], "-auth_uri", f"bob@{sipnet.hostport(*server.addr)}",
             "-t", "u1", "-i", "127.0.0.1", "-p", sipnet.free_port("udp"), "-m", 1,
             sipnet.hostport(*server.addr)], workdir=tmp_path, timeout=15)
        uas_result = uas.wait(timeout=None if uac.ok(1) else 5)
    uac.assert_ok(1)
    uas_result.assert_ok(1)


def auth_register(server, workdir, user, host, port):
    row = (user, sipnet.contact_uri(user, host, port), "udp", 600)
    inf = sipnet.users_csv(workdir / f"reg-{user}-{secrets.token_hex(3)}.csv", [row])
    return sipnet.run_sipp(
        ["-sf", sipnet.SCENARIOS / "auth_register.xml", "-inf", inf, "-au", user,
         "-ap", USERS[user], "-t", "u1", "-i", "127.0.0.1", "-p", sipnet.free_port("udp"),
         "-m", 1, sipnet.hostport(*server.addr)], workdir=workdir, timeout=10)


# --- toll fraud: a pre-loaded Route -------------------------------------------------------

def invite_with_route(server, caller, gateway, creds=None, challenge=None, call_id=None):
    uri = f"sip:bob@{sipnet.hostport(*server.addr)}"
    headers = [f"Route: <sip:{sipnet.hostport(*gateway)};lr>",
               f"Contact: <sip:alice@{caller.host}:{caller.port}>"]
    if challenge is not None:
        auth = authorization(challenge, "alice", USERS["alice"], "INVITE", uri, nc=1)
        headers.append("Proxy-" + auth)
    return make_request("INVITE", uri, via=(caller.host, caller.port), to=uri,
                        from_=f"sip:alice@{sipnet.hostport(*server.addr)}", cseq=2 if
                        challenge else 1, call_id=call_id, headers=headers)


def test_preloaded_route_never_reaches_the_gateway(ser, tmp_path):
    house = House(ser, tmp_path, lan="127.0.0.1/32")      # 127.0.0.2 is outside
    server = house.server
    with UdpPeer() as gateway, RawUas(server, "bob") as bob:
        gw = gateway.sock.getsockname()
        challenges = {}
        # no credentials, from outside and from the LAN: 407, and nothing for the gateway
        for local in (OUTSIDE, "127.0.0.1"):
            with UdpPeer(host=local) as caller:
                caller.send(invite_with_route(server, caller, gw), server.addr)
                finals = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
            assert finals and status_of(finals[0]) == 407, (local, finals)
            challenges[local] = challenge_of(finals[0], "Proxy-Authenticate")
        barrier(server.addr)
        assert gateway.drain() == [], "an INVITE with a pre-loaded Route reached the gateway"
        # with alice's credentials: the Route is not followed, bob gets the INVITE
        auth_register(server, tmp_path, "bob", bob.host, bob.port).assert_ok(1)
        for local in ("127.0.0.1", OUTSIDE):
            with UdpPeer(host=local) as caller:
                call_id = secrets.token_hex(8) + "@toll"
                caller.send(invite_with_route(server, caller, gw, call_id=call_id,
                                              challenge=challenges[local]), server.addr)
                invite = bob.expect("INVITE")
                assert call_id.encode() in invite
                assert b"\r\nroute:" not in invite.lower(), invite
                bob.reply(invite, 486, "Busy Here")
                finals = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
                assert finals and status_of(finals[0]) == 486, (local, finals)
        barrier(server.addr)
        assert gateway.drain() == [], "an INVITE with a pre-loaded Route reached the gateway"


def test_forged_to_tag_with_a_preloaded_route_never_reaches_the_gateway(ser, tmp_path):
    # The same INVITE dressed as a re-INVITE (a To tag nobody gave it): it passes has_totag(),
    # but its route set was not recorded by us, so loose_route() is false (-3, Kamailio's
    # RR_PRELOADED) and the request is challenged like any new one, from outside and the LAN.
    house = House(ser, tmp_path, lan="127.0.0.1/32")      # 127.0.0.2 is outside
    server = house.server
    with UdpPeer() as gateway:
        gw = gateway.sock.getsockname()
        for local in (OUTSIDE, "127.0.0.1"):
            with UdpPeer(host=local) as caller:
                invite = invite_with_route(server, caller, gw)
                head, sep, rest = invite.partition(b"\r\nTo: ")
                line, crlf, tail = rest.partition(b"\r\n")
                forged = head + sep + line + b";tag=forged1" + crlf + tail
                assert b";tag=forged1" in forged
                caller.send(forged, server.addr)
                finals = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
            assert finals and status_of(finals[0]) == 407, (local, finals)
        barrier(server.addr)
        assert gateway.drain() == [], "a forged in-dialog INVITE reached the gateway"


def test_a_phone_calls_as_itself_only(ser, tmp_path):
    # alice logs in right but writes bob in From (caller ID spoofing inside the house): 403,
    # and bob's phone never rings; with her own From the same call goes through.
    house = House(ser, tmp_path)
    server = house.server
    with RawUas(server, "bob") as bob:
        auth_register(server, tmp_path, "bob", bob.host, bob.port).assert_ok(1)
        uri = f"sip:bob@{sipnet.hostport(*server.addr)}"
        with UdpPeer() as caller:
            results = {}
            for who in ("bob", "alice"):
                call_id = secrets.token_hex(8) + "@from"
                from_ = f"sip:{who}@{sipnet.hostport(*server.addr)}"
                first = make_request("INVITE", uri, via=(caller.host, caller.port), to=uri,
                                     from_=from_, call_id=call_id)
                caller.send(first, server.addr)
                finals = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
                assert finals and status_of(finals[0]) == 407, finals
                auth = authorization(challenge_of(finals[0], "Proxy-Authenticate"), "alice",
                                     USERS["alice"], "INVITE", uri, nc=1)
                caller.send(make_request("INVITE", uri, via=(caller.host, caller.port), to=uri,
                                         from_=from_, call_id=call_id, cseq=2,
                                         headers=["Proxy-" + auth]), server.addr)
                if who == "alice":
                    invite = bob.expect("INVITE")
                    assert call_id.encode() in invite
                    bob.reply(invite, 486, "Busy Here")
                finals = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
                results[who] = status_of(finals[0]) if finals else None
    assert results == {"bob": 403, "alice": 486}


def test_a_forged_route_set_of_ours_is_challenged_like_a_new_request(ser, tmp_path):
    # A made-up To tag and our own address on top of the Route (unsigned), then a gateway:
    # the route set is not one we recorded (sign_routes: no ;sig= of this Call-ID), so
    # loose_route() is false and the request needs a password; neither the "gateway" nor the
    # phone named in the Request-URI hears of it.  Also the strict-router form (the
    # Request-URI is the router, the gateway the last Route).  The genuine in-dialog BYE of a
    # recorded call passes without credentials: test_a_call_in_progress_goes_on_...
    house = House(ser, tmp_path)
    server = house.server
    me = sipnet.hostport(*server.addr)
    with UdpPeer() as gateway, UdpPeer() as callee, UdpPeer() as caller:
        gw = sipnet.hostport(*gateway.sock.getsockname())
        target = f"sip:bob@{callee.host}:{callee.port}"
        forged = {
            "ours then a gateway": ("INVITE", target, [f"Route: <sip:{me};lr=on>",
                                                      f"Route: <sip:{gw};lr>"]),
            "ours, a wrong signature": ("BYE", target, [f"Route: <sip:{me};lr=on;sig=0123456789abcdef>"]),
            "strict router": ("INVITE", f"sip:{me}", [f"Route: <sip:{gw}>"]),
        }
        for name, (method, ruri, routes) in forged.items():
            req = make_request(method, ruri, via=(caller.host, caller.port),
                               to=f"sip:bob@{me}", from_=f"sip:alice@{me}", headers=routes)
            req = req.replace(b"\r\nTo: <sip:bob@" + me.encode() + b">",
                              b"\r\nTo: <sip:bob@" + me.encode() + b">;tag=forged2", 1)
            assert b";tag=forged2" in req
            caller.send(req, server.addr)
            finals = [m for m in caller.recv_until(is_final, 3) if is_final(m)]
            assert finals and status_of(finals[0]) == 407, (name, finals)
        barrier(server.addr)
        assert gateway.drain() == [], "a forged route set reached the gateway"
        assert callee.drain() == [], "a forged in-dialog request reached the phone"


# --- one account list, changed live -------------------------------------------------------

def wait_for_200(server, user, password, deadline_s):
    """REGISTER with the password until it is answered 200 (bounded): seconds it took."""
    start = time.monotonic()
    for _ in range(500):
        replies = register(server, user, password)
        if status_of(replies[-1]) == 200:
            return time.monotonic() - start
        if time.monotonic() - start > deadline_s:
            break
        time.sleep(0.01)    # a phone retrying; the server notices on use, no event to await
    raise AssertionError(f"{user} not registered within {deadline_s} s: {replies[-1]!r}")


def test_user_add_registers_at_once_without_a_restart(ser, tmp_path):
    house = House(ser, tmp_path, users={"100": "hundred"})
    server = house.server
    pid = server.pid
    assert [status_of(r) for r in register(server, "101", "new-pw")] == [401, 401]
    done = house.ctl("user", "add", "101", "-", stdin="new-pw\n")
    assert done.returncode == 0, done.stderr
    took = wait_for_200(server, "101", "new-pw", 1.0)
    assert took < 1.0
    assert server.running() and server.pid == pid
    assert "auth_db: account 101 added" in server.log()
    # the UCI file holds the account; the server's copy HA1 only, 0600
    assert "option name '101'" in house.uci.read_text()
    table = house.run / "db" / "subscriber"
    assert "new-pw" not in table.read_text() and (table.stat().st_mode & 0o777) == 0o600
    # and the password changes just as live
    assert house.ctl("user", "passwd", "101", "other").returncode == 0
    assert [status_of(r) for r in register(server, "101", "new-pw")] == [401, 401]
    wait_for_200(server, "101", "other", 1.0)
    assert "auth_db: account 101 password changed" in server.log()
    # the status page's list: names and whether they are registered, never a hash
    from serlite.control.client import Client
    with Client(server.ctl_sock) as client:
        rows = client.call("accounts")
    assert [(r["user"], r["registered"] > 0) for r in rows] == [("100", False), ("101", True)]
    assert "ha1" not in repr(rows)
    # ... as the status page gathers and shows it
    from serlite import webui
    from serlite.control import page
    st = page.Status("/cgi-bin/ser", time.time())
    webui.ask_server({"SER_UNIX_SOCK": server.ctl_sock}, st)
    html = page.render(st, time.gmtime)
    assert 'id="accounts"' in html and ">101<" in html and "not registered" in html
    table = (house.run / "db" / "subscriber").read_text().splitlines()
    assert all(row.split(":")[2] not in html for row in table[1:])     # no hash on the page


def test_a_changed_table_is_noticed_without_being_told(ser, tmp_path):
    # serlite.uci (or anyone) rewrites the table, nobody tells the server: auth_db looks at
    # the file's mtime on use, at most once a second.  The phone asks again and again while
    # its account does not exist yet: failed logins, which secfilter would ban it for
    house = House(ser, tmp_path, users={"100": "hundred"}, extra="\tlist trusted '127.0.0.1'\n")
    server = house.server
    register(server, "100", "hundred")            # the table was looked at just now
    house.uci.write_text(house.uci.read_text()
                         + "\nconfig user\n\toption name '102'\n\toption password 'pw'\n")
    gen = subprocess.run([sys.executable, "-m", "serlite.uci", "-c", str(house.uci),
                          "-o", str(house.run), "-a", "lan=127.0.0.1/8"], cwd=sipnet.REPO,
                         capture_output=True, text=True, timeout=30)
    assert gen.returncode == 0, gen.stderr
    took = wait_for_200(server, "102", "pw", 2.0)
    assert took < 1.5, took
    assert "auth_db: account 102 added" in server.log()


def test_user_del_refuses_the_next_register_and_drops_the_bindings(ser, tmp_path):
    house = House(ser, tmp_path)
    server = house.server
    assert status_of(register(server, "alice", USERS["alice"])[-1]) == 200
    assert status_of(register(server, "100", USERS["100"])[-1]) == 200
    assert sorted(b["aor"] for b in ul_show(server)) == ["100", "alice"]
    done = house.ctl("user", "del", "alice")
    assert done.returncode == 0, done.stderr
    assert [b["aor"] for b in ul_show(server)] == ["100"]
    assert [status_of(r) for r in register(server, "alice", USERS["alice"])] == [401, 401]
    assert "auth_db: account alice removed (table subscriber, 1 binding dropped)" in \
        server.log()
    listed = house.ctl("user", "list")
    assert listed.returncode == 0 and listed.stdout.split()[:2] == ["USER", "REGISTERED"]
    assert "alice" not in listed.stdout and USERS["100"] not in listed.stdout


def test_a_call_in_progress_goes_on_while_accounts_change(ser, tmp_path):
    # alice calls bob (sipp UAS); while the call is up, accounts are added, changed and
    # removed (alice's own password among them); the call then ends normally: BYE, 200
    house = House(ser, tmp_path)
    server = house.server
    with sipnet.start_uas(workdir=tmp_path) as uas, UdpPeer() as alice:
        auth_register(server, tmp_path, "bob", uas.host, uas.port).assert_ok(1)
        uri = f"sip:bob@{sipnet.hostport(*server.addr)}"
        call_id = secrets.token_hex(8) + "@live"
        invite = make_request("INVITE", uri, via=(alice.host, alice.port), to=uri,
                              from_=f"sip:alice@{sipnet.hostport(*server.addr)}",
                              call_id=call_id,
                              headers=[f"Contact: <sip:alice@{alice.host}:{alice.port}>"])
        alice.send(invite, server.addr)
        first = [m for m in alice.recv_until(is_final, 3) if is_final(m)][0]
        assert status_of(first) == 407
        ack_407 = ack_for(invite, first, uri)
        alice.send(ack_407, server.addr)
        creds = "Proxy-" + authorization(challenge_of(first, "Proxy-Authenticate"), "alice",
                                         USERS["alice"], "INVITE", uri, nc=1)
        invite2 = make_request("INVITE", uri, via=(alice.host, alice.port), to=uri,
                               from_=f"sip:alice@{sipnet.hostport(*server.addr)}",
                               call_id=call_id, cseq=2, headers=[
                                   f"Contact: <sip:alice@{alice.host}:{alice.port}>", creds])
        alice.send(invite2, server.addr)
        ok = [m for m in alice.recv_until(is_final, 5) if is_final(m)][0]
        assert status_of(ok) == 200, ok
        to = sipnet.header_values(ok, "To")[0]
        target = sipnet.contacts_of(ok)[0]
        routes = sipnet.header_values(ok, "Record-Route")
        in_dialog = [f"To: {to}", *(f"Route: {r}" for r in routes)]
        alice.send(dialog_request("ACK", invite2, target, 2, in_dialog), server.addr)
        # the call is up: change the accounts under it
        for args in (("user", "add", "200", "x"), ("user", "passwd", "alice", "changed"),
                     ("user", "del", "100")):
            done = house.ctl(*args)
            assert done.returncode == 0, done.stderr
        alice.send(dialog_request("BYE", invite2, target, 3, in_dialog), server.addr)
        finals = [m for m in alice.recv_until(is_final, 5) if is_final(m)]
        uas_result = uas.wait(timeout=10)
    assert finals and status_of(finals[-1]) == 200 and b"BYE" in finals[-1], finals
    uas_result.assert_ok(1)
    log = server.log()
    for line in ("account 200 added", "account alice password changed", "account 100 removed"):
        assert f"auth_db: {line}" in log


def ack_for(invite, reply, uri):
    """The ACK of a non-2xx final answer: the INVITE's Via (branch), the reply's To."""
    head = invite.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    keep = [line for line in head[1:] if line.split(":", 1)[0] in ("Via", "From", "Call-ID",
                                                                    "Max-Forwards")]
    to = sipnet.header_values(reply, "To")[0]
    return ("\r\n".join([f"ACK {uri} SIP/2.0", *keep, f"To: {to}", "CSeq: 1 ACK",
                         "Content-Length: 0"]) + "\r\n\r\n").encode()


def dialog_request(method, invite, target, cseq, in_dialog):
    """An ACK or BYE in the dialog the INVITE made: new branch, the route set."""
    head = invite.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    keep = [line for line in head[1:] if line.split(":", 1)[0] in ("From", "Call-ID",
                                                                    "Max-Forwards")]
    via = [line for line in head[1:] if line.startswith("Via:")][0]
    via = via.split(";branch=")[0] + f";branch={sipnet.new_branch()};rport"
    return ("\r\n".join([f"{method} {target} SIP/2.0", via, *keep, *in_dialog,
                         f"CSeq: {cseq} {method}", "Content-Length: 0"])
            + "\r\n\r\n").encode()
