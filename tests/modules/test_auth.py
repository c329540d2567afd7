"""auth + auth_db with a fake core and fake time: challenges, realm defaults, right and wrong
passwords, unknown users and schemes, stale nonces, nc replays, malformed credentials (400),
consume_credentials, is_user/check_to/check_from, the subscriber table's variants
(use_domain, ha1b, clear passwords), the secret file, and the config-time checks."""

import hashlib
import os
import stat

import pytest

from serlite import log
from serlite.modules import auth as auth_mod
from serlite.proxy.context import Context, Source
from serlite.script.compiler import compile_config
from serlite.script.errors import ConfigError
from serlite.sip import digest
from serlite.sip.message import parse

CONFIG = """
loadmodule "sl"
loadmodule "auth"
loadmodule "auth_db"
modparam("auth_db", "db_url", "dbtext://{db}")
modparam("auth", "secret_file", "{secret}")
modparam("auth", "nonce_expire", 300)
{extra}
route {{
    if (!www_authorize("", "subscriber")) {{ www_challenge("", "1"); exit; }}
    if (!proxy_authorize("", "subscriber")) {{ proxy_challenge("", "1"); exit; }}
}}
"""

HEADER = "username(str) domain(str) password(str) ha1(str) ha1b(str)\n"


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def account(user, domain, password):
    return f"{user}:{domain}::{md5(f'{user}:{domain}:{password}')}:" \
           f"{md5(f'{user}@{domain}:{domain}:{password}')}\n"


class FakeCore:
    def __init__(self, now=1_000_000.5):
        self.now = now
        self.replies = []
        self.modules = {}
        self.tm = None

    def wall(self):
        return self.now

    def module(self, name):
        return self.modules.get(name)

    def reply(self, ctx, status, reason, headers=(), body=b""):
        self.replies.append((status, reason, list(headers)))
        if status >= 200:
            ctx.replied = True
        return True

    send_reply = reply      # the real core goes through tm when there is a transaction


class Server:
    """The two modules, started on a fake core, and helpers to make requests and answers."""

    def __init__(self, tmp_path, table=None, extra=""):
        db = tmp_path / "db"
        db.mkdir(exist_ok=True)
        if table is not None:
            (db / "subscriber").write_text(table)
        self.secret_file = tmp_path / "secret"
        script = compile_config(CONFIG.format(db=db, secret=self.secret_file, extra=extra),
                                "test.cfg")
        self.core = FakeCore()
        self.core.modules = script.modules
        self.auth = script.modules["auth"]
        self.db = script.modules["auth_db"]
        self.auth.start(self.core)
        self.db.start(self.core)

    def ctx(self, method="REGISTER", ruri="sip:home", to="sip:alice@home",
            from_="sip:alice@home", headers=()):
        lines = [f"{method} {ruri} SIP/2.0", "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1",
                 f"From: <{from_}>;tag=1", f"To: <{to}>", "Call-ID: c1@10.0.0.2",
                 f"CSeq: 1 {method}", *headers, "Content-Length: 0"]
        msg = parse(("\r\n".join(lines) + "\r\n\r\n").encode())
        return Context(msg, Source("udp", "10.0.0.2", 5060), self.core)

    def challenge(self, proxy=False, qop=True, **kw):
        """Challenge a request without credentials; the params of the challenge sent."""
        ctx = self.ctx(**kw)
        fn = self.auth.proxy_challenge if proxy else self.auth.www_challenge
        assert fn(ctx, "", qop) == 1
        return self.sent_challenge(proxy)

    def sent_challenge(self, proxy=False):
        status, reason, headers = self.core.replies[-1]
        assert (status, reason) == ((407, "Proxy Authentication Required") if proxy
                                    else (401, "Unauthorized"))
        name, value = headers[0]
        assert name == ("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        scheme, params = digest.parse_credentials(value)
        assert scheme == "Digest"
        return params

    def authorize(self, ctx, proxy=False, realm=""):
        fn = self.db.proxy_authorize if proxy else self.db.www_authorize
        return fn(ctx, realm, "subscriber")


def creds(ch, user, password, method="REGISTER", uri="sip:home", count=1, use_qop=True,
          proxy=False, **override):
    """A credentials header line answering challenge ``ch``; ``override`` replaces (None:
    removes) directives after the digest is computed."""
    realm, nonce = ch["realm"], ch["nonce"]
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    p = {"username": user, "realm": realm, "nonce": nonce, "uri": uri}
    if use_qop:
        p.update(qop="auth", nc=f"{count:08x}", cnonce="c0ffee")
        p["response"] = md5(f"{ha1}:{nonce}:{count:08x}:c0ffee:auth:{ha2}")
    else:
        p["response"] = md5(f"{ha1}:{nonce}:{ha2}")
    p.update(override)
    text = ", ".join(f'{k}="{v}"' if k not in ("nc", "qop", "algorithm") else f"{k}={v}"
                     for k, v in p.items() if v is not None)
    return f"{'Proxy-Authorization' if proxy else 'Authorization'}: Digest {text}"


@pytest.fixture
def srv(tmp_path):
    return Server(tmp_path, HEADER + account("alice", "home", "secret")
                  + account("bob", "home", "bobpw"))


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setattr(log, "level", log.ERR)


# --- challenges and realms -----------------------------------------------------------------

def test_no_credentials_false_then_401_challenge(srv):
    ctx = srv.ctx()
    assert srv.authorize(ctx) == auth_mod.NO_CREDENTIALS
    assert srv.auth.www_challenge(ctx, "", True) == 1
    ch = srv.sent_challenge()
    assert ch["realm"] == "home" and ch["qop"] == "auth" and ch["algorithm"] == "MD5"
    assert "stale" not in ch
    assert digest.check_nonce(ch["nonce"], srv.core.now, srv.auth.secret, "10.0.0.2") == "ok"


def test_a_nonce_answered_from_another_address_is_not_checked_nor_a_failure(srv):
    # UDP sources are forged: a nonce given to 10.0.0.2 and answered wrongly "from" 10.0.0.3
    # must not count as 10.0.0.3's failed login (secfilter would ban it); not even the right
    # password is taken with it (a new challenge), from 10.0.0.2 it is
    failures = []
    srv.auth.listen_failures(lambda ip, user, known: failures.append(ip))
    ch = srv.challenge()
    for password in ("wrong", "secret"):
        ctx = srv.ctx(headers=[creds(ch, "alice", password)])
        ctx.source = Source("udp", "10.0.0.3", 5060)
        assert srv.authorize(ctx) == auth_mod.ERROR
    assert failures == []
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "wrong")])) == \
        auth_mod.INVALID_PASSWORD
    assert failures == ["10.0.0.2"]
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret")])) == auth_mod.AUTHORIZED


def test_realm_defaults_to_to_host_for_register_from_host_otherwise(srv):
    assert srv.challenge(to="sip:alice@Reg.Example", from_="sip:x@other")["realm"] == \
        "reg.example"
    assert srv.challenge(proxy=True, method="INVITE", ruri="sip:bob@home",
                         to="sip:bob@to.example", from_="sip:alice@from.example")["realm"] \
        == "from.example"
    assert srv.challenge(proxy=True, method="INVITE", ruri="sip:bob@home",
                         from_="tel:+123")["realm"] == "home"       # no host: the R-URI's


def test_explicit_realm_and_no_qop(srv):
    ctx = srv.ctx()
    srv.auth.www_challenge(ctx, "my realm", False)
    ch = srv.sent_challenge()
    assert ch["realm"] == "my realm" and "qop" not in ch


def test_nonce_lives_nonce_expire_seconds_at_least(srv):
    ch = srv.challenge()
    assert digest.nonce_expiry(ch["nonce"]) == 1_000_301      # ceil(1_000_000.5 + 300)


def test_unknown_scheme_is_challenged_rfc4475_regaut01(srv):
    ctx = srv.ctx(to="sip:j.user@example.com",
                  headers=["Authorization: NoOneKnowsThisScheme opaque-data=here"])
    assert srv.authorize(ctx) == auth_mod.NO_CREDENTIALS
    srv.auth.www_challenge(ctx, "", True)
    assert srv.sent_challenge()["realm"] == "example.com"


def test_credentials_for_another_realm_are_not_ours(srv):
    ch = dict(srv.challenge(), realm="elsewhere")
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret")])) == \
        auth_mod.NO_CREDENTIALS


# --- authorizing ---------------------------------------------------------------------------

def test_right_password(srv):
    ch = srv.challenge()
    ctx = srv.ctx(headers=[creds(ch, "alice", "secret")])
    assert srv.authorize(ctx) == auth_mod.AUTHORIZED
    assert srv.auth.is_user(ctx, "alice") == 1
    assert srv.auth.is_user(ctx, "bob") == -1
    assert srv.auth.check_to(ctx) == 1 and srv.auth.check_from(ctx) == 1


def test_no_qop_answer_to_a_qop_challenge_is_refused(srv):
    # a downgrade to RFC 2069's digest, which has no nc to stop a replay (issue 13, item 8)
    ch = srv.challenge()
    assert ch["qop"] == "auth"
    ctx = srv.ctx(headers=[creds(ch, "alice", "secret", use_qop=False)])
    assert srv.authorize(ctx) == auth_mod.ERROR
    ch = srv.challenge(proxy=True, method="INVITE", ruri="sip:bob@home")
    ctx = srv.ctx(method="INVITE", ruri="sip:bob@home",
                  headers=[creds(ch, "alice", "secret", "INVITE", "sip:bob@home",
                                 use_qop=False, proxy=True)])
    assert srv.authorize(ctx, proxy=True) == auth_mod.ERROR
    # the nonce knows it offered qop; a client that does use qop is fine
    ctx = srv.ctx(headers=[creds(ch, "alice", "secret")])
    assert srv.authorize(ctx) == auth_mod.AUTHORIZED


def test_no_qop_challenge_answered_without_qop(srv):
    ch = srv.challenge(qop=False)
    assert "qop" not in ch
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret", use_qop=False)])) \
        == auth_mod.AUTHORIZED
    # and with qop, which the client may use although not offered: nc counts then
    ch = srv.challenge(qop=False)
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret")])) == \
        auth_mod.AUTHORIZED


def test_no_qop_nonce_is_one_time_for_register(srv):
    ch = srv.challenge(qop=False)
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret", use_qop=False)])) \
        == auth_mod.AUTHORIZED
    # the same answer again (a replay, whatever Contact it comes with): spent, and the
    # challenge that follows says stale=true, so an honest phone retries without asking
    ctx = srv.ctx(headers=[creds(ch, "alice", "secret", use_qop=False),
                           "Contact: <sip:alice@6.6.6.6>"])
    assert srv.authorize(ctx) == auth_mod.NONCE_REUSED
    srv.auth.www_challenge(ctx, "", False)
    assert srv.sent_challenge().get("stale") == "true"


def test_no_qop_nonce_may_be_reused_by_other_requests(srv):
    # RFC 2617 lets a client without qop reuse the nonce: allowed (until it expires) for
    # requests that cannot bind an address
    ch = srv.challenge(proxy=True, qop=False, method="INVITE", ruri="sip:bob@home")
    for _ in range(2):
        ctx = srv.ctx(method="INVITE", ruri="sip:bob@home",
                      headers=[creds(ch, "alice", "secret", "INVITE", "sip:bob@home",
                                     use_qop=False, proxy=True)])
        assert srv.authorize(ctx, proxy=True) == auth_mod.AUTHORIZED


def test_wrong_password_and_unknown_user(srv):
    ch = srv.challenge()
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "nope")])) == \
        auth_mod.INVALID_PASSWORD
    assert srv.authorize(srv.ctx(to="sip:mallory@home", headers=[
        creds(ch, "mallory", "x")])) == auth_mod.USER_UNKNOWN
    ctx = srv.ctx(headers=[creds(ch, "alice", "nope")])
    srv.authorize(ctx)
    assert srv.auth.is_user(ctx, "alice") == -1 and srv.auth.check_to(ctx) == -1
    srv.auth.www_challenge(ctx, "", True)
    assert "stale" not in srv.sent_challenge()


def test_proxy_authorization_and_407(srv):
    ch = srv.challenge(proxy=True, method="INVITE", ruri="sip:bob@home")
    assert ch["realm"] == "home"
    good = creds(ch, "alice", "secret", method="INVITE", uri="sip:bob@home", proxy=True)
    ctx = srv.ctx(method="INVITE", ruri="sip:bob@home", to="sip:bob@home", headers=[good])
    assert srv.authorize(ctx, proxy=True) == auth_mod.AUTHORIZED
    assert srv.auth.check_from(ctx) == 1 and srv.auth.check_to(ctx) == -1
    # the same credentials in an Authorization header do not count for proxy_authorize
    www = good.replace("Proxy-Authorization", "Authorization")
    ctx = srv.ctx(method="INVITE", ruri="sip:bob@home", headers=[www])
    assert srv.authorize(ctx, proxy=True) == auth_mod.NO_CREDENTIALS


def test_stale_nonce_with_right_digest_gets_stale_true(srv):
    ch = srv.challenge()
    srv.core.now += 301
    ctx = srv.ctx(headers=[creds(ch, "alice", "secret")])
    assert srv.authorize(ctx) == auth_mod.STALE_NONCE
    srv.auth.www_challenge(ctx, "", True)
    ch2 = srv.sent_challenge()
    assert ch2["stale"] == "true" and ch2["nonce"] != ch["nonce"]
    ctx = srv.ctx(headers=[creds(ch2, "alice", "secret")])
    assert srv.authorize(ctx) == auth_mod.AUTHORIZED


def test_stale_nonce_with_wrong_password_is_not_stale(srv):
    ch = srv.challenge()
    srv.core.now += 301
    ctx = srv.ctx(headers=[creds(ch, "alice", "wrong")])
    assert srv.authorize(ctx) == auth_mod.INVALID_PASSWORD
    srv.auth.www_challenge(ctx, "", True)
    assert "stale" not in srv.sent_challenge()


def test_forged_or_foreign_nonce_fails(srv):
    ch = srv.challenge()
    forged = dict(ch, nonce="%08x" % 2_000_000 + ch["nonce"][8:])
    assert srv.authorize(srv.ctx(headers=[creds(forged, "alice", "secret")])) == auth_mod.ERROR
    foreign = dict(ch, nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093")
    assert srv.authorize(srv.ctx(headers=[creds(foreign, "alice", "secret")])) == \
        auth_mod.ERROR


def test_nc_replay_is_refused_with_stale(srv):
    ch = srv.challenge()
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret", count=1)])) == 1
    ctx = srv.ctx(headers=[creds(ch, "alice", "secret", count=1)])
    assert srv.authorize(ctx) == auth_mod.NONCE_REUSED
    srv.auth.www_challenge(ctx, "", True)
    assert srv.sent_challenge()["stale"] == "true"     # the phone retries on a new nonce
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret", count=2)])) == 1
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret", count=2)])) == \
        auth_mod.NONCE_REUSED


def test_a_wrong_digest_does_not_burn_the_nonce_count(srv):
    ch = srv.challenge()
    # an attacker's high nc with a wrong response must not lock the real phone out
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "guess", count=99)])) == \
        auth_mod.INVALID_PASSWORD
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret", count=1)])) == 1


@pytest.mark.parametrize("override, code", [
    ({"algorithm": "SHA-256"}, auth_mod.ERROR),
    ({"algorithm": "MD5-sess"}, auth_mod.ERROR),
    ({"algorithm": "md5"}, auth_mod.AUTHORIZED),
    ({"qop": "auth-int"}, auth_mod.ERROR),
])
def test_algorithms_and_qops(srv, override, code):
    ch = srv.challenge()
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret", **override)])) == code


@pytest.mark.parametrize("override, why", [
    ({"username": None}, "without username"),
    ({"nonce": None}, "without nonce"),
    ({"uri": None}, "without uri"),
    ({"response": None}, "without response"),
    ({"response": "xyz"}, "not 32 hex"),
    ({"nc": None}, "qop without an 8-digit nc"),
    ({"nc": "1"}, "qop without an 8-digit nc"),
    ({"cnonce": None}, "qop without cnonce"),
])
def test_malformed_credentials_get_400_and_stop(srv, override, why, monkeypatch):
    logged = []
    monkeypatch.setattr(log, "limited", lambda key, lvl, msg, interval=10.0: logged.append(msg))
    ch = srv.challenge()
    ctx = srv.ctx(headers=[creds(ch, "alice", "secret", **override)])
    assert srv.authorize(ctx) == auth_mod.STOP
    assert srv.core.replies[-1][:2] == (400, "Bad Request")
    assert why in logged[-1]


def test_unparsable_digest_gets_400(srv):
    ctx = srv.ctx(headers=['Authorization: Digest username="alice, realm="home"'])
    assert srv.authorize(ctx) == auth_mod.STOP
    assert srv.core.replies[-1][0] == 400


def test_digest_uri_equal_as_uri_is_accepted(srv):
    ch = srv.challenge()
    ctx = srv.ctx(ruri="sip:home;transport=udp",
                  headers=[creds(ch, "alice", "secret", uri="sip:HOME;transport=UDP")])
    assert srv.authorize(ctx) == auth_mod.AUTHORIZED


# sipp's [authentication] puts sip:SERVER:PORT in the uri; SER and Kamailio accept that, and
# so does serlite unless strict_digest_uri is 1 (issue 13, item 4)

def test_digest_uri_other_than_the_request_uri_is_checked_over_that_uri(srv):
    ch = srv.challenge(proxy=True, method="INVITE", ruri="sip:bob@home")
    ctx = srv.ctx(method="INVITE", ruri="sip:bob@home",
                  headers=[creds(ch, "alice", "secret", "INVITE", "sip:10.0.0.1:5060",
                                 proxy=True)])
    assert srv.authorize(ctx, proxy=True) == auth_mod.AUTHORIZED
    assert srv.core.replies[-1][0] == 407            # nothing sent after the challenge


def test_digest_uri_other_than_the_request_uri_still_needs_the_right_response(srv):
    ch = srv.challenge()
    # a wrong password over the sent uri
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "nope", uri="sip:elsewhere")])) \
        == auth_mod.INVALID_PASSWORD
    # the right digest over the Request-URI, with another uri written in: not proven
    line = creds(ch, "alice", "secret", uri="sip:home")
    ctx = srv.ctx(headers=[line.replace('uri="sip:home"', 'uri="sip:elsewhere"')])
    assert srv.authorize(ctx) == auth_mod.INVALID_PASSWORD
    # realm: credentials for another realm are not ours
    ctx = srv.ctx(headers=[creds(ch, "alice", "secret", uri="sip:elsewhere",
                                 realm="other")])
    assert srv.authorize(ctx) == auth_mod.NO_CREDENTIALS
    # a made-up nonce
    ctx = srv.ctx(headers=[creds(dict(ch, nonce="0" * 48), "alice", "secret",
                                 uri="sip:elsewhere")])
    assert srv.authorize(ctx) == auth_mod.ERROR


def test_digest_uri_other_than_the_request_uri_nc_replay_and_expiry(srv):
    ch = srv.challenge()
    line = creds(ch, "alice", "secret", uri="sip:elsewhere", count=1)
    assert srv.authorize(srv.ctx(headers=[line])) == auth_mod.AUTHORIZED
    assert srv.authorize(srv.ctx(headers=[line])) == auth_mod.NONCE_REUSED
    srv.core.now += 301
    ctx = srv.ctx(headers=[creds(ch, "alice", "secret", uri="sip:elsewhere", count=2)])
    assert srv.authorize(ctx) == auth_mod.STALE_NONCE


def test_strict_digest_uri_refuses_another_uri_with_400(tmp_path, monkeypatch):
    srv = Server(tmp_path, HEADER + account("alice", "home", "secret"),
                 extra='modparam("auth", "strict_digest_uri", 1)')
    logged = []
    monkeypatch.setattr(log, "limited", lambda key, lvl, msg, interval=10.0: logged.append(msg))
    ch = srv.challenge()
    ctx = srv.ctx(headers=[creds(ch, "alice", "secret", uri="sip:elsewhere")])
    assert srv.authorize(ctx) == auth_mod.STOP
    assert srv.core.replies[-1][:2] == (400, "Bad Request")
    assert "is not the Request-URI" in logged[-1]
    # equal as URIs (RFC 3261 19.1.4) is still the same
    ctx = srv.ctx(ruri="sip:home;transport=udp",
                  headers=[creds(ch, "alice", "secret", uri="sip:HOME;transport=UDP")])
    assert srv.authorize(ctx) == auth_mod.AUTHORIZED


# --- after the authorization ---------------------------------------------------------------

def test_consume_credentials_removes_only_the_used_header(srv):
    ch = srv.challenge()
    other = 'Authorization: Digest username="alice", realm="upstream", nonce="n", ' \
            'uri="sip:home", response="00000000000000000000000000000000"'
    ctx = srv.ctx(headers=["X-Before: 1", other, creds(ch, "alice", "secret"), "X-After: 2"])
    assert srv.auth.consume_credentials(ctx) == -1          # nothing authorized yet
    assert srv.authorize(ctx) == 1
    assert srv.auth.consume_credentials(ctx) == 1
    names = [f.name for f in ctx.msg.headers]
    assert names == ["Via", "From", "To", "Call-ID", "CSeq", "X-Before", "Authorization",
                     "X-After", "Content-Length"]
    assert ctx.msg.get_all("Authorization") == [other.split(": ", 1)[1]]
    assert b"c0ffee" not in ctx.msg.to_bytes()


def test_consume_proxy_credentials(srv):
    ch = srv.challenge(proxy=True, method="INVITE", ruri="sip:bob@home")
    ctx = srv.ctx(method="INVITE", ruri="sip:bob@home", to="sip:bob@home", headers=[
        creds(ch, "alice", "secret", method="INVITE", uri="sip:bob@home", proxy=True)])
    assert srv.authorize(ctx, proxy=True) == 1
    assert srv.auth.consume_credentials(ctx) == 1
    assert not ctx.msg.has("Proxy-Authorization")


def test_check_to_refuses_someone_elses_aor(srv):
    ch = srv.challenge(to="sip:bob@home")
    ctx = srv.ctx(to="sip:bob@home", headers=[creds(ch, "alice", "secret")])
    assert srv.authorize(ctx) == 1
    assert srv.auth.check_to(ctx) == -1 and srv.auth.check_from(ctx) == 1


def test_check_to_unescapes_the_user(srv):
    ch = srv.challenge()
    ctx = srv.ctx(to="sip:%61lice@home", headers=[creds(ch, "alice", "secret")])
    assert srv.authorize(ctx) == 1
    assert srv.auth.check_to(ctx) == 1


# --- the subscriber table ------------------------------------------------------------------

def test_username_with_domain_uses_ha1b(srv):
    ch = srv.challenge()
    ctx = srv.ctx(headers=[creds(ch, "alice@home", "secret")])
    assert srv.authorize(ctx) == 1
    assert srv.auth.is_user(ctx, "alice") == 1
    assert srv.auth.check_to(ctx) == 1
    ctx = srv.ctx(to="sip:alice@other", headers=[creds(dict(ch, realm="home"), "alice@home",
                                                       "secret")])
    # the realm comes from To, so a To of another domain is another realm: no credentials
    assert srv.authorize(ctx) == auth_mod.NO_CREDENTIALS


def test_use_domain(tmp_path):
    table = HEADER + account("alice", "home", "pw-home") + account("alice", "work", "pw-work")
    srv = Server(tmp_path, table, extra='modparam("auth_db", "use_domain", 1)')
    for domain, pw in (("home", "pw-home"), ("work", "pw-work")):
        ch = srv.challenge(to=f"sip:alice@{domain}")
        ctx = srv.ctx(to=f"sip:alice@{domain}", headers=[creds(ch, "alice", pw)])
        assert srv.authorize(ctx) == 1
        assert srv.auth.check_to(ctx) == 1
    ch = srv.challenge(to="sip:alice@elsewhere")
    assert srv.authorize(srv.ctx(to="sip:alice@elsewhere", headers=[
        creds(ch, "alice", "pw-home")])) == auth_mod.USER_UNKNOWN


def test_without_use_domain_the_user_name_is_enough(tmp_path):
    srv = Server(tmp_path, HEADER + account("alice", "home", "pw"))
    # realm "lan" (the To host) but the account says domain "home": HA1 was made with realm
    # "home", so the digest for realm "lan" cannot match; with a clear password it does
    ch = srv.challenge(to="sip:alice@lan")
    assert srv.authorize(srv.ctx(to="sip:alice@lan", headers=[creds(ch, "alice", "pw")])) == \
        auth_mod.INVALID_PASSWORD
    srv2 = Server(tmp_path, HEADER + "alice:home:pw::\n")
    ch = srv2.challenge(to="sip:alice@lan")
    ctx = srv2.ctx(to="sip:alice@lan", headers=[creds(ch, "alice", "pw")])
    assert srv2.authorize(ctx) == 1
    assert srv2.auth.check_to(ctx) == 1           # user name only: no domain was matched


def test_clear_password_when_ha1_is_empty_or_calculate_ha1(tmp_path):
    table = HEADER + "carol:home:pw1::\n" + "dave:home:pw2:" + md5("dave:home:other") + ":\n"
    srv = Server(tmp_path, table)
    ch = srv.challenge(to="sip:carol@home")
    assert srv.authorize(srv.ctx(to="sip:carol@home", headers=[creds(ch, "carol", "pw1")])) \
        == 1
    ch = srv.challenge(to="sip:dave@home")
    assert srv.authorize(srv.ctx(to="sip:dave@home", headers=[creds(ch, "dave", "other")])) \
        == 1                                       # ha1 column wins by default
    srv = Server(tmp_path, table, extra='modparam("auth_db", "calculate_ha1", 1)')
    ch = srv.challenge(to="sip:dave@home")
    assert srv.authorize(srv.ctx(to="sip:dave@home", headers=[creds(ch, "dave", "pw2")])) == 1


def test_bad_ha1_in_the_table(tmp_path):
    srv = Server(tmp_path, HEADER + "alice:home::not-a-hash:\n")
    ch = srv.challenge()
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "x")])) == auth_mod.USER_UNKNOWN


def test_missing_table_warns_and_fails_every_authorization(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(log, "warn", warnings.append)
    srv = Server(tmp_path, None)
    assert any("no table" in w and "subscriber" in w for w in warnings)
    ch = srv.challenge()
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret")])) == \
        auth_mod.USER_UNKNOWN


def test_bad_lines_are_logged_and_skipped(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(log, "warn", warnings.append)
    srv = Server(tmp_path, HEADER + "garbage\n" + account("alice", "home", "secret"))
    assert len(warnings) == 1 and "subscriber:2: 5 fields expected, found 1" in warnings[0]
    ch = srv.challenge()
    assert srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret")])) == 1


def test_bad_header_or_columns_fail_without_crashing(tmp_path, monkeypatch):
    errors = []
    monkeypatch.setattr(log, "error", errors.append)
    Server(tmp_path, "this is no header\nalice:home\n")
    Server(tmp_path, "username(str) domain(str)\nalice:home\n")
    assert "bad column definition" in errors[0]
    assert "no column ha1 or password" in errors[1]


# --- the secret ----------------------------------------------------------------------------

def test_secret_file_made_0600_and_kept(tmp_path):
    srv = Server(tmp_path, HEADER)
    mode = stat.S_IMODE(os.stat(srv.secret_file).st_mode)
    assert mode == 0o600
    secret = srv.secret_file.read_bytes().strip()
    assert len(secret) == 64 and srv.auth.secret == secret
    again = Server(tmp_path, HEADER)                    # a restart reads the same secret
    assert again.auth.secret == secret


def test_nonces_survive_a_reload(srv, tmp_path):
    ch = srv.challenge()
    srv.authorize(srv.ctx(headers=[creds(ch, "alice", "secret", count=1)]))
    new = Server.__new__(Server)
    script = compile_config(CONFIG.format(db=tmp_path / "db", secret=srv.secret_file, extra=""),
                            "test.cfg")
    new.core, new.auth, new.db = srv.core, script.modules["auth"], script.modules["auth_db"]
    srv.core.modules = script.modules
    new.auth.start(srv.core, srv.auth)
    new.db.start(srv.core, srv.db)
    assert new.auth.secret == srv.auth.secret
    assert new.authorize(new.ctx(headers=[creds(ch, "alice", "secret", count=1)])) == \
        auth_mod.NONCE_REUSED                           # the nc table came along
    assert new.authorize(new.ctx(headers=[creds(ch, "alice", "secret", count=2)])) == 1


def test_unwritable_secret_file_gives_a_secret_for_this_run(tmp_path, monkeypatch):
    errors = []
    monkeypatch.setattr(log, "error", errors.append)
    (tmp_path / "a-file").write_text("not a directory")
    secret = auth_mod.load_secret(str(tmp_path / "a-file" / "secret"))
    assert len(secret) == 64
    assert "for this run only" in errors[0]


def test_secret_directory_is_made(tmp_path):
    path = tmp_path / "no-such-dir" / "secret"
    secret = auth_mod.load_secret(str(path))
    assert path.read_bytes().strip() == secret and len(secret) == 64
    assert path.stat().st_mode & 0o777 == 0o600


def test_short_secret_file_is_not_used(tmp_path, monkeypatch):
    errors = []
    monkeypatch.setattr(log, "error", errors.append)
    p = tmp_path / "secret"
    p.write_bytes(b"short\n")
    p.chmod(0o600)
    assert auth_mod.load_secret(str(p)) != b"short"
    assert "too short" in errors[0]


# --- the config ----------------------------------------------------------------------------

def compile_with(tmp_path, route):
    text = (f'loadmodule "sl"\nloadmodule "auth"\nloadmodule "auth_db"\n'
            f'modparam("auth_db", "db_url", "dbtext://{tmp_path}")\n'
            f'route {{ {route} }}\n')
    return compile_config(text, "t.cfg")


@pytest.mark.parametrize("route, message", [
    ('www_challenge("", "2");', 'qop must be "0" (none) or "1" (qop=auth)'),
    ('www_challenge("", "x");', 'qop must be "0"'),
    ('www_authorize("", "a/b");', "bad table name 'a/b'"),
    ('www_authorize("a\\"b", "subscriber");', "bad realm"),
])
def test_config_errors(tmp_path, route, message):
    with pytest.raises(ConfigError) as e:
        compile_with(tmp_path, route)
    assert message in str(e.value)


def test_auth_db_needs_auth(tmp_path):
    with pytest.raises(ConfigError) as e:
        compile_config('loadmodule "auth_db"\nroute { exit; }\n', "t.cfg")
    assert "module 'auth_db' needs module 'auth'" in str(e.value)


def test_pseudo_variable_realm(tmp_path):
    script = compile_with(tmp_path, 'if (!www_authorize($td, "subscriber")) '
                                    '{ www_challenge($td, "1"); exit; }')
    assert "auth" in script.modules


def test_ser_09_style_config_compiles(tmp_path):
    compile_with(tmp_path, """
        if (method == "REGISTER") {
            if (!www_authorize("", "subscriber")) { www_challenge("", "0"); break; }
            if (!check_to()) { sl_send_reply("403", "Forbidden"); break; }
            consume_credentials();
        }
        if (!proxy_authorize("home", "subscriber")) { proxy_challenge("home", "1"); break; }
        if (!check_from() || !is_user("alice")) { sl_send_reply("403", "Use From=ID"); break; }
    """)
