"""The page's calls through busybox httpd and headless Chromium, against a real serlite with
acc's call history: an answered call (sipp), a call the caller cancelled (sipp: missed,
marked), and a call ringing while the page is made (raw UDP peers: shown as active).  The
screenshot is saved in the test's directory, and to docs/status-page-calls.png when
SER_UPDATE_SCREENSHOTS=1 is set."""

import os
import shutil

from tests.e2e import sipnet
from tests.e2e.sipnet import UdpPeer, is_request
from tests.e2e.test_calls_history import acc_config, calls, talking_uac
from tests.e2e.test_stateful import RawUas, register, sipp_contact

from .conftest import REPO
from .pagetools import Page
from .test_browser import chromium, run_chromium


def make_calls(server, tmp_path):
    with sipnet.start_uas(workdir=tmp_path, name="bob") as uas:
        register(server, "bob", [sipp_contact(uas)])
        sipnet.run_uac(server.addr, workdir=tmp_path, name="alice",
                       scenario=str(talking_uac(tmp_path, 1.0)), timeout=20).assert_ok(1)
        uas.wait(timeout=5)
    with sipnet.start_uas(workdir=tmp_path, scenario="uas_ring_cancel.xml", name="dora") as uas:
        register(server, "dora", [sipp_contact(uas, "dora")])
        sipnet.run_uac(server.addr, workdir=tmp_path, scenario="uac_cancel.xml",
                       service="dora", name="eve").assert_ok(1)
        uas.wait(timeout=5)


def ringing_call(server, callee, caller):
    """An INVITE from ``caller`` to carol (``callee``, a RawUas) that rings and stays so."""
    host, port = server.addr
    invite = sipnet.make_request(
        "INVITE", f"sip:carol@{host}:{port}", via=(caller.host, caller.port),
        to=f"sip:carol@{host}:{port}", from_=f"sip:frank@{host}:{port}",
        headers=[f"Contact: <sip:frank@{caller.host}:{caller.port}>"])
    caller.send(invite, server.addr)
    callee.reply(callee.expect("INVITE"), 180, "Ringing")
    got = caller.recv_until(lambda m: sipnet.status_of(m) == 180, 5)
    assert got and sipnet.status_of(got[-1]) == 180, got
    assert not is_request("INVITE")(got[-1])


def test_the_page_shows_active_calls_and_marks_missed_ones(ser, webui, tmp_path):
    binary = chromium()
    server = ser(acc_config(tmp_path / "calls"))
    make_calls(server, tmp_path)
    with RawUas(server, "carol") as carol, UdpPeer() as frank:
        register(server, "carol", [f"<{carol.uri}>"])
        ringing_call(server, carol, frank)
        assert [c["state"] for c in calls(server)["active"]] == ["early"]
        httpd = webui(server)
        status, _, body = httpd.get()
        assert status == 200, body
        page = Page(body)
        history = page.rows("call-history")
        assert [(r["Caller"].split("@")[0], r["Callee"].split("@")[0], r["Result"])
                for r in history] == [("alice", "dora", "missed"), ("alice", "bob", "answered")]
        missed_rows = [tr for tr in page.root.by_id("call-history").find("tbody").find_all("tr")
                       if tr.attrs.get("class") == "call-missed"]
        assert len(missed_rows) == 1
        assert "1 missed" in page.root.by_id("calls").text
        active = page.rows("active-calls")
        assert [(r["Caller"].split("@")[0], r["Callee"].split("@")[0], r["State"])
                for r in active] == [("frank", "carol", "ringing")]

        dom = Page(run_chromium(binary, tmp_path / "profile", "--dump-dom", httpd.url()))
        assert [r["Result"] for r in dom.rows("call-history")] == ["missed", "answered"]
        shot = tmp_path / "status-page-calls.png"
        run_chromium(binary, tmp_path / "profile", f"--screenshot={shot}",
                     "--window-size=412,1400", httpd.url())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") == 412
    if os.environ.get("SER_UPDATE_SCREENSHOTS"):
        shutil.copyfile(shot, REPO / "docs" / "status-page-calls.png")
