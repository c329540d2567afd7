"""The Banned section for real: a serlite with secfilter bans a guesser (a raw UDP client on
127.0.0.2 answering challenges with wrong passwords), three more addresses guess one account
(the alarm), ``ser-ctl ban add`` bans one by hand; the page, through busybox httpd, lists the ban and the alarm, and its Lift button
(the page's own form, token and all) lifts the ban over the control socket, after which the
address is answered again.  Headless Chromium renders the page with the ban; the screenshot goes
to docs/status-page-bans.png when SER_UPDATE_SCREENSHOTS=1 is set."""

import os
import re
import shutil

from tests.e2e import sipnet
from tests.e2e.test_fail2ban_filter import (BAN_FAILURES, answered, ban_by_guessing, ban_ctl,
                                            guess, start)

from .conftest import REPO, server_config
from .pagetools import Page
from .test_browser import chromium, fake_ubus, run_chromium

GUESSER = "127.0.0.2"
BY_HAND = "198.51.100.23"           # banned with ser-ctl ban add: never sends anything


def lift_form(page, address):
    """The fields of the Lift form of ``address`` in the bans table."""
    for form in page.root.by_id("bans").find_all("form"):
        fields = {i.attrs["name"]: i.attrs.get("value", "") for i in form.find_all("input")}
        if fields.get("address") == address:
            button = form.find("button")
            assert "disabled" not in button.attrs
            return dict(fields, action=button.attrs["value"])
    raise AssertionError(f"no Lift form for {address}")


def test_a_ban_is_listed_with_the_alarm_and_lifted_from_the_page(ser, webui, tmp_path):
    server = start(ser, tmp_path)
    ban_by_guessing(server, GUESSER, "alice")
    for source in ("127.0.0.3", "127.0.0.4", "127.0.0.5"):
        assert guess(server, source, "bob", 1) == [401]
    sipnet.wait_log(server, r"secfilter: account bob is being guessed from 3 addresses")
    out = ban_ctl(server, "add", BY_HAND, "3600")
    assert out.returncode == 0, out.stderr
    httpd = webui(server, SER_WEBUI_UBUS=str(fake_ubus(tmp_path)))

    status, _, body = httpd.get()
    assert status == 200, body
    page = Page(body)
    rows = page.rows("bans")
    assert [(r["Address"], r["Reason"], r["Failures"], r["Last user"], r["Offences"],
             r["Dropped"]) for r in rows] == [
        (BY_HAND, "manual", "0", "—", "1", "0"),
        (GUESSER, "failed logins", str(BAN_FAILURES), "alice", "1", "1")]  # its 4th REGISTER
    assert re.fullmatch(r"(59 min \d+ s|1 h 0 min)", rows[0]["Time left"]), rows[0]
    assert re.fullmatch(r"1[45] min \d+ s", rows[1]["Time left"]), rows[1]
    assert page.card("ban-alarms").startswith("Account bob is being guessed from 3 addresses")

    binary = chromium()
    dom = Page(run_chromium(binary, tmp_path / "profile", "--dump-dom", httpd.url()))
    assert [r["Address"] for r in dom.rows("bans")] == [BY_HAND, GUESSER]
    shot = tmp_path / "status-page-bans.png"
    run_chromium(binary, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1100",
                 httpd.url())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") == 1280
    if os.environ.get("SER_UPDATE_SCREENSHOTS"):
        shutil.copyfile(shot, REPO / "docs" / "status-page-bans.png")

    form = lift_form(page, GUESSER)
    assert answered(server, GUESSER) is False
    # another site's page cannot lift it, nor a form without the page's token
    assert httpd.post(form, headers={"Origin": "http://evil.example"})[0] == 403
    assert httpd.post(dict(form, token="1-00"))[0] == 403
    assert answered(server, GUESSER) is False
    status, headers, body = httpd.post(form)
    assert status == 303, body
    assert headers["location"] == f"/cgi-bin/ser?done=lift&address={GUESSER}"
    sipnet.wait_log(server, rf"secfilter: unbanned {re.escape(GUESSER)}")
    assert answered(server, GUESSER) is True
    page = Page(httpd.get(headers["location"])[2])
    assert page.notice() == f"Ban on {GUESSER} lifted."
    assert [r["Address"] for r in page.rows("bans")] == [BY_HAND]
    # lifted again (a second tab): nothing to lift, and the page says so
    status, headers, _ = httpd.post(form)
    assert status == 303 and headers["location"].endswith("&gone=1")


def test_a_server_without_secfilter_shows_no_banned_section(ser, webui, tmp_path):
    server = ser(server_config(tmp_path / "usrloc"))         # SER 0.9's modules only
    status, _, body = webui(server).get()
    assert status == 200 and Page(body).badge == "running"
    assert 'id="banned"' not in body and 'id="ban-alarms"' not in body
