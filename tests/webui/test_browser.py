"""The status page in a real browser: headless Chromium loads it through busybox httpd with
basic auth in the URL, the rendered DOM must hold the phones and counters, and the screenshots
(a phone, 412x915, and a desktop, 1280x1000) go to docs/ for the README when
SER_UPDATE_SCREENSHOTS=1 is set (so that a test run leaves the tree as it was).

The addresses come from a stand-in `ubus` printing an OpenWrt `network.interface dump`
(data/ubus-dump.json), so the page looks as it does on a router.
"""

import os
import shutil
import subprocess

import pytest

from .conftest import HERE, REPO
from .pagetools import Page
from .test_status_page import register_phones, send_options, start

DOCS = REPO / "docs"
CHROMIUM_TIMEOUT = 90
SIZES = {"status-page.png": (412, 915), "status-page-desktop.png": (1280, 1000)}


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed (tests/run installs the Debian package chromium)")


def run_chromium(binary, profile, *args):
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=CHROMIUM_TIMEOUT)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return proc.stdout.decode("utf-8", "replace")


def fake_ubus(tmp_path):
    script = tmp_path / "ubus"
    script.write_text('#!/bin/sh\n[ "$*" = "call network.interface dump" ] || exit 1\n'
                      f'exec cat {HERE / "data" / "ubus-dump.json"}\n')
    script.chmod(0o755)
    return script


def test_the_page_in_headless_chromium(ser, webui, tmp_path):
    binary = chromium()
    server = start(ser, tmp_path)
    httpd = webui(server, SER_WEBUI_UBUS=str(fake_ubus(tmp_path)))
    send_options(server, 7)
    register_phones(server, tmp_path)

    dom = run_chromium(binary, tmp_path / "profile", "--dump-dom", httpd.url())
    page = Page(dom)
    assert page.badge == "running" and page.pid == server.pid
    assert [p["AOR"] for p in page.rows("phones")] == ["alice", "bob", "carol"]
    assert page.counts("req-OPTIONS")[0] == 7 and page.counts("req-REGISTER")[0] == 3
    assert page.card("wan") == ("WAN 203.0.113.7/32 wan (pppoe-wan) "
                                "2001:db8:40:1::7/64 wan6 (pppoe-wan)")
    assert page.card("lan") == "LAN 192.168.1.1/24 lan (br-lan) fd3c:9a5e:21b0::1/60 lan (br-lan)"
    assert not page.root.find_all("script")       # the hostile user agent stayed text

    for name, (width, height) in SIZES.items():
        shot = tmp_path / name
        run_chromium(binary, tmp_path / "profile", f"--screenshot={shot}",
                     f"--window-size={width},{height}", httpd.url())
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(data[16:20], "big") == width     # IHDR width
        if os.environ.get("SER_UPDATE_SCREENSHOTS"):     # refresh the README's pictures
            shutil.copyfile(shot, DOCS / name)
