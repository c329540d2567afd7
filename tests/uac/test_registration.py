"""The outbound registration state machine (serlite.uac.registration), on a fake clock: what
it sends, when, and what each answer of the provider does."""

from serlite.sip import digest
from serlite.sip.message import parse
from serlite.uac.registration import (RETRY_FIRST, RETRY_MAX, Record, Registration)

REALM = "voip.example"


def record(**kw):
    fields = dict(id=1, l_uuid="house1", l_username="100", l_domain="home.lan",
                  r_username="4930123", r_domain=REALM, realm="", auth_username="4930123",
                  auth_password="secret", auth_ha1="", auth_proxy="", expires=600, flags=0,
                  reg_delay=0, contact_addr="", socket="")
    fields.update(kw)
    return Record(**fields)


def reg(now=100.0, **kw):
    opts = {k: kw.pop(k) for k in ("retry_interval", "timer_interval") if k in kw}
    return Registration(record(**kw), "cid@serlite", "ftag", "192.0.2.1:5060", now,
                        cnonce=lambda: "c0ffee", **opts)


def sent_request(actions):
    """The one REGISTER of ``actions``, parsed (a Via added, as tm does)."""
    (kind, ruri, rest), = actions
    assert kind == "send"
    return parse(f"REGISTER {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\n"
                 .encode() + rest)


def answer(req, status, reason, *headers):
    lines = [f"SIP/2.0 {status} {reason}", f"Via: {req.get('Via')}", f"From: {req.get('From')}",
             f"To: {req.get('To')};tag=prov", f"Call-ID: {req.call_id}",
             f"CSeq: {req.get('CSeq')}", *headers, "Content-Length: 0"]
    return parse(("\r\n".join(lines) + "\r\n\r\n").encode())


def register(r, now):
    """Due -> REGISTER -> 401 -> REGISTER with credentials -> 200 (contact expires 600)."""
    req = sent_request(r.timer(now))
    assert req.get("Authorization") is None
    chal = answer(req, 401, "Unauthorized",
                  f'WWW-Authenticate: Digest realm="{REALM}", nonce="n1", qop="auth"')
    req2 = sent_request(r.response(now, 401, "Unauthorized", chal))
    ok = answer(req2, 200, "OK", f"Contact: <sip:house1@192.0.2.1:5060>;expires=600")
    assert r.response(now, 200, "OK", ok) == []
    return req, req2


def test_first_register_after_reg_delay_then_digest_then_registered():
    r = reg(reg_delay=3)
    assert r.state == "waiting" and r.due == 103.0
    assert r.timer(102.0) == []
    req, req2 = register(r, 103.0)
    assert str(req.ruri) == f"sip:{REALM}"
    assert "sip:house1@192.0.2.1:5060" in req.get("Contact")
    assert req.get("Expires") == "600"
    assert req.cseq.number == 1 and req2.cseq.number == 2 and req2.call_id == req.call_id
    scheme, params = digest.parse_credentials(req2.get("Authorization"))
    ha1 = digest.ha1("4930123", REALM, "secret")
    assert params["response"] == digest.response(ha1, "n1", "REGISTER", f"sip:{REALM}",
                                                 "auth", params["nc"], params["cnonce"])
    assert r.state == "registered" and r.registered
    # refreshed before it expires: 90 s before (reg_timer_interval), not later than half
    assert r.due == 103.0 + 600 - 90
    assert r.row(200.0)["expires_in"] == 503


def test_refresh_of_a_short_interval_at_half():
    r = reg(expires=20)
    req = sent_request(r.timer(100.0))
    ok = answer(req, 200, "OK", "Contact: <sip:house1@192.0.2.1:5060>", "Expires: 20")
    r.response(100.0, 200, "OK", ok)
    assert r.due == 110.0
    again = sent_request(r.timer(110.0))
    assert again.cseq.number == 2 and again.call_id == req.call_id


def test_wrong_password_fails_and_is_not_sent_again():
    r = reg()
    req = sent_request(r.timer(100.0))
    chal = f'WWW-Authenticate: Digest realm="{REALM}", nonce="n1"'
    req2 = sent_request(r.response(100.0, 401, "Unauthorized", answer(req, 401, "U", chal)))
    assert r.response(100.0, 401, "Unauthorized", answer(req2, 401, "U", chal)) == []
    assert r.state == "failed" and r.due is None and not r.registered
    assert "wrong" in r.last_reason
    assert r.timer(10_000.0) == []


def test_stale_nonce_is_answered_again():
    r = reg()
    req = sent_request(r.timer(100.0))
    chal = f'WWW-Authenticate: Digest realm="{REALM}", nonce="n1"'
    req2 = sent_request(r.response(100.0, 401, "U", answer(req, 401, "U", chal)))
    stale = f'WWW-Authenticate: Digest realm="{REALM}", nonce="n2", stale=true'
    req3 = sent_request(r.response(100.0, 401, "U", answer(req2, 401, "U", stale)))
    assert 'nonce="n2"' in req3.get("Authorization")


def test_403_stops_unless_reg_retry_interval():
    r = reg()
    req = sent_request(r.timer(100.0))
    r.response(100.0, 403, "Forbidden", answer(req, 403, "Forbidden"))
    assert r.state == "failed" and r.due is None
    r = reg(retry_interval=60)
    req = sent_request(r.timer(100.0))
    r.response(100.0, 403, "Forbidden", answer(req, 403, "Forbidden"))
    assert r.state == "failed" and r.due == 160.0
    req = sent_request(r.timer(160.0))
    r.response(160.0, 403, "Forbidden", answer(req, 403, "Forbidden"))
    assert r.due == 160.0 + 120     # doubled


def test_423_takes_min_expires():
    r = reg(expires=30)
    req = sent_request(r.timer(100.0))
    again = sent_request(r.response(100.0, 423, "Interval Too Brief",
                                    answer(req, 423, "Interval Too Brief", "Min-Expires: 120")))
    assert again.get("Expires") == "120" and again.cseq.number == 2
    # a Min-Expires that asks for no more than we did is no answer: failed, not a loop
    r2 = reg(expires=300)
    req = sent_request(r2.timer(100.0))
    assert r2.response(100.0, 423, "I", answer(req, 423, "I", "Min-Expires: 60")) == []
    assert r2.state == "failed"


def test_timeouts_back_off_up_to_the_cap():
    r = reg()
    now = 100.0
    waits = []
    for _ in range(10):
        sent_request(r.timer(now))
        assert r.response(now, 408, "Request Timeout") == []
        assert r.state == "waiting"
        waits.append(r.due - now)
        now = r.due
    assert waits[:3] == [RETRY_FIRST, RETRY_FIRST * 2, RETRY_FIRST * 4]
    assert max(waits) == RETRY_MAX
    # an answer at last: registered, the back-off forgotten
    req = sent_request(r.timer(now))
    r.response(now, 200, "OK", answer(req, 200, "OK", "Contact: <sip:house1@192.0.2.1:5060>"))
    assert r.state == "registered" and r.retry_in == 0


def test_200_without_our_contact_is_not_registered():
    r = reg()
    req = sent_request(r.timer(100.0))
    r.response(100.0, 200, "OK", answer(req, 200, "OK", "Contact: <sip:other@192.0.2.9>"))
    assert r.state == "failed" and not r.registered


def test_address_change_registers_again_at_once_with_the_new_contact():
    r = reg()
    register(r, 100.0)
    req = sent_request(r.address_changed(150.0, "198.51.100.7:5060"))
    assert "sip:house1@198.51.100.7:5060" in req.get("Contact")


def test_disabled_record_sends_nothing():
    r = reg(flags=1)
    assert r.state == "disabled" and r.due is None and r.timer(1e9) == []


def test_row_never_shows_the_password():
    r = reg(auth_ha1="0123456789abcdef0123456789abcdef")
    row = r.row(100.0)
    assert "secret" not in repr(row) and "0123456789abcdef" not in repr(row)


def test_unresolvable_or_unavailable_provider_backs_off_like_a_timeout():
    for status in (478, 503):
        r = reg()
        sent_request(r.timer(100.0))
        assert r.response(100.0, status, "x") == []
        assert r.state == "waiting" and r.due == 100.0 + RETRY_FIRST


def test_reg_retry_interval_sets_the_first_back_off():
    r = reg(retry_interval=5)
    sent_request(r.timer(100.0))
    r.response(100.0, 408, "Request Timeout")
    assert r.due == 105.0


def test_address_change_while_registering_supersedes_the_register_out():
    r = reg()
    first = sent_request(r.timer(100.0))
    again = sent_request(r.address_changed(100.5, "198.51.100.7:5060"))
    assert again.cseq.number == first.cseq.number + 1
    ok = answer(again, 200, "OK", "Contact: <sip:house1@198.51.100.7:5060>;expires=600")
    r.response(101.0, 200, "OK", ok)
    assert r.state == "registered"


def test_a_failed_registration_stays_failed_on_an_address_change():
    r = reg()
    req = sent_request(r.timer(100.0))
    r.response(100.0, 403, "Forbidden", answer(req, 403, "Forbidden"))
    assert r.address_changed(200.0, "198.51.100.7:5060") == []
