"""Restart off the router: the command is webui.conf's SER_RESTART_CMD.  One that cannot run
(off OpenWrt /etc/init.d/ser does not exist) is a page that says so and where to set it, through
a real busybox httpd; before, the missing command was a 500 "Cannot run ...".  That a working
SER_RESTART_CMD from webui.conf restarts serlite is test_status_page's restart test."""

from .conftest import Httpd
from .pagetools import Page


def test_a_restart_command_that_is_not_there_is_explained(busybox, pybin, tmp_path):
    missing = tmp_path / "nowhere" / "ser"
    httpd = Httpd(busybox, tmp_path / "httpd",
                  {"SER_UNIX_SOCK": str(tmp_path / "nobody.sock"),
                   "SER_WEBUI_SECRET": str(tmp_path / "webui.secret"),
                   "SER_RESTART_CMD": f"{missing} restart", "SER_WEBUI_UBUS": ""}, pybin)
    try:
        status, _, body = httpd.get()
        assert status == 200
        token = Page(body).forms()["restart"]["token"]
        status, headers, body = httpd.post({"action": "restart", "token": token})
    finally:
        httpd.stop()
    assert status == 503 and headers["content-type"] == "text/html; charset=utf-8"
    message = Page(body).root.by_id("message").text
    assert message == (f"Restart is not available here: {missing} does not exist. Set "
                       f"SER_RESTART_CMD in {httpd.webui_conf} to the command that restarts "
                       f"serlite on this machine (on OpenWrt: /etc/init.d/ser restart).")
