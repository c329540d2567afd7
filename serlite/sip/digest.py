"""HTTP Digest authentication for SIP (RFC 2617, RFC 3261 22.4, RFC 7616): parsing credentials,
building challenges, computing digests, self-validating nonces and nonce-count replay checks.

Pure functions and one small table; no I/O, no clock (STYLE.md 1): the time (``now``, epoch
seconds) and the server's secret are arguments.  The auth and auth_db modules wrap them.

Strings are the octet strings serlite's SIP layer makes (latin-1 decoded, one character per
octet), so hashing encodes them back with latin-1 and gets the octets the client hashed.  Pass
``bytes`` for text that is not such a string.

Only ``MD5`` (or no algorithm, which means MD5) and ``qop=auth`` (or no qop, RFC 2069
compatibility) are supported: that is what SIP phones implement and what the challenge offers.
"""

import hashlib
import hmac

from .errors import ParseError
from .grammar import HEXDIGITS, TOKEN_CHARS, WSP

__all__ = ["parse_credentials", "build_challenge", "ha1", "ha2", "response", "make_nonce",
           "check_nonce", "nonce_expiry", "nonce_offered_qop", "NonceCounts", "NONCE_OK",
           "parse_challenge", "authorization", "ChallengeError",
           "NONCE_STALE", "NONCE_BAD"]

NONCE_OK = "ok"
NONCE_STALE = "stale"
NONCE_BAD = "bad"

_LHEX = "0123456789abcdef"


def _octets(s):
    return s if isinstance(s, bytes) else s.encode("latin-1")


def _md5_hex(*parts):
    """MD5 of the parts joined with ":" as 32 lower-case hex digits (RFC 2617 3.2.1: H and KD
    output ``32LHEX``)."""
    return hashlib.md5(b":".join(_octets(p) for p in parts)).hexdigest()


# --- parsing ------------------------------------------------------------------------------------
#
# RFC 3261 25.1 (RFC 2617 3.2.2 says the same with HTTP's rules):
#   Authorization     =  "Authorization" HCOLON credentials
#   credentials       =  ("Digest" LWS digest-response) / other-response
#   digest-response   =  dig-resp *(COMMA dig-resp)
#   dig-resp          =  username / realm / nonce / digest-uri / dresponse / algorithm / cnonce
#                        / opaque / message-qop / nonce-count / auth-param
#   username          =  "username" EQUAL username-value
#   username-value    =  quoted-string
#   digest-uri        =  "uri" EQUAL LDQUOT digest-uri-value RDQUOT
#   message-qop       =  "qop" EQUAL qop-value
#   cnonce            =  "cnonce" EQUAL cnonce-value
#   nonce-count       =  "nc" EQUAL nc-value
#   nc-value          =  8LHEX
#   dresponse         =  "response" EQUAL request-digest
#   request-digest    =  LDQUOT 32LHEX RDQUOT
#   auth-param        =  auth-param-name EQUAL ( token / quoted-string )
#   auth-param-name   =  token
#   other-response    =  auth-scheme LWS auth-param *(COMMA auth-param)
#   auth-scheme       =  token
#   quoted-string     =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
#   quoted-pair       =  "\" (%x00-09 / %x0B-0C / %x0E-7F)
# Leniency, as real phones need: any parameter may be quoted or not (qop="auth",
# algorithm="MD5" are common), an unquoted value is anything up to a comma or white space, and
# empty list elements (",,") are skipped (RFC 2616 2.1 "#rule").  A parameter given twice is an
# error: which one was meant cannot be known.

def _skip_wsp(s, i):
    n = len(s)
    while i < n and s[i] in WSP:
        i += 1
    return i


def _quoted(s, i):
    """``s[i]`` is a DQUOTE: (the unescaped content, the index after the closing DQUOTE)."""
    out = []
    j = i + 1
    n = len(s)
    while j < n:
        c = s[j]
        if c == '"':
            return "".join(out), j + 1
        if c == "\\":
            if j + 1 >= n:
                break
            out.append(s[j + 1])
            j += 2
            continue
        out.append(c)
        j += 1
    raise ParseError("unterminated quoted string in credentials")


def parse_credentials(value):
    """``(scheme, params)`` of an Authorization / Proxy-Authorization header value.

    ``scheme`` is as written (compare it case-insensitively); ``params`` maps each parameter
    name, lower-cased, to its value with quotes removed and quoted-pairs unescaped.  Raises
    ``ParseError`` (400) for text that does not follow the grammar above.
    """
    s = value.strip(WSP)
    n = len(s)
    i = 0
    while i < n and s[i] not in WSP:
        i += 1
    scheme = s[:i]
    if not scheme or scheme.strip(TOKEN_CHARS):
        raise ParseError(f"bad authorization scheme {scheme[:40]!r}")
    params = {}
    while True:
        i = _skip_wsp(s, i)
        while i < n and s[i] == ",":           # empty list elements
            i = _skip_wsp(s, i + 1)
        if i >= n:
            return scheme, params
        start = i
        while i < n and s[i] in TOKEN_CHARS:
            i += 1
        name = s[start:i].lower()
        if not name:
            raise ParseError(f"bad credentials parameter at {s[start:start + 40]!r}")
        i = _skip_wsp(s, i)
        if i >= n or s[i] != "=":
            raise ParseError(f"credentials parameter {name!r} has no value")
        i = _skip_wsp(s, i + 1)
        if i < n and s[i] == '"':
            val, i = _quoted(s, i)
        else:
            start = i
            while i < n and s[i] != "," and s[i] not in WSP:
                if s[i] == '"':
                    raise ParseError(f"stray quote in credentials parameter {name!r}")
                i += 1
            val = s[start:i]
            if not val:
                raise ParseError(f"credentials parameter {name!r} has no value")
        if name in params:
            raise ParseError(f"credentials parameter {name!r} given twice")
        params[name] = val
        i = _skip_wsp(s, i)
        if i < n and s[i] != ",":
            raise ParseError(f"comma expected after credentials parameter {name!r}")


# --- challenges ---------------------------------------------------------------------------------
#
# RFC 3261 25.1:
#   WWW-Authenticate  =  "WWW-Authenticate" HCOLON challenge
#   challenge         =  ("Digest" LWS digest-cln *(COMMA digest-cln)) / other-challenge
#   digest-cln        =  realm / domain / nonce / opaque / stale / algorithm / qop-options
#                        / auth-param
#   realm             =  "realm" EQUAL realm-value
#   realm-value       =  quoted-string
#   nonce             =  "nonce" EQUAL nonce-value
#   nonce-value       =  quoted-string
#   stale             =  "stale" EQUAL ( "true" / "false" )
#   algorithm         =  "algorithm" EQUAL ( "MD5" / "MD5-sess" / token )
#   qop-options       =  "qop" EQUAL LDQUOT qop-value *("," qop-value) RDQUOT
#   qop-value         =  "auth" / "auth-int" / token

def quote(text):
    """``text`` as a quoted-string (RFC 3261 25.1): DQUOTEs and backslashes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_challenge(realm, nonce, qop=True, stale=False):
    """The value of a WWW-Authenticate / Proxy-Authenticate header (RFC 2617 3.2.1): a Digest
    challenge for ``realm`` with ``nonce``, offering ``qop="auth"`` when ``qop``, and
    ``stale=true`` when the previous request's nonce had expired but its digest was right."""
    parts = [f"Digest realm={quote(realm)}", f"nonce={quote(nonce)}"]
    if qop:
        parts.append('qop="auth"')
    parts.append("algorithm=MD5")
    if stale:
        parts.append("stale=true")
    return ", ".join(parts)


# --- digests ------------------------------------------------------------------------------------

def ha1(username, realm, password):
    """RFC 2617 3.2.2.2: A1 = unq(username-value) ":" unq(realm-value) ":" passwd, for
    ``algorithm=MD5``; returns H(A1) in hex.  With ``username`` written ``user@domain`` this is
    SER's ``ha1b``."""
    return _md5_hex(username, realm, password)


def ha2(method, uri):
    """RFC 2617 3.2.2.3: A2 = Method ":" digest-uri-value (qop "auth" or none); H(A2) in hex."""
    return _md5_hex(method, uri)


def response(ha1_hex, nonce, method, uri, qop=None, nc=None, cnonce=None):
    """The request-digest (RFC 2617 3.2.2.1) the client must send, in lower-case hex:

    with ``qop`` ("auth"):  KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2))
    without (RFC 2069):     KD(H(A1), nonce ":" H(A2))

    where KD(secret, data) = H(secret ":" data).  ``ha1_hex`` is H(A1) in hex (lower or upper
    case: what a subscriber table holds)."""
    h2 = ha2(method, uri)
    h1 = ha1_hex.lower()
    if qop:
        return _md5_hex(h1, nonce, nc, cnonce, qop, h2)
    return _md5_hex(h1, nonce, h2)


def is_lhex(text, length):
    """``text`` is ``length`` hex digits (``32LHEX``, ``8LHEX``; upper case accepted too)."""
    return len(text) == length and not text.strip(HEXDIGITS)


# --- nonces -------------------------------------------------------------------------------------
#
# RFC 2617 3.2.1 leaves the nonce's content to the server and suggests
#   time-stamp H(time-stamp ":" ETag ":" private-key)
# serlite's nonce is self-validating, so the server keeps no table of the nonces it gave out:
#   nonce  =  expiry flags salt mac
#   expiry =  8LHEX                 ; epoch second from which the nonce is stale
#   flags  =  LHEX                  ; bit 0: the challenge offered qop="auth"
#   salt   =  *(2LHEX)              ; random, so that two challenges never share a nonce
#   mac    =  32LHEX                ; HMAC-SHA256(secret, expiry flags salt [SP source]), first
#                                   ; 16 octets; source: the address the challenge went to
# An attacker cannot make a nonce, nor move its expiry or its flags, without the secret.  A
# nonce made for a source is good from that address only: UDP sources are forged at will, and
# a nonce asked for from one address and answered wrongly under another's would otherwise count
# as that address's failed logins and get it banned (secfilter) without a reply ever reaching
# the forger (Kamailio's auth_checks flag 16, source IP, does the same).  The
# qop flag lets the server refuse an answer without qop to a challenge that offered it (a
# downgrade to RFC 2069's replayable digest) without remembering its challenges.

_MAC_LEN = 32
_EXPIRY_LEN = 8
_FLAG_QOP = 1


def _mac(secret, body, source=""):
    text = f"{body} {source}" if source else body
    return hmac.new(_octets(secret), text.encode("ascii", "replace"),
                    "sha256").hexdigest()[:_MAC_LEN]


def make_nonce(expiry, secret, salt=b"", qop=False, source=""):
    """A nonce that ``check_nonce`` accepts until the epoch second ``expiry`` (an int);
    ``salt`` (bytes, e.g. 6 from ``os.urandom``) makes it unique; ``qop``: the challenge it
    goes in offers qop (``nonce_offered_qop`` tells later); ``source``: the address it is
    sent to, the only one ``check_nonce`` then takes it from."""
    body = "%08x%x%s" % (int(expiry) & 0xFFFFFFFF, _FLAG_QOP if qop else 0, salt.hex())
    return body + _mac(secret, body, source)


def nonce_offered_qop(nonce):
    """True when the challenge that carried ``nonce`` (one ``check_nonce`` accepted) offered
    qop."""
    return bool(int(nonce[_EXPIRY_LEN], 16) & _FLAG_QOP)


def nonce_expiry(nonce):
    """The expiry written in a nonce of ours (not checked: see ``check_nonce``), or None."""
    if len(nonce) < _EXPIRY_LEN + 1 + _MAC_LEN or nonce.strip(_LHEX):
        return None
    return int(nonce[:_EXPIRY_LEN], 16)


def check_nonce(nonce, now, secret, source=""):
    """``NONCE_OK`` for a nonce ``make_nonce`` made with ``secret`` whose expiry is after
    ``now``; ``NONCE_STALE`` for one of ours that has expired (RFC 2617 3.2.1 ``stale``: the
    client may retry with a new nonce without asking its user); ``NONCE_BAD`` for anything
    else (made up, tampered with, made with another secret or for another ``source``)."""
    expiry = nonce_expiry(nonce)
    if expiry is None:
        return NONCE_BAD
    if (len(nonce) - _EXPIRY_LEN - 1 - _MAC_LEN) % 2:
        return NONCE_BAD
    body, mac = nonce[:-_MAC_LEN], nonce[-_MAC_LEN:]
    if not hmac.compare_digest(mac, _mac(secret, body, source)):
        return NONCE_BAD
    return NONCE_OK if now < expiry else NONCE_STALE


# --- nonce-count replay ------------------------------------------------------------------------
#
# RFC 2617 3.2.2: "nc ... The purpose of this directive is to allow the server to detect request
# replays by maintaining its own copy of this count - if the same nc-value is seen twice, then
# the request is a replay."  NonceCounts remembers, per nonce, the highest nc accepted.

COUNT_OK = "ok"
COUNT_REPLAY = "replay"
COUNT_FORGOTTEN = "forgotten"


class NonceCounts:
    """The highest ``nc`` accepted for each live nonce, in bounded memory.

    ``check(nonce, nc, expiry, now)`` accepts ``nc`` (an int) only if it is greater than every
    nc accepted before for ``nonce``, and records it.  At most ``capacity`` nonces are kept:
    expired ones are forgotten first (they are stale anyway); when the table is still full, the
    oldest is dropped and ``floor`` rises to its expiry, and from then on a nonce not in the
    table that expires no later than ``floor`` is answered ``COUNT_FORGOTTEN`` (it may have been
    used before: the caller treats it as stale, so a client just retries with a fresh nonce)
    rather than ``COUNT_OK``.  So a flood of nonces costs memory up to ``capacity``, never a
    replay window.
    """

    def __init__(self, capacity=10000):
        self.capacity = capacity
        self.seen = {}          # nonce -> [highest nc, expiry]; insertion order ~ expiry order
        self.floor = 0

    def __len__(self):
        return len(self.seen)

    def check(self, nonce, nc, expiry, now):
        entry = self.seen.get(nonce)
        if entry is not None:
            if nc <= entry[0]:
                return COUNT_REPLAY
            entry[0] = nc
            return COUNT_OK
        if expiry <= self.floor:
            return COUNT_FORGOTTEN
        self._prune(now)
        self.seen[nonce] = [nc, expiry]
        return COUNT_OK

    def _prune(self, now):
        seen = self.seen
        while seen:                              # expired ones at the front
            first = next(iter(seen))
            if seen[first][1] > now:
                break
            del seen[first]
        while len(seen) >= self.capacity:
            first = next(iter(seen))
            self.floor = max(self.floor, seen.pop(first)[1])

    def forget_expired(self, now):
        """Drop every expired nonce (a timer may call this; ``check`` also prunes)."""
        for nonce in [k for k, v in self.seen.items() if v[1] <= now]:
            del self.seen[nonce]


# --- the client's side: answering a challenge (uac_auth, outbound registration) -----------------

class ChallengeError(ValueError):
    """A challenge serlite cannot answer (another scheme or algorithm, only qop=auth-int)."""


def parse_challenge(value):
    """``{realm, nonce, opaque, qop, stale, algorithm}`` of a WWW-Authenticate /
    Proxy-Authenticate value (RFC 2617 3.2.1); ``qop``: "auth" when offered, else None (RFC
    2069).  ``ChallengeError`` for what MD5 digest with qop auth or none cannot answer;
    ``ParseError`` for text that is no challenge."""
    scheme, params = parse_credentials(value)
    if scheme.lower() != "digest":
        raise ChallengeError(f"{scheme} authentication is not supported (Digest only)")
    algorithm = params.get("algorithm", "MD5")
    if algorithm.upper() != "MD5":
        raise ChallengeError(f"digest algorithm {algorithm} is not supported (MD5 only)")
    if "nonce" not in params or "realm" not in params:
        raise ChallengeError("the challenge has no realm or no nonce")
    qop = None
    if "qop" in params:
        offered = [q.strip().lower() for q in params["qop"].split(",")]
        if "auth" not in offered:
            raise ChallengeError(f"qop {params['qop']} is not supported (auth only)")
        qop = "auth"
    return {"realm": params["realm"], "nonce": params["nonce"], "opaque": params.get("opaque"),
            "qop": qop, "stale": params.get("stale", "").lower() == "true",
            "algorithm": "algorithm" in params}


def authorization(challenge, method, uri, username, ha1_hex, cnonce, nc=1):
    """The Authorization / Proxy-Authorization value answering ``challenge`` (what
    ``parse_challenge`` returned) for ``method`` ``uri`` as ``username`` with H(A1)
    ``ha1_hex`` (RFC 2617 3.2.2); ``cnonce`` (hex text, random) is used with qop."""
    qop = challenge["qop"]
    nc_text = "%08x" % nc
    digest = response(ha1_hex, challenge["nonce"], method, uri, qop, nc_text, cnonce)
    parts = [f"Digest username={quote(username)}", f"realm={quote(challenge['realm'])}",
             f"nonce={quote(challenge['nonce'])}", f"uri={quote(uri)}",
             f"response={quote(digest)}"]
    if challenge["algorithm"]:
        parts.append("algorithm=MD5")
    if challenge["opaque"] is not None:
        parts.append(f"opaque={quote(challenge['opaque'])}")
    if qop:
        parts += [f"qop={qop}", f"cnonce={quote(cnonce)}", f"nc={nc_text}"]
    return ", ".join(parts)
