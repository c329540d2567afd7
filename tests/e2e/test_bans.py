"""Bans end to end: the router's config as the init script makes it from UCI (the LAN is
127.0.0.1 alone, so 127.0.0.2, .3, ... are the Internet, rate-limited by pike), the real server,
raw UDP peers on loopback, ser-ctl.

- a guesser at 5 wrong passwords a second (10 requests a second: under pike's 30 in 2 s) is
  banned after ban_failures and then gets no reply at all, whatever it sends; meanwhile a phone
  with the right password from another address registers; ``ser-ctl ban list`` shows the ban,
  the log has its line (docs/security.md's format), ``ser-ctl ban del`` lets it back;
- a ban survives kill -9 and the restart;
- a request whose User-Agent is a scanner's gets no reply; baresip's and Asterisk's do.
Silence is checked after a barrier (an OPTIONS from the LAN, answered after everything sent
before it), never by waiting.
"""

import json
import re
import time

from . import sipnet
from .sipnet import UdpPeer, barrier, is_final, status_of
from .test_accounts import House
from .test_auth import Phone, authorization, challenge_of

GUESSER, PHONE, SCANNER = "127.0.0.2", "127.0.0.3", "127.0.0.4"
USERS = {"100": "hundred-secret"}
BAN_LINE = re.compile(r"secfilter: banned (\S+) for (\d+) s: (.+?) \(failures=(\d+) "
                      r"user=(\S+) offence=(\d+)\)")


class Caller(Phone):
    """REGISTERs from one address of loopback."""

    def __init__(self, server, user, host):
        super().__init__(server, user)
        self.peer.close()
        self.peer = UdpPeer(host=host)

    def ask(self, data):
        """The final reply to ``data``, or None when serlite sent nothing back (checked
        after a barrier, not by waiting)."""
        self.peer.send(data, self.server.addr)
        finals = [r for r in self.peer.recv_until(is_final, 0.5) if is_final(r)]
        if finals:
            return finals[0]
        barrier(self.server.addr)
        finals = [r for r in self.peer.drain() if is_final(r)]
        return finals[0] if finals else None

    def guess(self, password):
        """REGISTER, and its answer with ``password``: the status codes (None: silence)."""
        first = self.ask(self.request())
        if first is None or status_of(first) != 401:
            return [first and status_of(first)]
        creds = authorization(challenge_of(first), self.user, password, "REGISTER",
                              self.ruri, nc=1)
        second = self.ask(self.request(creds))
        return [401, second and status_of(second)]


def house(ser, tmp_path, extra=""):
    def local_ser(text, **kw):
        # the ban file (/etc/ser/bans on the router) into the test's directory
        line = 'modparam("secfilter", "ban_file", "/etc/ser/bans")'
        return ser(text.replace(line, line.replace("/etc/ser/bans", f"{tmp_path}/bans")), **kw)
    return House(local_ser, tmp_path, lan="127.0.0.1/32", users=USERS, extra=extra)


def ctl(h, *args):
    out = h.ctl(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_slow_guesser_is_banned_the_phone_registers_ban_del_lets_it_back(ser, tmp_path):
    h = house(ser, tmp_path)
    guesser = Caller(h.server, "100", GUESSER)
    phone = Caller(h.server, "100", PHONE)
    try:
        results = []
        for i in range(5):
            started = time.monotonic()
            results.append(guesser.guess(f"password{i}"))
            time.sleep(max(0.0, 0.2 - (time.monotonic() - started)))    # 5 guesses a second
        assert results == [[401, 401]] * 5
        # banned: silence, for a guess with the right password too
        assert guesser.guess(USERS["100"]) == [None]
        assert phone.guess(USERS["100"]) == [401, 200]          # the owner's phone meanwhile
        listed = json.loads(ctl(h, "ban", "list", "--json"))
        (ban,) = listed["bans"]
        assert (ban["address"], ban["reason"], ban["failures"], ban["user"],
                ban["offences"]) == (GUESSER, "failed logins", 5, "100", 1)
        assert 890 <= ban["expires_in"] <= 900
        assert GUESSER in ctl(h, "ban", "list")
        lines = [m.groups() for m in BAN_LINE.finditer(h.server.log())]
        assert lines == [(GUESSER, "900", "failed logins", "5", "100", "1")]
        assert "unbanned 127.0.0.2" in ctl(h, "ban", "del", GUESSER)
        assert guesser.guess(USERS["100"]) == [401, 200]
        assert json.loads(ctl(h, "ban", "list", "--json"))["bans"] == []
        assert re.search(r"secfilter: unbanned 127\.0\.0\.2: by hand", h.server.log())
    finally:
        guesser.close()
        phone.close()


def test_a_ban_survives_kill_9(ser, tmp_path):
    h = house(ser, tmp_path)
    guesser = Caller(h.server, "100", GUESSER)
    try:
        bad = h.ctl("ban", "add", "not-an-ip")
        assert bad.returncode == 1
        assert bad.stderr.startswith("ser-ctl: ban_add: ") and \
            bad.stderr.endswith("'not-an-ip' is not an IP address\n")
        assert "banned 127.0.0.2" in ctl(h, "ban", "add", GUESSER, "3600")
        assert guesser.guess("x") == [None]
        # the first ban is written before ban_add answers (later ones at most once a second)
        assert GUESSER in (tmp_path / "bans").read_text()
        h.server.kill9()
        h.server.start()
        assert guesser.guess(USERS["100"]) == [None]
        (ban,) = json.loads(ctl(h, "ban", "list", "--json"))["bans"]
        assert ban["address"] == GUESSER and ban["reason"] == "manual"
        assert 3500 < ban["expires_in"] <= 3600
        assert "1 ban(s) kept from" in h.server.log()
    finally:
        guesser.close()


def test_scanner_user_agents_get_no_reply_phones_and_pbxes_do(ser, tmp_path):
    h = house(ser, tmp_path)
    with UdpPeer(host=SCANNER) as peer:
        def options(ua):
            req = sipnet.make_request("OPTIONS", f"sip:100@{sipnet.hostport(*h.server.addr)}",
                                      via=(peer.host, peer.port),
                                      to=f"sip:100@{sipnet.hostport(*h.server.addr)}",
                                      headers=[f"User-Agent: {ua}"])
            peer.send(req, h.server.addr)
            barrier(h.server.addr)
            return [status_of(r) for r in peer.drain() if is_final(r)]

        assert options("friendly-scanner") == []
        assert options("sipvicious/0.3.8") == []
        assert options("baresip v3.10.1 (x86_64/Linux)") == [407]
        assert options("Asterisk PBX 20.5.0") == [407]
    # a scanner is dropped, not banned: the address is served again with another agent
    assert json.loads(ctl(h, "ban", "list", "--json"))["bans"] == []


def test_a_spoofer_cannot_get_another_address_banned(ser, tmp_path):
    # UDP source addresses are forged at will: an attacker asks for a nonce from its own
    # address, then sends wrong answers with it under the address of the owner's phone (or
    # provider).  It needs no reply.  Those failures must not ban the phone: a nonce answered
    # from another address than the one it was given to is not checked (a new challenge), so
    # it proves nothing and counts for nothing.  (127.0.0.3 plays the forged address.)
    h = house(ser, tmp_path)
    attacker = Caller(h.server, "100", GUESSER)
    phone = Caller(h.server, "100", PHONE)
    try:
        first = attacker.ask(attacker.request())
        assert first is not None and status_of(first) == 401
        stolen = challenge_of(first)
        for i in range(6):
            creds = authorization(stolen, "100", f"wrong{i}", "REGISTER", phone.ruri, nc=1)
            phone.peer.send(phone.request(creds), h.server.addr)
        barrier(h.server.addr)
        phone.peer.drain()
        assert json.loads(ctl(h, "ban", "list", "--json"))["bans"] == []
        assert phone.guess(USERS["100"]) == [401, 200]
        # the nonce still works where it was given: the attacker's own wrong answers count
        creds = authorization(stolen, "100", "wrong", "REGISTER", attacker.ruri, nc=1)
        second = attacker.ask(attacker.request(creds))
        assert second is not None and status_of(second) == 401
    finally:
        attacker.close()
        phone.close()


def test_ban_list_prints_no_terminal_control_characters_from_the_network(ser, tmp_path):
    # The ban's user is the attacker's: a digest username with ESC sequences (a window title,
    # a cleared screen, hidden lines) must not reach the owner's terminal through ser-ctl.
    h = house(ser, tmp_path)
    guesser = Caller(h.server, "100", GUESSER)
    try:
        evil = "\x1b]0;owned\x07\x1b[2J\x1b[8mx"
        for i in range(5):
            first = guesser.ask(guesser.request())
            assert first is not None and status_of(first) == 401
            creds = authorization(challenge_of(first), evil, f"w{i}", "REGISTER", guesser.ruri,
                                  nc=1)
            second = guesser.ask(guesser.request(creds))
            assert second is not None and status_of(second) == 401
        out = ctl(h, "ban", "list")
        assert GUESSER in out
        assert not [c for c in out if ord(c) < 32 and c != "\n"], repr(out)
    finally:
        guesser.close()
