"""The status page's accounts: the list the server has (names, registered or not; never a
password or hash, every name escaped), and the warning when /etc/config/ser trusts the LAN
(option trust_lan), read by the CGI without the generator."""

import io
import time

import pytest

from serlite import webui
from serlite.control import page

from .pagetools import Page

NOW = 1_800_000_000.0


def running_status():
    st = page.Status("/cgi-bin/ser", NOW)
    st.running = True
    st.stats = {"uptime": 5, "started": NOW}
    return st


def test_accounts_are_listed_registered_or_not_and_escaped():
    st = running_status()
    st.accounts = [{"user": "101", "domain": "serlite", "table": "subscriber", "registered": 0},
                   {"user": "100", "domain": "serlite", "table": "subscriber", "registered": 2},
                   {"user": "<b>x", "domain": "serlite", "table": "subscriber", "registered": 1}]
    html = page.render(st, time.gmtime)
    rows = Page(html).rows("accounts")
    assert [(r["User"], r["State"]) for r in rows] == [
        ("100", "registered (2)"), ("101", "not registered"), ("<b>x", "registered")]
    assert "<b>x" not in html and "&lt;b&gt;x" in html
    assert 'id="trust-lan"' not in html


def test_no_accounts_says_how_to_add_one_and_no_auth_db_no_section():
    st = running_status()
    st.accounts = []
    html = page.render(st, time.gmtime)
    assert 'id="accounts-empty"' in html and "ser-ctl user add 100 PASSWORD" in html
    st.accounts = None              # a server without auth_db: nothing to list
    assert "Accounts" not in page.render(st, time.gmtime)


@pytest.mark.parametrize("text, trusted", [
    ("config ser 'main'\n\toption trust_lan '1'\n", True),
    ("config ser 'main'\n\toption trust_lan 'yes'  # the house\n", True),
    ("config ser 'main'\n\toption trust_lan '0'\n", False),
    ("config ser 'main'\n\toption enabled '1'\n", False),
    ("config ser 'other'\n\toption trust_lan '1'\n", False),
    ("config ser 'main'\n\toption trust_lan '1'\nconfig user\n\toption trust_lan '0'\n", True),
    # the expert's own ser.cfg: the option does not reach it
    ("config ser 'main'\n\toption trust_lan '1'\n\toption config '/etc/ser/ser.cfg'\n", False),
    ("config ser 'main'\n\toption trust_lan '1\n", False),       # unreadable line: ignored
])
def test_trust_lan_is_read_from_the_uci_file(tmp_path, text, trusted):
    path = tmp_path / "ser"
    path.write_text(text)
    assert webui.trust_lan(str(path)) is trusted
    assert webui.trust_lan(str(tmp_path / "missing")) is False


def test_the_page_warns_when_the_lan_is_trusted(tmp_path):
    uci = tmp_path / "ser"
    uci.write_text("config ser 'main'\n\toption trust_lan '1'\n")
    env = {"SER_WEBUI_CONF": str(tmp_path / "none.conf"),
           "SER_UNIX_SOCK": str(tmp_path / "nobody.sock"), "SER_UCI": str(uci),
           "SER_WEBUI_SECRET": str(tmp_path / "secret"), "SER_WEBUI_UBUS": "",
           "SCRIPT_NAME": "/cgi-bin/ser", "HTTP_HOST": "router", "REQUEST_METHOD": "GET",
           "QUERY_STRING": ""}
    out = io.BytesIO()
    assert webui.main(env, io.BytesIO(b""), out) == 0
    html = out.getvalue().partition(b"\r\n\r\n")[2].decode()
    assert 'id="trust-lan"' in html and "without a password" in html
    uci.write_text("config ser 'main'\n\toption trust_lan '0'\n")
    out = io.BytesIO()
    webui.main(env, io.BytesIO(b""), out)
    assert 'id="trust-lan"' not in out.getvalue().decode()
