"""serlite.sip.digest: RFC 2617 digests, the credentials grammar, challenges, self-validating
nonces (ok / stale / bad / tampered) and nonce-count replay detection with bounded memory."""

import hashlib
import random

import pytest

from serlite.sip import digest
from serlite.sip.errors import ParseError

SECRET = b"0123456789abcdef0123456789abcdef"

# RFC 2617 3.5
MUFASA = ('Digest username="Mufasa", realm="testrealm@host.com", '
          'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
          'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
          'opaque="5ccc069c403ebaf9f0171e9517f40e41"')


# --- digests -------------------------------------------------------------------------------

def test_rfc2617_section_3_5_example():
    h1 = digest.ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert digest.response(h1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "GET", "/dir/index.html",
                           "auth", "00000001", "0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_rfc2617_example_parsed_and_checked():
    scheme, p = digest.parse_credentials(MUFASA)
    assert scheme == "Digest"
    h1 = digest.ha1(p["username"], p["realm"], "Circle Of Life")
    assert digest.response(h1, p["nonce"], "GET", p["uri"], p["qop"], p["nc"],
                           p["cnonce"]) == p["response"]


def test_without_qop_rfc2069():
    h1 = digest.ha1("alice", "home", "pw")
    h2 = hashlib.md5(b"REGISTER:sip:home").hexdigest()
    want = hashlib.md5(f"{h1}:abc:{h2}".encode()).hexdigest()
    assert digest.response(h1, "abc", "REGISTER", "sip:home") == want


def test_ha1_upper_case_in_a_table_is_accepted():
    h1 = digest.ha1("alice", "home", "pw")
    assert digest.response(h1.upper(), "n", "REGISTER", "sip:home") == \
        digest.response(h1, "n", "REGISTER", "sip:home")


def test_ha1b_is_ha1_of_user_at_domain():
    assert digest.ha1("alice@home", "home", "pw") == \
        hashlib.md5(b"alice@home:home:pw").hexdigest()


def test_octet_strings_hash_as_their_octets():
    # the SIP layer gives latin-1 strings: "j\xc3\xb6rg" is the UTF-8 name "jörg"
    assert digest.ha1("j\xc3\xb6rg", "home", "pw") == digest.ha1("jörg".encode(), "home", "pw")


# --- parsing -------------------------------------------------------------------------------

def test_parse_values_quoted_and_not_names_lower_cased():
    scheme, p = digest.parse_credentials(
        'digest USERNAME="a\\"b\\\\c" , realm="r",nonce=xyz,  qop="auth",algorithm=MD5')
    assert scheme == "digest"
    assert p == {"username": 'a"b\\c', "realm": "r", "nonce": "xyz", "qop": "auth",
                 "algorithm": "MD5"}


def test_parse_commas_in_quotes_and_empty_elements():
    _, p = digest.parse_credentials('Digest uri="sip:a,b@h", , realm="x,y",')
    assert p == {"uri": "sip:a,b@h", "realm": "x,y"}


def test_parse_other_scheme_rfc4475_regaut01():
    assert digest.parse_credentials("NoOneKnowsThisScheme opaque-data=here") == \
        ("NoOneKnowsThisScheme", {"opaque-data": "here"})


def test_parse_scheme_alone():
    assert digest.parse_credentials("Digest") == ("Digest", {})


@pytest.mark.parametrize("value", [
    'Digest username="alice',              # unterminated
    'Digest username="a", username="b"',   # twice
    'Digest username',                     # no value
    'Digest username=',                    # empty value
    'Digest username="a" realm="r"',       # no comma
    'Digest =x',                           # no name
    'Digest user"name="a"',
    'Digest uri=sip:"x"',
    '"Digest" username="a"',               # scheme not a token
    '',
])
def test_parse_errors(value):
    with pytest.raises(ParseError) as e:
        digest.parse_credentials(value)
    assert e.value.status == 400


def test_parse_any_text_gives_params_or_parse_error():
    rng = random.Random(2617)
    alphabet = 'Digest usernam="\\,= \trealmq0a@'
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        try:
            scheme, params = digest.parse_credentials(text)
        except ParseError:
            continue
        assert isinstance(scheme, str) and isinstance(params, dict)


# --- challenges ----------------------------------------------------------------------------

def test_challenge_with_qop():
    assert digest.build_challenge("home", "n1") == \
        'Digest realm="home", nonce="n1", qop="auth", algorithm=MD5'


def test_challenge_without_qop_stale_and_quoting():
    value = digest.build_challenge('a"b\\c', "n1", qop=False, stale=True)
    assert value == 'Digest realm="a\\"b\\\\c", nonce="n1", algorithm=MD5, stale=true'
    _, p = digest.parse_credentials(value)      # same grammar both ways
    assert p["realm"] == 'a"b\\c' and p["stale"] == "true" and "qop" not in p


# --- nonces --------------------------------------------------------------------------------

def test_nonce_ok_until_expiry_then_stale():
    n = digest.make_nonce(1000, SECRET, b"\x01\x02\x03\x04\x05\x06")
    assert digest.check_nonce(n, 0, SECRET) == digest.NONCE_OK
    assert digest.check_nonce(n, 999.99, SECRET) == digest.NONCE_OK
    assert digest.check_nonce(n, 1000, SECRET) == digest.NONCE_STALE
    assert digest.check_nonce(n, 10 ** 6, SECRET) == digest.NONCE_STALE
    assert digest.nonce_expiry(n) == 1000


def test_nonces_differ_by_salt():
    a = digest.make_nonce(1000, SECRET, b"a" * 6)
    b = digest.make_nonce(1000, SECRET, b"b" * 6)
    assert a != b
    assert digest.check_nonce(a, 0, SECRET) == digest.check_nonce(b, 0, SECRET) == "ok"


def test_nonce_of_another_secret_is_bad():
    n = digest.make_nonce(1000, SECRET, b"salt12")
    assert digest.check_nonce(n, 0, b"another secret, as after a restart") == digest.NONCE_BAD


def test_tampered_nonces_are_bad():
    n = digest.make_nonce(1000, SECRET, b"salt12")
    later = "%08x" % 999999 + n[8:]                 # moved expiry
    assert digest.check_nonce(later, 0, SECRET) == digest.NONCE_BAD
    for i in range(len(n)):                         # any one hex digit changed
        c = "0" if n[i] != "0" else "1"
        assert digest.check_nonce(n[:i] + c + n[i + 1:], 0, SECRET) == digest.NONCE_BAD


def test_nonce_carries_whether_qop_was_offered():
    with_qop = digest.make_nonce(1000, SECRET, b"salt12", qop=True)
    without = digest.make_nonce(1000, SECRET, b"salt12")
    assert digest.nonce_offered_qop(with_qop) and not digest.nonce_offered_qop(without)
    assert digest.check_nonce(with_qop, 0, SECRET) == digest.check_nonce(without, 0, SECRET) \
        == digest.NONCE_OK
    # the flag is under the MAC: a client cannot turn an offered qop off
    cleared = with_qop[:8] + "0" + with_qop[9:]
    assert digest.check_nonce(cleared, 0, SECRET) == digest.NONCE_BAD


@pytest.mark.parametrize("nonce", ["", "abc", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                                   "Z" * 52, "0" * 52, "0" * 41, "x" * 200])
def test_garbage_nonces_are_bad(nonce):
    assert digest.check_nonce(nonce, 0, SECRET) == digest.NONCE_BAD


# --- nonce counts --------------------------------------------------------------------------

def test_nc_must_grow():
    c = digest.NonceCounts()
    assert c.check("n1", 1, 100, 0) == digest.COUNT_OK
    assert c.check("n1", 1, 100, 1) == digest.COUNT_REPLAY
    assert c.check("n1", 2, 100, 1) == digest.COUNT_OK
    assert c.check("n1", 2, 100, 1) == digest.COUNT_REPLAY
    assert c.check("n1", 1, 100, 1) == digest.COUNT_REPLAY
    assert c.check("n1", 7, 100, 1) == digest.COUNT_OK        # gaps are fine
    assert c.check("n2", 1, 100, 1) == digest.COUNT_OK        # another nonce: its own count


def test_expired_nonces_are_forgotten():
    c = digest.NonceCounts()
    for i in range(100):
        c.check(f"n{i}", 1, 10 + i, 0)
    assert len(c) == 100
    c.check("new", 1, 500, 60)          # pruning on insert drops those expired by t=60
    assert len(c) == 100 - 51 + 1
    c.forget_expired(1000)
    assert len(c) == 0


def test_bounded_memory_without_a_replay_window():
    c = digest.NonceCounts(capacity=100)
    for i in range(1000):               # a flood of fresh nonces, none expired
        assert c.check(f"n{i}", 1, 1000 + i, 0) == digest.COUNT_OK
        assert len(c) <= 100
    # the evicted ones cannot be replayed: they are answered "forgotten" (treated as stale)
    assert c.check("n0", 1, 1000, 1) == digest.COUNT_FORGOTTEN
    assert c.check("n0", 2, 1000, 1) == digest.COUNT_FORGOTTEN
    # the ones still tracked behave as before, and newer nonces are fine
    assert c.check("n999", 1, 1999, 1) == digest.COUNT_REPLAY
    assert c.check("fresh", 1, 5000, 1) == digest.COUNT_OK


def test_is_lhex():
    assert digest.is_lhex("0" * 32, 32)
    assert digest.is_lhex("ABCDEF01", 8)
    assert not digest.is_lhex("g" * 8, 8)
    assert not digest.is_lhex("0" * 7, 8)
