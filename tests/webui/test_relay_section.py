"""The status page's media relay, rendered purely: per active call whether its media is
relayed or direct, packets and bytes from each side, a silent side marked; the relay's card
(calls and ports in use, what it relayed and refused) and its warning when nearly full.
tests/webui/test_relay_page.py shows a real relayed call through busybox httpd."""

import time

from serlite.control import page

from .pagetools import Page

NOW = 1_800_000_000.0
TOTALS = {"sessions": 1, "max_sessions": 100, "ports_used": 4, "ports": 100,
          "port_min": 16384, "port_max": 16483, "packets": 1234, "bytes": 212000,
          "opened": 3, "refused": 0, "timeouts": 1, "one_way": 2, "dropped": 0,
          "nearly_full": False}
RELAYED = {"call_id": "c1", "age": 30, "silent": 0.1, "answered": True,
           "from_caller": {"packets": 700, "bytes": 120400, "silent": False},
           "from_callee": {"packets": 0, "bytes": 0, "silent": True}, "streams": []}


def status(calls, relay):
    st = page.Status("/cgi-bin/ser", NOW)
    st.running = True
    st.stats = {"uptime": 5, "started": NOW}
    st.calls = calls
    st.relay = relay
    return st


def calls_with(relay, *active):
    return {"active": list(active), "history": [], "history_on": True, "relay": relay}


def call(caller, callee, state, media):
    return {"call_id": "c1", "caller": f"sip:{caller}@home.lan", "callee": f"sip:{callee}@x",
            "state": state, "since": 30, "age": 35, "media": media}


def test_a_relayed_call_shows_its_packets_each_way_and_a_silent_side():
    html = page.render(status(calls_with(TOTALS, call("100", "200", "confirmed", RELAYED),
                                         call("101", "102", "early", None)), TOTALS),
                       time.gmtime)
    p = Page(html)
    rows = p.rows("active-calls")
    assert [(r["Caller"], r["Media"], r["From caller"], r["From callee"]) for r in rows] == [
        ("100@home.lan", "relayed", "700120.4 kB", "0 silent0 B"),
        ("101@home.lan", "direct", "—", "—")]
    cells = p.root.by_id("active-calls").find("tbody").find("tr").find_all("td")
    assert [(c.attrs.get("data-n"), c.attrs.get("data-bytes")) for c in cells[5:7]] == [
        ("700", "120400"), ("0", "0")]
    assert p.card("relay-sessions") == "Calls relayed 1 at most 100"
    assert p.card("relay-ports") == "RTP ports in use 4 / 100 16384-16483, 4 a call"
    assert p.card("relay-packets") == "Media relayed 1234 packets, 212.0 kB"
    assert p.card("relay-problems") == "Relay refused 0 timed out 1, one-way 2"
    assert p.root.by_id("relay-full") is None


def test_nearly_full_is_a_warning():
    full = dict(TOTALS, sessions=20, ports_used=80, nearly_full=True)
    p = Page(page.render(status(calls_with(full), full), time.gmtime))
    warning = p.root.by_id("relay-full").text
    assert "nearly full" in warning and "80 of 100 RTP ports" in warning, warning
    assert "rtp_ports" in warning


def test_without_a_relay_no_media_columns_and_no_card():
    p = Page(page.render(status(calls_with(None, call("100", "200", "confirmed", None)), None),
                         time.gmtime))
    (row,) = p.rows("active-calls")
    assert "Media" not in row and row["State"] == "answered"
    assert p.root.by_id("relay") is None


def test_values_from_the_network_are_escaped():
    evil = dict(RELAYED, from_caller={"packets": 1, "bytes": 2, "silent": False})
    html = page.render(status(calls_with(TOTALS, call("<b>x</b>", "200", "confirmed", evil)),
                              dict(TOTALS, port_min="<i>")), time.gmtime)
    assert "<b>x</b>" not in html and "<i>" not in html


def test_nearly_full_of_sessions_says_to_raise_the_session_bound_not_the_ports():
    full = dict(TOTALS, sessions=90, ports_used=20, nearly_full=True)
    warning = Page(page.render(status(calls_with(full), full), time.gmtime)).root.by_id(
        "relay-full").text
    assert "rtp_max_sessions" in warning and "rtp_ports" not in warning, warning


def test_a_call_an_external_relay_carries_shows_relayed_by_it():
    p = Page(page.render(status(calls_with(None, call("100", "200", "confirmed", {
        "call_id": "c", "external": "udp:127.0.0.1:7722"})), None), time.gmtime))
    (row,) = p.rows("active-calls")
    assert (row["Media"], row["From caller"]) == ("relayed (external)", "—"), row
