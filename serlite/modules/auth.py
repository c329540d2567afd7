"""auth: digest challenges and what follows a successful authorization (SER's auth module).

Script functions: ``www_challenge(realm, qop)`` (401 with WWW-Authenticate),
``proxy_challenge(realm, qop)`` (407 with Proxy-Authenticate), ``consume_credentials()`` (remove
the Authorization / Proxy-Authorization header that authorized the request before it is
relayed), and ``is_user(user)``, ``check_to()``, ``check_from()`` (SER 0.9 had these three in
its ``uri`` module; here they sit beside the credentials they read).

The checking itself, ``www_authorize``/``proxy_authorize``, is auth_db's: it finds the user's
HA1 in a table and calls ``Auth.authorize`` here (SER's auth API, ``pre_auth``/``post_auth``).
The digest protocol is ``serlite.sip.digest`` (pure functions); this module adds the secret,
the clock, the nonce-count table and the replies.  docs/auth.md has the whole story.
"""

from __future__ import annotations

import hmac
import os
import stat
import weakref

from .. import log
from ..sip import digest
from ..sip.errors import ParseError
from ..sip.grammar import unescape
from ..sip.uri import URI
from ..store.files import read_or_make_secret
from .export import REQUEST_ROUTE, Function, Module, ModuleSpec, Param

DEFAULT_SECRET_FILE = "/etc/ser/auth_secret"
MAX_NONCE_EXPIRE = 86400   # a day: longer only widens what a captured nonce is good for
NONCE_COUNTS = 10000        # nonces whose nc is tracked at most (NonceCounts' capacity)
# the count recorded for a REGISTER answered without qop: above every 8-hex nc, so that nonce
# is spent (one-time; docs/auth.md "Replays")
ONE_TIME = 1 << 32
SECRET_BYTES = 32

# Return values of authorize (www_authorize/proxy_authorize), Kamailio's numbers: every one
# but AUTHORIZED is false for the script; 0 (after a 400 was sent) stops it.
AUTHORIZED = 1
ERROR = -1                  # not a nonce of ours, an algorithm/qop we did not offer, or no
                            # qop although the challenge offered it
INVALID_PASSWORD = -2
USER_UNKNOWN = -3
STALE_NONCE = -4
NO_CREDENTIALS = -5
NONCE_REUSED = -6           # nc not higher than before; a no-qop nonce's second REGISTER
STOP = 0

WWW = ("Authorization", 401, "Unauthorized", "WWW-Authenticate")
PROXY = ("Proxy-Authorization", 407, "Proxy Authentication Required", "Proxy-Authenticate")


class Authorized:
    """What an authorization left on the request (kept per Context): ``user`` (user part of
    the digest username), ``domain`` (the domain the account was matched with, or None when
    matched by user name only), ``realm``, the header ``name`` and ``value`` it came in; or,
    after a failure, only ``stale`` and ``realm`` (for the challenge that follows)."""

    __slots__ = ("user", "domain", "realm", "name", "value", "stale")

    def __init__(self, realm, user=None, domain=None, name=None, value=None, stale=False):
        self.realm = realm
        self.user = user
        self.domain = domain
        self.name = name
        self.value = value
        self.stale = stale


def split_username(username):
    """``("alice", "home")`` for a digest username ``alice@home``, ``("alice", None)`` for
    ``alice`` (SER's ``username.user``/``username.domain``)."""
    user, at, domain = username.rpartition("@")
    return (user, domain) if at and user and domain else (username, None)


def default_realm(msg):
    """The realm when the script gives ``""`` (as Kamailio): the To host for a REGISTER (the
    address of record being registered), the From host for anything else."""
    na = msg.to if msg.method == "REGISTER" else msg.from_
    try:
        host = na.uri.host if na is not None else ""
    except ParseError:
        host = ""
    if not host:                        # a tel: URI has no host: the Request-URI's then
        try:
            host = URI.parse(msg.ruri).host
        except ParseError:
            host = ""
    return host or "serlite"


def _fix_challenge(module, args, script):
    realm = "" if args[0] is None else str(args[0])
    if any(c in realm for c in '\r\n"\\'):
        raise ValueError(f"bad realm {realm!r}")
    try:
        qop = int(args[1])
    except (TypeError, ValueError):
        raise ValueError(f'qop must be "0" (none) or "1" (qop=auth), not {args[1]!r}') \
            from None
    if qop not in (0, 1):
        raise ValueError(f'qop must be "0" (none) or "1" (qop=auth), not {args[1]!r}')
    return (realm, bool(qop))


def _fix_user(module, args, script):
    return ("" if args[0] is None else str(args[0]),)


class Auth(Module):
    name = "auth"

    def __init__(self, params):
        super().__init__(params)
        if params["nonce_expire"] <= 0:
            raise ValueError(f"auth nonce_expire must be > 0 seconds, not "
                             f"{params['nonce_expire']}")
        self.secret = None
        self.counts = digest.NonceCounts(NONCE_COUNTS)
        self.results = weakref.WeakKeyDictionary()      # Context -> Authorized
        # who is told of failed logins (secfilter); empty unless a module listens, so a
        # failure costs one truth test when nobody does
        self.failure_listeners = []

    def listen_failures(self, listener):
        """``listener(ip, username, known)`` is called for every failed digest login: a wrong
        response for a known user (``known`` True) or any response for an unknown one
        (False).  Not for a request without credentials, nor a right one on a stale nonce."""
        if listener not in self.failure_listeners:
            self.failure_listeners.append(listener)

    def _failed(self, ctx, username, known):
        if ctx.source is not None:
            for listener in self.failure_listeners:
                listener(ctx.source.ip, username, known)

    def start(self, core, previous=None):
        super().start(core, previous)
        if previous is not None and previous.secret is not None and \
                previous.params["secret_file"] == self.params["secret_file"]:
            self.secret = previous.secret             # SIGHUP: nonces given out stay good
            self.counts = previous.counts
        else:
            self.secret = load_secret(self.params["secret_file"])

    # -- authorizing (called by auth_db) ------------------------------------------------------
    def authorize(self, ctx, realm, kind, lookup):
        """Check the request's credentials for ``realm`` (``""``: the default realm) in the
        header of ``kind`` (``WWW`` or ``PROXY``).  ``lookup(username, realm)`` gives
        ``(ha1_hex, domain_or_None)`` for the account, or None for an unknown user.  Returns
        one of the codes above; STOP after answering 400 to malformed credentials."""
        msg = ctx.msg
        realm = realm or default_realm(msg)
        earlier = self.results.get(ctx)
        if earlier is not None and earlier.user is None:
            del self.results[ctx]           # a stale mark is for the challenge right after
        found = self._credentials(ctx, realm, kind)
        if found is None:
            return NO_CREDENTIALS
        if found is STOP:
            return STOP
        value, p = found
        if not self._well_formed(ctx, p):
            return STOP
        algorithm = p.get("algorithm")
        qop = p.get("qop")
        if (algorithm is not None and algorithm.lower() != "md5") or \
                (qop is not None and qop.lower() != "auth"):
            log.debug(f"auth: {p['username']!r}: algorithm {algorithm!r} qop {qop!r} "
                      "not offered")
            return ERROR
        now = self.core.wall()
        nonce = p["nonce"]
        state = digest.check_nonce(nonce, now, self.secret, _source_ip(ctx))
        if state == digest.NONCE_BAD:
            # or one given to another address: its answer is not checked, so that forged
            # sources cannot get an address banned (digest.py, the nonce); a new challenge
            log.debug(f"auth: {p['username']!r}: not a nonce of ours for this address")
            return ERROR
        if not qop and digest.nonce_offered_qop(nonce):
            # RFC 2617 3.2.2: a client that got qop-options must answer with qop; without it
            # there is no nc and the answer could be replayed (a downgrade): not accepted
            log.limited(("auth-noqop", p["username"]), log.INFO,
                        f"auth: {p['username']!r}: no qop in the answer to a challenge that "
                        f"offered qop=auth (from {ctx.source.ip})")
            return ERROR
        account = lookup(p["username"], realm)
        if account is None:
            log.limited(("auth-unknown", p["username"]), log.INFO,
                        f"auth: unknown user {p['username']!r} in realm {realm!r}")
            if self.failure_listeners:
                self._failed(ctx, p["username"], False)
            return USER_UNKNOWN
        ha1, domain = account
        expected = digest.response(ha1, nonce, msg.method, p["uri"], qop and qop.lower(),
                                   p.get("nc"), p.get("cnonce"))
        if not hmac.compare_digest(expected, p["response"].lower()):
            log.limited(("auth-bad", p["username"]), log.INFO,
                        f"auth: wrong password of {p['username']!r} in realm {realm!r} "
                        f"from {ctx.source.ip}")
            if self.failure_listeners:
                self._failed(ctx, p["username"], True)
            return INVALID_PASSWORD
        # The digest is right: from here on a refusal says stale=true (RFC 2617 3.2.1), so
        # the phone retries with a fresh nonce without asking its user.
        if state == digest.NONCE_STALE:
            self.results[ctx] = Authorized(realm, stale=True)
            return STALE_NONCE
        if qop:
            count = int(p["nc"], 16)
        elif msg.method == "REGISTER":
            # no qop, no nc: a REGISTER could be replayed with another Contact and bind the
            # account to the replayer's address; such a nonce is good for one REGISTER
            count = ONE_TIME
        else:
            count = None
        if count is not None:
            seen = self.counts.check(nonce, count, digest.nonce_expiry(nonce), now)
            if seen != digest.COUNT_OK:
                log.limited(("auth-replay", p["username"]), log.INFO,
                            f"auth: {p['username']!r}: nonce "
                            f"{'count ' + p['nc'] if qop else 'of a REGISTER without qop'} "
                            f"already used ({seen})")
                self.results[ctx] = Authorized(realm, stale=True)
                return NONCE_REUSED
        user, _ = split_username(p["username"])
        self.results[ctx] = Authorized(realm, user, domain, kind[0], value)
        return AUTHORIZED

    def _credentials(self, ctx, realm, kind):
        """(header value, params) of the first Digest credentials for ``realm``; None if there
        are none; STOP after answering 400 to Digest credentials that do not parse.  Other
        schemes (RFC 4475 3.1.2.17 regaut01: ``NoOneKnowsThisScheme``) are passed over."""
        for value in ctx.msg.get_all(kind[0]):
            try:
                scheme, params = digest.parse_credentials(value)
            except ParseError as exc:
                if value.lstrip(" \t")[:7].lower().rstrip(" \t") == "digest":
                    self._bad(ctx, f"malformed {kind[0]}: {exc.reason}")
                    return STOP
                continue
            if scheme.lower() == "digest" and params.get("realm") == realm:
                return value, params
        return None

    def _well_formed(self, ctx, p):
        """RFC 2617 3.2.2 required directives and their syntax; with ``strict_digest_uri`` 1
        also 3.2.2.5, the digest uri must be the Request-URI.  Answers 400 (SER does) and
        returns False when not.

        By default the uri is not compared (SER's and Kamailio's auth do not): sipp puts the
        server's address there, some ALGs rewrite the Request-URI but not the credentials.
        The response is computed over the uri the client sent, so it is still proven."""
        kind = "credentials"
        for name in ("username", "nonce", "uri", "response"):
            if not p.get(name):
                return self._bad(ctx, f"{kind} without {name}")
        if not digest.is_lhex(p["response"], 32):
            return self._bad(ctx, f"{kind}: response is not 32 hex digits")
        if p.get("qop") is not None:
            if not digest.is_lhex(p.get("nc") or "", 8):
                return self._bad(ctx, f"{kind}: qop without an 8-digit nc")
            if not p.get("cnonce"):
                return self._bad(ctx, f"{kind}: qop without cnonce")
        if not self.params["strict_digest_uri"]:
            return True
        ruri = ctx.msg.ruri
        uri = p["uri"]
        if uri != ruri:
            try:
                same = URI.parse(uri).equals(ruri)
            except ParseError:
                same = False
            if not same:
                return self._bad(ctx, f"{kind}: uri {uri[:80]!r} is not the Request-URI")
        return True

    def _bad(self, ctx, why):
        log.limited(("auth-400", ctx.source.ip), log.NOTICE,
                    f"auth: {why} (from {ctx.source.ip}:{ctx.source.port}): 400")
        self.core.send_reply(ctx, 400, "Bad Request")
        return False

    # -- challenges ---------------------------------------------------------------------------
    def www_challenge(self, ctx, realm, qop):
        return self._challenge(ctx, realm, qop, WWW)

    def proxy_challenge(self, ctx, realm, qop):
        return self._challenge(ctx, realm, qop, PROXY)

    def challenge_value(self, ctx, realm, qop):
        """The WWW-/Proxy-Authenticate value for this request: a new nonce, stale=true if the
        authorization just tried for the same realm found a right digest on an old nonce."""
        realm = realm or default_realm(ctx.msg)
        result = self.results.get(ctx)
        stale = result is not None and result.stale and result.realm == realm
        nonce = digest.make_nonce(self.nonce_expiry(self.core.wall()), self.secret,
                                  os.urandom(6), qop, _source_ip(ctx))
        return digest.build_challenge(realm, nonce, qop, stale)

    def nonce_expiry(self, now):
        """A nonce made at ``now`` is good for at least ``nonce_expire`` whole seconds."""
        return -int(-(now + self.params["nonce_expire"]) // 1)

    def _challenge(self, ctx, realm, qop, kind):
        _, code, reason, header = kind
        value = self.challenge_value(ctx, realm, qop)
        return 1 if self.core.send_reply(ctx, code, reason, ((header, value),)) else -1

    # -- after the authorization --------------------------------------------------------------
    def consume_credentials(self, ctx):
        """Remove the header line whose credentials authorized the request (SER: only that
        one; credentials for other realms, meant for proxies further on, stay)."""
        result = self.results.get(ctx)
        if result is None or result.user is None:
            return -1
        msg = ctx.msg
        name_key = result.name.lower()
        gone = None
        kept = []
        for i, f in enumerate(msg.headers):
            if f.key == name_key:
                if gone is None and f.value == result.value:
                    gone = i
                else:
                    kept.append((i, f.name, f.value))
        if gone is None:
            return -1
        msg.remove_header(name_key)
        # put the others back where they were: in order, each at its old index less the one
        # line now missing before it (the consumed one)
        for i, hname, value in kept:
            msg.insert_header(i - 1 if gone < i else i, hname, value)
        return 1

    def authorized(self, ctx):
        """The Authorized record of a request that passed www/proxy_authorize, or None."""
        result = self.results.get(ctx)
        return result if result is not None and result.user is not None else None

    def is_user(self, ctx, user):
        result = self.authorized(ctx)
        return 1 if result is not None and result.user == user else -1

    def check_to(self, ctx):
        return self._check_uri(ctx, ctx.msg.to)

    def check_from(self, ctx):
        return self._check_uri(ctx, ctx.msg.from_)

    def _check_uri(self, ctx, name_addr):
        """SER's check_to/check_from: the URI's user part (unescaped) is the authenticated
        user; its host is the account's domain too when the account was matched by domain."""
        result = self.authorized(ctx)
        if result is None or name_addr is None:
            return -1
        try:
            uri = name_addr.uri
        except ParseError:
            return -1
        if unescape(uri.user or "") != result.user:
            return -1
        if result.domain is not None and uri.host != result.domain.lower():
            return -1
        return 1


def _source_ip(ctx):
    """The address a nonce is made for and taken from ("" for a request of no source)."""
    return ctx.source.ip if ctx.source is not None else ""


def load_secret(path):
    """The nonce secret from ``path``, made (``os.urandom``, mode 0600) when the file is not
    there.  When it can be neither read nor made, a secret for this run only (logged): nonces
    then do not survive a restart, which costs phones one more challenge."""
    try:
        secret = read_or_make_secret(path, SECRET_BYTES)
        if os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warn(f"auth: {path} is readable by others (chmod 600 {path})")
        return secret
    except (OSError, ValueError) as exc:
        log.error(f"auth: nonce secret {path}: {getattr(exc, 'strerror', None) or exc}; using "
                  f"one for this run only (nonces will not survive a restart)")
        return os.urandom(SECRET_BYTES).hex().encode()


EXPORTS = ModuleSpec(
    name="auth",
    doc="Digest authentication (RFC 2617): challenges, and checks after a login.",
    factory=Auth,
    functions=(
        Function("www_challenge", "www_challenge", (2,), REQUEST_ROUTE, _fix_challenge,
                 "answer 401 with a WWW-Authenticate Digest challenge (qop \"1\": qop=auth)",
                 dynamic=True),
        Function("proxy_challenge", "proxy_challenge", (2,), REQUEST_ROUTE, _fix_challenge,
                 "answer 407 with a Proxy-Authenticate Digest challenge", dynamic=True),
        Function("consume_credentials", "consume_credentials", (0,), REQUEST_ROUTE,
                 doc="remove the credentials that authorized the request"),
        Function("is_user", "is_user", (1,), REQUEST_ROUTE, _fix_user,
                 "true if the request was authorized as this user", dynamic=True),
        Function("check_to", "check_to", (0,), REQUEST_ROUTE,
                 doc="true if the To user is the authorized user"),
        Function("check_from", "check_from", (0,), REQUEST_ROUTE,
                 doc="true if the From user is the authorized user"),
    ),
    params={
        "secret_file": Param(str, DEFAULT_SECRET_FILE,
                             "the nonce secret; made (0600) at the first start"),
        "nonce_expire": Param(int, 300, "seconds a nonce is good for", min=1,
                              max=MAX_NONCE_EXPIRE),
        "strict_digest_uri": Param(int, 0, "1: credentials whose uri is not the Request-URI "
                                   "get 400 (RFC 2617 3.2.2.5)", min=0, max=1),
    },
)
