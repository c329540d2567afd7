"""The status page's Banned section and account alarms (secfilter's ``bans`` answer), rendered
purely, and the CGI's Lift action in-process: its address is checked with ipaddress before it
goes to the control socket, and it is refused without the login, origin and token every action
needs.  tests/webui/test_bans_page.py lifts a ban for real through busybox httpd."""

import time

import pytest

from serlite import webui
from serlite.control import page

from .pagetools import Page
from .test_webui import cgi, token_for  # noqa: F401  (the in-process CGI fixture)

NOW = 1_800_000_000.0
BANS = {"bans": [
    {"address": "203.0.113.5", "reason": "failed logins", "failures": 5, "user": "100",
     "since": NOW - 60, "expires_in": 840, "offences": 1, "dropped": 12},
    {"address": "2001:db8::66", "reason": "failed logins", "failures": 7,
     "user": "<script>x</script>", "since": NOW - 10, "expires_in": 3590, "offences": 3},
    {"address": "198.51.100.9", "reason": "manual", "failures": 0, "user": "",
     "since": NOW - 5, "expires_in": 55, "offences": 1}],
    "alarms": [{"account": "100", "sources": 4, "failures": 17, "since": NOW - 600,
                "last": NOW - 30}],
    "trusted": ["192.168.1.10", "10.0.0.0/8"]}


def running_status(bans, token="1-abc"):
    st = page.Status("/cgi-bin/ser", NOW)
    st.running = True
    st.stats = {"uptime": 5, "started": NOW}
    st.bans = bans
    st.token = token
    return st


def lift_forms(p):
    """[(address, token, disabled)] of the Lift buttons, in the table's order."""
    out = []
    for form in p.root.by_id("bans").find_all("form"):
        button = form.find("button")
        assert (form.attrs["method"], form.attrs["action"]) == ("post", "/cgi-bin/ser")
        assert (button.attrs["name"], button.attrs["value"]) == ("action", "lift")
        fields = {i.attrs["name"]: i.attrs.get("value") for i in form.find_all("input")}
        out.append((fields.get("address"), fields.get("token"), "disabled" in button.attrs))
    return out


def test_bans_are_listed_longest_first_with_a_lift_button_each():
    html = page.render(running_status(BANS), time.gmtime)
    p = Page(html)
    rows = p.rows("bans")
    assert [(r["Address"], r["Reason"], r["Failures"], r["Last user"], r["Time left"],
             r["Offences"], r["Dropped"]) for r in rows] == [
        ("2001:db8::66", "failed logins", "7", "<script>x</script>", "59 min 50 s", "3", "—"),
        ("203.0.113.5", "failed logins", "5", "100", "14 min 0 s", "1", "12"),
        ("198.51.100.9", "manual", "0", "—", "55 s", "1", "—")]
    assert lift_forms(p) == [("2001:db8::66", "1-abc", False), ("203.0.113.5", "1-abc", False),
                             ("198.51.100.9", "1-abc", False)]
    assert "<script>x" not in html and not p.root.find_all("script")
    assert p.root.by_id("banned").find("h2").text.split() == ["Banned", "3"]
    assert p.card("trusted") == "Never banned: 192.168.1.10, 10.0.0.0/8"


def test_the_account_alarm_is_a_warning_above_the_cards():
    html = page.render(running_status(BANS), time.gmtime)
    alarm = Page(html).card("ban-alarms")
    assert alarm.startswith("Account 100 is being guessed from 4 addresses (17 failed logins, "
                            "last at 01-15 07:59)")
    assert "stays open" in alarm
    assert html.index('id="ban-alarms"') < html.index('class="cards"') < html.index('id="bans"')


def test_without_a_token_the_lift_buttons_are_off_and_say_why():
    st = running_status(BANS, token=None)
    st.actions_note = "Restart and Reload need a login"
    p = Page(page.render(st, time.gmtime))
    assert [d for _, token, d in lift_forms(p) if token is None] == [True, True, True]
    assert all(b.attrs.get("title") == "Restart and Reload need a login"
               for b in p.root.by_id("bans").find_all("button"))


def test_no_ban_no_alarm_and_no_secfilter_no_section():
    p = Page(page.render(running_status({"bans": [], "alarms": [], "trusted": []}),
                         time.gmtime))
    assert "No address is banned" in p.card("bans-empty")
    assert p.root.by_id("ban-alarms") is None and p.root.by_id("trusted") is None
    html = page.render(running_status(None), time.gmtime)
    assert 'id="banned"' not in html and "Banned" not in html and 'id="ban-alarms"' not in html


@pytest.mark.parametrize("text, address", [
    ("203.0.113.5", "203.0.113.5"), (" 203.0.113.5 ", "203.0.113.5"),
    ("2001:db8::66", "2001:db8::66"), ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
    ("", None), (None, None), ("203.0.113.0/24", None), ("203.0.113.5; reboot", None),
    ("host.example", None), ("1.2.3.4.5", None), ("1" * 100, None), ("fe80::1%eth0", None),
])
def test_only_an_ip_address_is_lifted(text, address):
    assert webui.ban_address(text) == address


def test_lift_needs_login_origin_token_and_an_address(cgi):  # noqa: F811
    token = token_for(cgi)
    form = f"action=lift&address=203.0.113.5&token={token}".encode()
    assert cgi("POST", body=form, REMOTE_USER=None)[0] == 403
    assert cgi("POST", body=form, HTTP_ORIGIN="http://evil")[0] == 403
    assert cgi("POST", body=b"action=lift&address=203.0.113.5")[0] == 403
    assert cgi("GET", query="action=lift&address=203.0.113.5")[0] == 200    # GET changes nothing
    for bad in (b"", b"&address=", b"&address=203.0.113.5%0Aban_del", b"&address=evil.example"):
        status, _, html = cgi("POST", body=f"action=lift&token={token}".encode() + bad)
        assert status == 400 and "IP address" in html, bad
    # in order: it reaches the control socket, where nothing listens
    status, _, html = cgi("POST", body=form)
    assert status == 503 and "Cannot lift the ban" in html


@pytest.mark.parametrize("query, notice", [
    ("done=lift&address=203.0.113.5", "Ban on 203.0.113.5 lifted."),
    ("done=lift&address=203.0.113.5&gone=1",
     "203.0.113.5 was not banned any more (its ban had ended)."),
    ("done=lift&address=%3Cb%3E", "Ban lifted."),          # not an address: not repeated
])
def test_the_notice_after_a_lift_names_the_address(cgi, query, notice):  # noqa: F811
    status, _, html = cgi("GET", query=query)
    assert status == 200 and Page(html).notice() == notice


def test_a_flood_of_bans_lists_the_longest_and_counts_the_rest():
    many = [{"address": f"10.0.{i >> 8}.{i & 255}", "reason": "failed logins", "failures": 5,
             "user": "100", "since": NOW, "expires_in": 1000 + i, "offences": 1}
            for i in range(4096)]
    html = page.render(running_status({"bans": many, "alarms": [], "trusted": []}),
                       time.gmtime)
    p = Page(html)
    rows = p.rows("bans")
    assert len(rows) == page.MAX_BAN_ROWS and rows[0]["Address"] == "10.0.15.255"
    assert p.root.by_id("banned").find("h2").text.split() == ["Banned", "4096"]
    assert p.card("bans-more") == (f"and {4096 - page.MAX_BAN_ROWS} more, ending sooner: "
                                   f"ser-ctl ban list shows them all")
    assert len(html) < 150_000
