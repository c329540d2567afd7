"""serlite.webui and serlite.control.page in-process: the hand-written form parser, the
settings, the CSRF token and the Origin check, each refusal's status, escaping, addresses."""

import io
import json
import os
import stat
import sys

import pytest

from serlite import netif, webui
from serlite.control import page

from .conftest import HERE
from .pagetools import Page

NOW = 1_800_000_000.0


# --- forms and query strings -----------------------------------------------------------------

@pytest.mark.parametrize("raw, text", [
    (b"a%20b+c", "a b c"),
    (b"%E2%9C%93", "\u2713"),
    (b"100%", "100%"),
    (b"%4", "%4"),
    (b"%zz%41", "%zzA"),
    (b"% 1", "% 1"),                    # int() would take " 1": the digits are checked first
    (b"%ff", "\ufffd"),                 # not UTF-8: replaced, never an exception
    (b"", ""),
])
def test_percent_decode(raw, text):
    assert webui.percent_decode(raw) == text


def test_parse_pairs():
    assert webui.parse_pairs(b"action=restart&token=1-ab&action=reload") == \
        {"action": "restart", "token": "1-ab"}
    assert webui.parse_pairs("refresh=10;done=reload&flag&&=x") == \
        {"refresh": "10", "done": "reload", "flag": "", "": "x"}
    assert webui.parse_pairs("") == {}


@pytest.mark.parametrize("value, seconds", [("10", 10), ("1", 5), ("999999", 3600), ("0", None),
                                            ("-5", None), ("x", None), (None, None)])
def test_refresh_is_clamped(value, seconds):
    assert webui.refresh_of(value) == seconds


def test_settings_file_then_environment(tmp_path):
    conf = tmp_path / "webui.conf"
    conf.write_text("# the router's settings\nSER_UNIX_SOCK='/run/ser.sock'\n"
                    "export SER_WEBUI_ALLOW_ANONYMOUS=\"yes\"\nnonsense line\n"
                    "SER_RESTART_CMD=/etc/init.d/ser restart\n")
    got = webui.settings({"SER_WEBUI_CONF": str(conf), "SER_RESTART_CMD": "/bin/true"})
    assert got["SER_UNIX_SOCK"] == "/run/ser.sock"
    assert webui.truthy(got["SER_WEBUI_ALLOW_ANONYMOUS"])
    assert got["SER_RESTART_CMD"] == "/bin/true"                  # the environment wins
    assert got["SER_WEBUI_SECRET"] == "/etc/ser/webui.secret"     # default
    assert webui.settings({"SER_WEBUI_CONF": str(tmp_path / "none")}) == \
        dict(webui.DEFAULTS, SER_WEBUI_CONF=str(tmp_path / "none"))     # the file it read


# --- CSRF ------------------------------------------------------------------------------------

def test_secret_is_made_once_0600(tmp_path):
    path = tmp_path / "etc" / "webui.secret"
    secret = webui.load_secret(str(path))
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert webui.load_secret(str(path)) == secret
    assert sorted(os.listdir(path.parent)) == ["webui.secret"]    # no temporary left


def test_tokens():
    secret = b"k" * 64
    token = webui.make_token(secret, "admin", NOW)
    assert webui.check_token(secret, token, "admin", NOW + 3600) is None
    assert "does not match" in webui.check_token(secret, token, "mallory", NOW)
    assert "does not match" in webui.check_token(b"x" * 64, token, "admin", NOW)
    assert "too old" in webui.check_token(secret, token, "admin", NOW + webui.TOKEN_TTL + 1)
    assert "too old" in webui.check_token(secret, token, "admin", NOW - webui.TOKEN_SKEW - 1)
    issued, mac = token.split("-")
    forged = f"{int(issued) + 1000}-{mac}"                        # a younger time, same MAC
    assert "does not match" in webui.check_token(secret, forged, "admin", NOW + 2000)
    for bad in (None, "", "abc", "12-", "-ab", "x1-ab"):
        assert "no valid token" in webui.check_token(secret, bad, "admin", NOW)


@pytest.mark.parametrize("env, ok", [
    ({"HTTP_HOST": "router:8080", "HTTP_ORIGIN": "http://router:8080"}, True),
    ({"HTTP_HOST": "Router", "HTTP_ORIGIN": "http://router"}, True),
    ({"HTTP_HOST": "router", "HTTPS": "on", "HTTP_ORIGIN": "https://router"}, True),
    ({"HTTP_HOST": "router", "HTTP_ORIGIN": "https://router"}, False),
    ({"HTTP_HOST": "router", "HTTP_ORIGIN": "http://router:81"}, False),
    ({"HTTP_HOST": "router", "HTTP_ORIGIN": "null"}, False),
    ({"HTTP_HOST": "router", "HTTP_ORIGIN": "http://router.evil"}, False),
    ({"HTTP_HOST": "router", "HTTP_REFERER": "http://router/cgi-bin/ser?x=1"}, True),
    ({"HTTP_HOST": "router", "HTTP_REFERER": "http://router?x"}, True),
    ({"HTTP_HOST": "router", "HTTP_REFERER": "http://router.evil/cgi-bin/ser"}, False),
    ({"HTTP_HOST": "router", "HTTP_REFERER": "router/cgi-bin/ser"}, False),
    ({"HTTP_HOST": "router"}, False),
    ({"HTTP_ORIGIN": "http://router"}, False),
])
def test_origin_check(env, ok):
    assert (webui.check_origin(env) is None) == ok


# --- requests in-process ---------------------------------------------------------------------

@pytest.fixture
def cgi(tmp_path):
    """run(method, query="", body=b"", **environ) -> (status, headers, html) of one request
    against a control socket nobody listens on."""
    base = {"SER_WEBUI_CONF": str(tmp_path / "none.conf"),
            "SER_UNIX_SOCK": str(tmp_path / "nobody.sock"),
            "SER_WEBUI_SECRET": str(tmp_path / "secret"),
            "SER_WEBUI_UBUS": "", "SCRIPT_NAME": "/cgi-bin/ser", "HTTP_HOST": "router",
            "HTTP_ORIGIN": "http://router", "REMOTE_USER": "admin"}

    def run(method="GET", query="", body=b"", **environ):
        env = dict(base, REQUEST_METHOD=method, QUERY_STRING=query,
                   CONTENT_LENGTH=str(len(body)),
                   CONTENT_TYPE="application/x-www-form-urlencoded")
        env.update(environ)
        env = {k: v for k, v in env.items() if v is not None}
        out = io.BytesIO()
        assert webui.main(env, io.BytesIO(body), out) == 0
        head, _, html = out.getvalue().partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("Status: ")         # busybox httpd reads it first only
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), headers, html.decode()

    run.secret = lambda: webui.load_secret(base["SER_WEBUI_SECRET"])
    return run


def token_for(cgi, user="admin"):
    return webui.make_token(cgi.secret(), user, __import__("time").time())


def test_get_when_nothing_runs(cgi):
    status, headers, html = cgi("GET")
    assert status == 200
    assert headers["X-Frame-Options"] == "DENY" and "default-src 'none'" in \
        headers["Content-Security-Policy"] and headers["Cache-Control"] == "no-store"
    p = Page(html)
    assert p.badge == "not running" and "nobody.sock" in p.root.by_id("down").text
    assert set(p.forms()) == {"restart"}


def test_head_has_no_body(cgi):
    status, headers, html = cgi("HEAD")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and html == ""


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_405(cgi, method):
    status, headers, _ = cgi(method, body=b"action=restart")
    assert status == 405 and headers["Allow"] == "GET, HEAD, POST"


def test_post_refusals(cgi):
    token = token_for(cgi)
    form = f"action=reload&token={token}".encode()
    assert cgi("POST", body=form, REMOTE_USER=None)[0] == 403
    assert cgi("POST", body=form, HTTP_ORIGIN="http://evil")[0] == 403
    assert cgi("POST", body=b"action=reload")[0] == 403
    assert cgi("POST", body=b"x" * (webui.MAX_BODY + 1))[0] == 413
    assert cgi("POST", body=form, CONTENT_TYPE="multipart/form-data; boundary=x")[0] == 415
    assert cgi("POST", body=form, CONTENT_LENGTH="many")[0] == 400
    assert cgi("POST", body=f"action=format&token={token}".encode())[0] == 400
    # everything in order: the action runs, and says there is no server to reload
    status, _, html = cgi("POST", body=form)
    assert status == 503 and "Nothing to reload" in html


def test_anonymous_only_when_allowed(cgi):
    form = f"action=reload&token={token_for(cgi, user='')}".encode()
    status, _, html = cgi("POST", body=form, REMOTE_USER=None)
    assert status == 403 and "need a login" in html
    status, _, _ = cgi("POST", body=form, REMOTE_USER=None, SER_WEBUI_ALLOW_ANONYMOUS="1")
    assert status == 503                        # got through to the (absent) server
    p = Page(cgi("GET", REMOTE_USER=None, SER_WEBUI_ALLOW_ANONYMOUS="1")[2])
    assert not p.forms()["restart"]["_disabled"]


def test_an_unwritable_secret_turns_actions_off(cgi, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    p = Page(cgi("GET", SER_WEBUI_SECRET=str(blocker / "secret"))[2])
    assert p.forms()["restart"]["_disabled"] and "secret" in p.root.by_id("actions-note").text


def test_restart_command_failures(cgi, tmp_path):
    form = f"action=restart&token={token_for(cgi)}".encode()
    failing = "/bin/sh -c 'echo no such service; exit 3'"
    status, _, html = cgi("POST", body=form, SER_RESTART_CMD=failing)
    assert status == 500 and "exit status 3" in html and "no such service" in html

    # what cannot run at all is said in words, with where to set it: not a 500
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\n")
    for command, why in ((str(tmp_path / "missing"), f"{tmp_path / 'missing'} does not exist"),
                         (str(plain), f"{plain} is not an executable file"),
                         (str(tmp_path), f"{tmp_path} is not an executable file"),
                         ("no-such-restart-tool x", "no-such-restart-tool is not found in "
                                                    "/usr/sbin:/usr/bin:/sbin:/bin"),
                         ("", "no restart command is configured"),
                         ("/bin/true 'x", "SER_RESTART_CMD cannot be split into words")):
        status, _, html = cgi("POST", body=form, SER_RESTART_CMD=command)
        message = Page(html).root.by_id("message").text
        assert status == 503, (command, message)
        assert message.startswith(f"Restart is not available here: {why}"), message
        assert f"Set SER_RESTART_CMD in {tmp_path / 'none.conf'}" in message


def test_restart_command_gets_a_clean_environment_and_no_shell(tmp_path):
    out = tmp_path / "env.txt"
    conf = dict(webui.DEFAULTS, SER_UNIX_SOCK=str(tmp_path / "nobody.sock"),
                SER_RESTART_CMD=f"/bin/sh -c 'env > {out}; sleep 3 &' $(touch {tmp_path}/x)")
    ticks = iter(range(100))
    status, text = webui.do_restart(conf, clock=lambda: next(ticks) * 100, pause=lambda s: None)
    # no serlite came back on the socket: said so, not "restarted"
    assert status == 503 and "no new serlite answers" in text
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env.get("PATH") == "/usr/sbin:/usr/bin:/sbin:/bin"
    assert not [k for k in env if k.startswith(("HTTP_", "QUERY", "SER_"))]
    assert not (tmp_path / "x").exists()        # the words are arguments, not shell
    # (and the background sleep holding the pipe did not keep do_restart waiting)


def test_a_crash_is_a_500_not_a_traceback_page(cgi, monkeypatch):
    def boom(*a):
        raise RuntimeError("<b>oops</b>")
    monkeypatch.setattr(webui, "router_info", boom)
    status, _, html = cgi("GET")
    assert status == 500 and "oops" not in html         # the exception's text: to the log only
    assert "log has the details" in html


# --- rendering -------------------------------------------------------------------------------

EVIL = "<x>\"'&"


def test_every_value_is_escaped():
    st = page.Status("/cgi-bin/ser?<x>", NOW)
    st.running = True
    st.version = {"version": EVIL}
    st.procs = [{"pid": EVIL, "name": EVIL, "proto": "udp", "address": EVIL, "port": EVIL,
                 "socket": EVIL}, {"pid": 1, "name": EVIL, "proto": "unix", "address": EVIL,
                                   "port": None, "socket": EVIL}]
    st.stats = {"uptime": 5, "started": NOW, "requests_in": {EVIL: [1, 10]},
                "replies_in": {"299": [1, 5]}, "reply_classes_in": {"2xx": [1, 5]},
                "registered_contacts": EVIL, "registered_aors": EVIL, "transactions": EVIL}
    st.phones = [{"aor": EVIL, "contact": f"sip:{EVIL}@h", "received": EVIL, "nat": True,
                  "user_agent": EVIL, "expires": 30}]
    st.addresses = [page.Address(EVIL, EVIL, "wan", EVIL, EVIL)]
    st.loadavg = (EVIL, EVIL, EVIL, EVIL)
    st.router_uptime = 1.0
    st.notice = ("ok", EVIL)
    st.token = EVIL
    st.refresh = 10
    html = page.render(st, __import__("time").gmtime)
    assert "<x>" not in html and "&lt;x&gt;&quot;&#x27;&amp;" in html
    st.running, st.down_reason = False, EVIL
    assert "<x>" not in page.render(st, __import__("time").gmtime)
    assert "<x>" not in page.message_page(EVIL, EVIL, EVIL)


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (59, "59 s"), (61, "1 min 1 s"),
                                           (3600, "1 h 0 min"), (90061, "1 d 1 h"),
                                           (-5, "0 s")])
def test_duration(seconds, text):
    assert page.duration(seconds) == text


@pytest.mark.parametrize("n, text", [(0, "0 B"), (999, "999 B"), (1500, "1.5 kB"),
                                     (2_340_000, "2.3 MB")])
def test_size(n, text):
    assert page.size(n) == text


@pytest.mark.parametrize("uri, hp", [("sip:alice@192.168.1.20:5062;transport=udp",
                                      "192.168.1.20:5062"),
                                     ("sip:[2001:db8::5]:5060", "[2001:db8::5]:5060"),
                                     ("sips:bob@host", "host")])
def test_uri_hostport(uri, hp):
    assert page.uri_hostport(uri) == hp


# --- addresses -------------------------------------------------------------------------------

def test_ubus_dump():
    dump = json.loads((HERE / "data" / "ubus-dump.json").read_text())
    got = [(a.address, a.prefix, a.role, a.label())
           for a in webui.parse_ubus_dump(dump, {"wan", "wan6"}, {"lan"})]
    assert got == [("192.168.1.1", 24, "lan", "lan (br-lan)"),
                   ("fd3c:9a5e:21b0::1", 60, "lan", "lan (br-lan)"),
                   ("203.0.113.7", 32, "wan", "wan (pppoe-wan)"),
                   ("2001:db8:40:1::7", 64, "wan", "wan6 (pppoe-wan)")]
    assert webui.parse_ubus_dump([], set(), set()) == []
    assert webui.parse_ubus_dump({"interface": [None, {"up": True}]}, set(), set()) == []


def test_kernel_addresses_label_loopback_and_the_default_route():
    found = webui.kernel_addresses(set(), set())
    assert ("127.0.0.1", 8, "lo") in [(a.address, a.prefix, a.role) for a in found]
    defaults = netif.default_route_devices()
    for a in found:
        if a.device != "lo":
            assert a.role == ("wan" if a.device in defaults else "lan"), a
    # naming a device makes it the WAN and the default route no longer decides
    some = next((a.device for a in found if a.device != "lo"), None)
    if some is not None:
        named = webui.kernel_addresses({some}, set())
        assert {a.device for a in named if a.role == "wan"} == {some}


def test_ubus_is_asked_when_configured(tmp_path):
    script = tmp_path / "ubus"
    script.write_text(f"#!/bin/sh\nexec cat {HERE / 'data' / 'ubus-dump.json'}\n")
    script.chmod(0o755)
    conf = dict(webui.DEFAULTS, SER_WEBUI_UBUS=str(script))
    assert [a.role for a in webui.addresses(conf)] == ["lan", "lan", "wan", "wan"]
    conf["SER_WEBUI_UBUS"] = "/bin/false"          # ubus failing: the kernel answers
    assert "127.0.0.1" in [a.address for a in webui.addresses(conf)]


def test_the_page_needs_python_3_11():
    # its imports are checked with every other part's in tests/test_layers.py
    assert sys.version_info >= (3, 11)
