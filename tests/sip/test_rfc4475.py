"""RFC 4475 "SIP Torture Test Messages", driven by tests/data/rfc4475/INDEX.tsv.

valid     -- parses, and the fields a proxy reads come out right;
invalid   -- ParseError with the status to answer (505 for badvers, 400 otherwise), raised by
             parse() itself: none of them may reach routing;
semantic  -- parses (or is refused, where the RFC says 400), with the point of the test asserted.
"""

from pathlib import Path

import pytest

from serlite.sip.errors import ParseError
from serlite.sip.message import Request, Response, parse
from serlite.sip.uri import unescape

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"


def _index():
    rows = []
    for line in (DATA / "INDEX.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, section, kind, what = line.split("\t")
            rows.append((name, kind))
    return rows


INDEX = _index()
KINDS = dict(INDEX)


def load(name):
    return (DATA / name).read_bytes()


def msg(name):
    return parse(load(name))


# Every invalid message, with the status a request is answered with (a response is dropped).
INVALID = {
    "badinv01.dat": 400, "clerr.dat": 400, "ncl.dat": 400, "scalar02.dat": 400,
    "scalarlg.dat": 400, "quotbal.dat": 400, "ltgtruri.dat": 400, "lwsruri.dat": 400,
    "lwsstart.dat": 400, "trws.dat": 400, "escruri.dat": 400, "baddate.dat": 400,
    "regbadct.dat": 400, "badaspec.dat": 400, "baddn.dat": 400, "badvers.dat": 505,
    "mismatch01.dat": 400, "mismatch02.dat": 400, "bigcode.dat": 400,
}
# Semantic tests whose expected reaction is a 400: refused by parse() as well.
SEMANTIC_REFUSED = {"insuf.dat": 400, "multi01.dat": 400, "mcl01.dat": 400}


def test_index_lists_all_49_messages_and_the_tables_match_it():
    assert len(INDEX) == 49
    assert sorted(p.name for p in DATA.glob("*.dat")) == sorted(KINDS)
    assert set(INVALID) == {n for n, k in INDEX if k == "invalid"}
    assert set(SEMANTIC_REFUSED) <= {n for n, k in INDEX if k == "semantic"}


@pytest.mark.parametrize("name", [n for n, k in INDEX if k == "valid"])
def test_valid_message_parses_and_reads(name):
    m = msg(name)
    assert m.call_id and m.from_ is not None and m.to is not None
    assert m.top_via is m.vias[0]
    assert m.from_.tag
    m.contacts  # noqa: B018 -- reading must not raise
    if isinstance(m, Request):
        assert m.cseq.method == m.method
        assert m.max_forwards is None or 0 <= m.max_forwards <= 255
    else:
        assert 100 <= m.status <= 699


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_message_is_refused_by_parse(name):
    with pytest.raises(ParseError) as err:
        parse(load(name))
    assert err.value.status == INVALID[name]


@pytest.mark.parametrize("name", sorted(SEMANTIC_REFUSED))
def test_semantic_message_answered_400_is_refused_by_parse(name):
    with pytest.raises(ParseError) as err:
        parse(load(name))
    assert err.value.status == SEMANTIC_REFUSED[name]


@pytest.mark.parametrize("name", [n for n, k in INDEX
                                  if k == "semantic" and n not in SEMANTIC_REFUSED])
def test_semantic_message_parses(name):
    m = msg(name)
    assert m.call_id and m.cseq is not None and m.top_via is not None


# -- 3.1.1 valid messages, explicit expectations -------------------------------------------------

def test_wsinv_folding_short_forms_and_odd_lws():
    m = msg("wsinv.dat")
    assert m.method == "INVITE"
    assert m.to.tag == "1918181833n"
    assert m.from_.display == '"J Rosenberg \\\\\\""'
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert (m.cseq.number, m.cseq.method) == (9, "INVITE")
    assert [v.transport for v in m.vias] == ["UDP", "TCP", "UDP"]
    assert [v.host for v in m.vias] == ["192.0.2.2", "spindle.example.com", "192.168.255.111"]
    assert [v.branch for v in m.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert m.vias[1].protocol == "SIP/2.0/TCP"
    (contact,) = m.contacts
    assert contact.display == '"Quoted string \\"\\""'
    assert contact.params == [("newparam", "newvalue"), ("secondparam", None), ("q", "0.33")]
    assert contact.q == 0.33
    assert m.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert m.get("Subject") == ""
    (route,) = m.routes
    assert route.uri.lr and route.uri.param("unknownwith") == "value"
    assert len(m.body) == 150


def test_intmeth_unusual_token_characters():
    m = msg("intmeth.dat")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.method == method and m.cseq.method == method
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.uri.host == "example.com"
    assert m.to.display == '"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"'
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert m.get("extensionHeader-!.%*+_`'~").encode("latin-1").decode("utf-8") \
        == "\ufeff大停電"


def test_esc01_escaped_user_parts():
    m = msg("esc01.dat")
    assert m.uri.user == "sips%3Auser%40example.com"
    assert unescape(m.uri.user) == "sips:user@example.com"
    assert m.uri.host == "example.net"
    assert m.to.uri.equals("sip:user@example.com")
    assert unescape(m.from_.uri.user) == "I have spaces"
    (contact,) = m.contacts
    assert contact.uri.params == [("%6C%72", None), ("n%61me", "v%61lue%25%34%31")]
    assert contact.uri.lr  # %6C%72 is "lr"
    assert contact.uri.param("name") == "v%61lue%25%34%31"
    assert unescape(contact.uri.param("name")) == "value%41"


def test_escnull_does_not_truncate():
    m = msg("escnull.dat")
    assert m.to.uri.user == "null-%00-null"
    assert unescape(m.to.uri.user) == "null-\x00-null"
    assert [unescape(c.uri.user) for c in m.contacts] == ["\x00", "\x00\x00"]


def test_esc02_percent_in_method_is_not_an_escape():
    m = msg("esc02.dat")
    assert m.method == "RE%47IST%45R" and m.method != "REGISTER"
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"
    assert [c.uri.host for c in m.contacts] == ["host1.example.com", "host3.example.com"]
    assert m.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_display_name_without_lws():
    m = msg("lwsdisp.dat")
    assert m.from_.display == "caller"
    assert str(m.from_.uri) == "sip:caller@example.com"


def test_longreq_long_values_intact():
    m = msg("longreq.dat")
    assert len(m.vias) == 34
    assert [v.host for v in m.vias[:3]] == ["sip33.example.com", "sip32.example.com",
                                             "sip31.example.com"]
    last = m.vias[-1]
    assert last.received == "192.0.2.5"
    assert last.branch == "verylong" + "long" * 49 + "branchvalue"
    assert m.to.display == ('"I have a user name of ' + "extreme" * 10 + ' proportion"')
    assert m.to.uri.port == 6000
    assert m.to.uri.param("unknownparam1") == "verylong" + "long" * 19 + "value"
    assert m.to.uri.has_param("verylong" + "long" * 24 + "ParameterNameWithNoValue")
    assert m.from_.tag == "1" + "298" * 50 + "2424"
    assert m.from_.has_param("unknownValueless" + "paramname" * 10)
    assert m.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert m.contacts[0].uri.user == "amazinglylongcallername" * 5
    assert len(m.body) == 150


def test_dblreq_only_the_first_register():
    data = load("dblreq.dat")
    m = parse(data)
    assert m.method == "REGISTER" and m.call_id.startswith("dblreq.0ha0isndaksdj99")
    assert m.body == b""
    first = data[:data.index(b"\r\n\r\n") + 4]
    assert m.to_bytes() == first


def test_semiuri_semicolon_in_user_part():
    m = msg("semiuri.dat")
    assert m.uri.user == "user;par=u%40example.net"
    assert m.uri.host == "example.com" and m.uri.params == []
    assert m.values("Accept") == ["application/sdp", "application/pkcs7-mime",
                                  "multipart/mixed", "multipart/signed", "message/sip",
                                  "message/sipfrag"]


def test_transports_unknown_transport_kept():
    m = msg("transports.dat")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_binary_body_counted_in_bytes():
    m = msg("mpart01.dat")
    assert len(m.body) == 553 == m.content_length
    assert m.body.startswith(b"--7a9cbec02ceef655\r\n")
    assert m.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert m.top_via.rport == ""


def test_unreason_utf8_reason_phrase():
    m = msg("unreason.dat")
    assert isinstance(m, Response) and m.status == 200
    assert m.reason.encode("latin-1").decode("utf-8").startswith("= 2**3 * 5**2 но сто")


def test_noreason_empty_reason_phrase():
    m = msg("noreason.dat")
    assert (m.status, m.reason) == (100, "")


# -- 3.2 / 3.3 / 3.4 semantic tests ---------------------------------------------------------------

def test_badbranch_cookie_only_means_rfc2543_matching():
    v = msg("badbranch.dat").top_via
    assert v.branch == "z9hG4bK" and not v.rfc3261


def test_insuf_missing_headers():
    with pytest.raises(ParseError, match="Missing header"):
        parse(load("insuf.dat"))


@pytest.mark.parametrize("name", ["unkscm.dat", "novelsc.dat"])
def test_unknown_request_uri_scheme_is_416_when_routed(name):
    m = msg(name)
    with pytest.raises(ParseError) as err:
        m.uri  # noqa: B018
    assert err.value.status == 416


def test_unksm2_unknown_schemes_in_header_fields():
    m = msg("unksm2.dat")
    assert m.to.uri_text == "isbn:2983792873" and not m.to.bracketed
    assert m.from_.uri_text == "http://www.example.com" and m.from_.tag == "3234233"
    assert m.contacts[0].uri_text == "name:John_Smith"
    with pytest.raises(ParseError) as err:
        m.from_.uri  # noqa: B018
    assert err.value.status == 416


def test_bext01_require_values():
    m = msg("bext01.dat")
    assert m.values("Proxy-Require") == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    assert m.values("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.top_via.transport == "TLS"


def test_invut_unknown_content_type():
    m = msg("invut.dat")
    assert m.get("Content-Type") == "application/unknownformat" and len(m.body) == 40


def test_regaut01_unknown_authorization_scheme():
    assert msg("regaut01.dat").get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


def test_multi01_and_mcl01_are_400():
    for name in ("multi01.dat", "mcl01.dat"):
        with pytest.raises(ParseError, match="Multiple") as err:
            parse(load(name))
        assert err.value.status == 400


def test_bcast_parses():
    m = msg("bcast.dat")
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]


def test_zeromf():
    assert msg("zeromf.dat").max_forwards == 0


def test_cparam01_parameter_belongs_to_the_header():
    (c,) = msg("cparam01.dat").contacts
    assert not c.bracketed
    assert c.params == [("unknownparam", None)]
    assert c.uri.params == [] and str(c.uri) == "sip:+19725552222@gw1.example.net"


def test_cparam02_parameter_belongs_to_the_uri():
    (c,) = msg("cparam02.dat").contacts
    assert c.bracketed and c.params == []
    assert c.uri.params == [("unknownparam", None)]


def test_regescrt_escaped_header_in_contact_kept_unchanged():
    (c,) = msg("regescrt.dat").contacts
    assert c.uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert str(c) == "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>"
    assert str(c.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_sdp01_accept():
    assert msg("sdp01.dat").values("Accept") == ["text/nobodyKnowsThis"]


def test_inv2543_rfc2543_syntax():
    m = msg("inv2543.dat")
    assert m.top_via.branch is None and not m.top_via.rfc3261
    assert m.to.params == [("user", "phone")]  # unbracketed: a header parameter
    assert m.from_.uri.param("user") == "phone" and m.from_.tag is None
    assert m.record_routes[0].uri.maddr == "ss1.example.com"
    assert m.max_forwards is None
    assert not m.has("Content-Length") and len(m.body) == m.content_length == 105


# -- checks done lazily, by the accessor the registrar reads ----------------------------------

def test_scalar02_overlarge_expires_refused_by_the_accessors():
    # scalar02 with its CSeq and Max-Forwards made valid: Expires and the Contact's expires
    # parameter are still overlarge, and are refused when the registrar reads them.
    data = load("scalar02.dat").replace(b"CSeq: 36893488147419103232", b"CSeq: 3") \
                               .replace(b"Max-Forwards: 300", b"Max-Forwards: 70")
    m = parse(data)
    with pytest.raises(ParseError) as err:
        m.expires  # noqa: B018
    assert err.value.status == 400
    with pytest.raises(ParseError):
        m.contacts[0].expires  # noqa: B018
