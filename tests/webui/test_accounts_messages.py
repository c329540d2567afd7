"""The status page's accounts: how many MESSAGEs msilo keeps for an account whose phone is
off (the ``messages`` of the ``accounts`` rows)."""

import time

from serlite.control import page

from .pagetools import Page

NOW = 1_800_000_000.0


def test_messages_waiting_are_shown_beside_the_state():
    st = page.Status("/cgi-bin/ser", NOW)
    st.running = True
    st.stats = {"uptime": 5, "started": NOW}
    st.accounts = [{"user": "100", "registered": 0, "messages": 2},
                   {"user": "101", "registered": 1, "messages": 0},
                   {"user": "102", "registered": 0, "messages": 1},
                   {"user": "103", "registered": 1}]        # a server without msilo
    rows = Page(page.render(st, time.gmtime)).rows("accounts")
    assert [(r["User"], r["State"]) for r in rows] == [
        ("100", "not registered 2 messages waiting"), ("101", "registered"),
        ("102", "not registered 1 message waiting"), ("103", "registered")]
