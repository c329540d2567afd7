"""The status page's Provider section (uac's ``uac.reg_dump`` answer), rendered purely: each
provider account with its state, the provider's last answer and the time left; a failed one
(a wrong password) stands out; text from the table is escaped."""

import time

from serlite.control import page

NOW = 1_800_000_000.0


def row(**kw):
    r = {"l_uuid": "house1", "l_username": "100", "l_domain": "home.lan",
         "r_username": "4930123", "r_domain": "voip.example", "realm": "", "auth_username":
         "4930123", "auth_proxy": "", "expires": 600, "state": "registered", "registered": True,
         "expires_in": 540, "last_status": 200, "last_reason": "OK", "sent": 2, "next_in": 450,
         "contact": "sip:house1@192.0.2.1:5060"}
    r.update(kw)
    return r


def render(registrations):
    st = page.Status("/cgi-bin/ser", NOW)
    st.running = True
    st.stats = {"uptime": 5, "started": NOW}
    st.registrations = registrations
    return page.render(st, time.localtime)


def test_registered_and_failed_accounts_are_shown():
    html = render([row(), row(l_uuid="house2", r_username="<b>x</b>", state="failed",
                              registered=False, expires_in=0, last_status=401,
                              last_reason="credentials refused (wrong user or password?)")])
    section = html[html.index('id="registrations"'):]
    assert "4930123@voip.example" in section and "200 OK" in section
    assert '<span class="tag bad">failed</span>' in section
    assert "401 credentials refused (wrong user or password?)" in section
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in section


def test_no_section_without_registrations():
    assert 'id="registrations"' not in render(None)
    assert 'id="registrations"' not in render([])
