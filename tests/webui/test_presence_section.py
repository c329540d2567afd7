"""The status page's presence section: each account's presence, whether it is on the phone,
its watchers, and the subscriptions in all (the ``presence`` control command's answer)."""

import time

from serlite.control import page

from .pagetools import Page

NOW = 1_800_000_000.0


def running_status():
    st = page.Status("/cgi-bin/ser", NOW)
    st.running = True
    st.stats = {"uptime": 5, "started": NOW}
    return st


def test_presence_rows_phone_state_and_the_subscription_count():
    st = running_status()
    st.presence = {"presentities": [
        {"user": "100", "presence": "open", "dialog": "confirmed", "watchers": 2},
        {"user": "101", "presence": "unknown", "dialog": None, "watchers": 0},
        {"user": "<i>x", "presence": "closed", "dialog": "early", "watchers": 1}],
        "subscriptions": 3, "publications": 2, "notifies": 9}
    html = page.render(st, time.gmtime)
    rows = Page(html).rows("presence")
    assert [(r["User"], r["Presence"], r["Phone"], r["Watchers"]) for r in rows] == [
        ("100", "open", "on the phone", "2"), ("101", "unknown", "-", "0"),
        ("<i>x", "closed", "ringing", "1")]
    assert "<i>x" not in html
    assert 'id="subscriptions">3<' in html and "3 active subscriptions" in html


def test_no_presence_module_no_section():
    st = running_status()
    assert "Presence" not in page.render(st, time.gmtime)
    st.presence = {"presentities": [], "subscriptions": 0}
    assert 'id="presence-empty"' in page.render(st, time.gmtime)
