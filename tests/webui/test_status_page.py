"""The status page through a real busybox httpd, against a real serlite.

busybox httpd serves webui/www/ with basic auth on /cgi-bin; the CGI reads the settings file
the test wrote and runs under python3-light.  SIP traffic comes from sipp and raw UDP; the
page must count it exactly and list the phones, escape what the phones sent, and steer the
server only through authenticated, same-origin POSTs carrying the page's token.
"""

from tests.e2e import sipnet

from .conftest import server_config
from .pagetools import Page

OPTIONS = 7
HOSTILE_UA = "<script>alert('ua')</script> & \"Phone\""


def start(ser, tmp_path):
    return ser(server_config(tmp_path / "usrloc"))


def register_phones(server, tmp_path):
    """Three REGISTERs: alice and bob by sipp, carol by hand with a hostile User-Agent."""
    host, port = server.addr
    rows = [("alice", "sip:alice@127.0.0.1:5071", "udp", 3600),
            ("bob", "sip:bob@127.0.0.1:5072", "udp", 1800)]
    sipnet.run_bindings(server.addr, rows, workdir=tmp_path, name="register").assert_ok(2)
    with sipnet.UdpPeer() as peer:
        aor = f"sip:carol@{sipnet.hostport(host, port)}"
        req = sipnet.make_request("REGISTER", f"sip:{sipnet.hostport(host, port)}",
                                  via=(peer.host, peer.port), to=aor,
                                  headers=[f"User-Agent: {HOSTILE_UA}",
                                           "Contact: <sip:carol@127.0.0.1:5073>",
                                           "Expires: 600"])
        peer.send(req, server.addr)
        replies = peer.recv_until(sipnet.is_final, 5)
    assert [sipnet.status_of(r) for r in replies if sipnet.is_final(r)] == [200], replies


def send_options(server, n):
    """n OPTIONS, each answered 200; returns the bytes sent."""
    sent = 0
    with sipnet.UdpPeer() as peer:
        for _ in range(n):
            req = sipnet.options(server.addr, peer)
            peer.send(req, server.addr)
            sent += len(req)
            replies = peer.recv_until(sipnet.is_final, 5)
            assert [sipnet.status_of(r) for r in replies] == [200], replies
    return sent


def page_of(httpd, path="/cgi-bin/ser", **kw):
    status, headers, body = httpd.get(path, **kw)
    assert status == 200, body
    assert headers["content-type"] == "text/html; charset=utf-8"
    return Page(body)


def test_the_page_lists_the_receivers_with_their_addresses_and_pid(ser, webui, tmp_path):
    server = start(ser, tmp_path)
    httpd = webui(server)
    page = page_of(httpd)
    assert page.badge == "running"
    assert page.pid == server.pid
    procs = page.rows("procs")
    receivers = [(p["PID"], p["Process"], p["Socket"], p["Address"]) for p in procs
                 if p["Process"].endswith("receiver")]
    at = f"127.0.0.1:{server.port}"
    assert receivers == [(str(server.pid), "udp receiver", f"udp:{at}", at),
                         (str(server.pid), "tcp receiver", f"tcp:{at}", at)]
    assert [p["Interface"] for p in procs if p["Process"].endswith("receiver")] == \
        ["loopback", "loopback"]
    assert procs[-1]["Process"] == "control socket" and procs[-1]["Address"] == server.ctl_sock
    # the router's side: uptime and load from /proc
    assert page.card("load").startswith("Load average")
    assert page.card("router-uptime").startswith("Router up")
    assert page.root.by_id("wan") is not None and page.root.by_id("lan") is not None


def test_counters_and_phones_match_what_was_sent(ser, webui, tmp_path):
    server = start(ser, tmp_path)
    httpd = webui(server)
    options_bytes = send_options(server, OPTIONS)
    register_phones(server, tmp_path)

    status, _, html = httpd.get()
    page = Page(html)
    # OPTIONS were sent by hand: their count and size are known exactly
    assert page.counts("req-OPTIONS") == (OPTIONS, options_bytes, 0, 0)
    registers = page.counts("req-REGISTER")
    assert registers[0] == 3 and registers[2:] == (0, 0)
    # every request got one 200, and nothing else was answered
    sent_200 = page.counts("rep-200")
    assert sent_200[:1] == (0,) and sent_200[2] == OPTIONS + 3
    assert page.counts("rep-2xx") == sent_200
    for klass in ("1xx", "3xx", "4xx", "5xx", "6xx"):
        assert page.counts(f"rep-{klass}") == (0, 0, 0, 0)
    # sizes agree with the server's own counters
    with sipnet_client(server) as client:
        stats = client.call("stats")
    assert registers[1] == stats["requests_in"]["REGISTER"][1]
    assert sent_200[3] == stats["replies_out"]["200"][1]

    phones = page.rows("phones")
    assert [(p["AOR"], p["Contact"], p["NAT"]) for p in phones] == [
        ("alice", "sip:alice@127.0.0.1:5071;transport=udp", "no"),
        ("bob", "sip:bob@127.0.0.1:5072;transport=udp", "no"),
        ("carol", "sip:carol@127.0.0.1:5073", "no"),
    ]
    assert [p["Source"] for p in phones] == ["127.0.0.1:5071", "127.0.0.1:5072", "127.0.0.1:5073"]
    assert [p["User agent"] for p in phones] == ["—", "—", HOSTILE_UA]
    expires = [int(td.attrs["data-s"]) for td in page.root.by_id("phones").find_all("span")
               if "data-s" in td.attrs]
    assert 3500 < expires[0] <= 3600 and 1700 < expires[1] <= 1800 and 500 < expires[2] <= 600
    assert page.card("phones-count").startswith("Phones 3")
    # what came from the network is escaped, never markup
    assert "<script>" not in html and "&lt;script&gt;" in html


def sipnet_client(server):
    from serlite.control.client import Client
    return Client(server.ctl_sock)


def test_restart_needs_the_token_then_restarts_with_registrations_intact(ser, webui, tmp_path):
    server = start(ser, tmp_path)
    httpd = webui(server)
    register_phones(server, tmp_path)
    old_pid = server.pid
    page = page_of(httpd)
    form = page.forms()["restart"]
    assert form["_method"] == "post" and form["_action"] == "/cgi-bin/ser" and form["token"]

    status, _, body = httpd.post({"action": "restart"})
    assert status == 403 and "token" in Page(body).root.by_id("message").text
    status, _, body = httpd.post({"action": "restart", "token": form["token"] + "0"})
    assert status == 403
    assert httpd.restarter.restarts == 0 and server.pid == old_pid

    status, headers, _ = httpd.post({"action": "restart", "token": form["token"]})
    assert status == 303 and headers["location"] == "/cgi-bin/ser?done=restart"
    assert httpd.restarter.restarts == 1 and not httpd.restarter.errors
    assert server.pid != old_pid

    after = page_of(httpd, headers["location"])
    assert after.badge == "running" and after.pid == server.pid
    assert after.notice() == "SIP server restarted."
    assert [p["AOR"] for p in after.rows("phones")] == ["alice", "bob", "carol"]
    assert after.rows("phones")[2]["User agent"] == HOSTILE_UA


def test_reload_by_post_with_the_token(ser, webui, tmp_path):
    server = start(ser, tmp_path)
    httpd = webui(server)
    form = page_of(httpd, "/cgi-bin/ser?refresh=30").forms()["reload"]
    assert form["refresh"] == "30"
    since = len(server.log())
    status, headers, _ = httpd.post({"action": "reload", "token": form["token"], "refresh": "30"})
    assert status == 303 and headers["location"] == "/cgi-bin/ser?done=reload&refresh=30"
    sipnet.wait_log(server, r"reloaded", since=since)
    page = page_of(httpd, headers["location"])
    assert page.notice() == "Configuration reloaded."
    assert page.pid == server.pid and httpd.restarter.restarts == 0
    refresh = page.root.find("meta", **{"http-equiv": "refresh"})
    assert refresh.attrs["content"] == "30;url=/cgi-bin/ser?refresh=30"


def test_the_page_says_not_running_and_still_offers_restart(ser, webui, tmp_path):
    server = start(ser, tmp_path)
    httpd = webui(server)
    register_phones(server, tmp_path)
    server.stop()
    page = page_of(httpd)
    assert page.badge == "not running"
    assert "serlite is not running" in page.root.by_id("down").text
    forms = page.forms()
    assert set(forms) == {"restart"} and not forms["restart"]["_disabled"]
    assert page.root.by_id("phones") is None
    assert page.card("router-uptime").startswith("Router up")

    status, headers, _ = httpd.post({"action": "restart", "token": forms["restart"]["token"]})
    assert status == 303 and server.running()
    page = page_of(httpd)
    assert page.badge == "running" and page.pid == server.pid
    assert [p["AOR"] for p in page.rows("phones")] == ["alice", "bob", "carol"]


def test_get_with_an_action_does_nothing(ser, webui, tmp_path):
    server = start(ser, tmp_path)
    httpd = webui(server)
    token = page_of(httpd).forms()["restart"]["token"]
    page = page_of(httpd, f"/cgi-bin/ser?action=restart&token={token}")
    assert page.badge == "running" and page.pid == server.pid
    assert httpd.restarter.restarts == 0


def test_anonymous_actions_are_refused(ser, webui, tmp_path):
    server = start(ser, tmp_path)
    authed = webui(server)
    token = page_of(authed).forms()["restart"]["token"]
    open_httpd = webui(server, auth=False, restarter=authed.restarter)

    page = page_of(open_httpd)            # anyone may look ...
    assert page.badge == "running"
    assert all(f["_disabled"] and "token" not in f for f in page.forms().values())
    assert "need a login" in page.root.by_id("actions-note").text

    status, _, body = open_httpd.post({"action": "restart", "token": token})   # ... not act
    assert status == 403 and "login" in Page(body).root.by_id("message").text
    assert authed.restarter.restarts == 0 and server.pid == page.pid

    # and through the authenticated server, busybox itself asks for the password
    status, _, _ = authed.post({"action": "restart", "token": token}, auth=False)
    assert status == 401


def test_cross_site_posts_are_refused(ser, webui, tmp_path):
    server = start(ser, tmp_path)
    httpd = webui(server)
    token = page_of(httpd).forms()["reload"]["token"]
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/cgi-bin/ser"}):
        status, _, body = httpd.post({"action": "reload", "token": token}, origin=False,
                                     headers=headers)
        assert status == 403 and "another site" in body, headers
    status, _, body = httpd.post({"action": "reload", "token": token}, origin=False)
    assert status == 403 and "neither Origin nor Referer" in body
    # a same-origin Referer is enough when a browser sends no Origin
    status, _, _ = httpd.post({"action": "reload", "token": token}, origin=False,
                              headers={"Referer": f"{httpd.base}/cgi-bin/ser?refresh=10"})
    assert status == 303


def test_methods_other_than_get_and_post(ser, webui, tmp_path):
    server = start(ser, tmp_path)
    httpd = webui(server)
    status, headers, _ = httpd.request("HEAD")
    assert status == 200 and headers["content-type"].startswith("text/html")
    for method in ("PUT", "DELETE", "PATCH"):
        status, _, _ = httpd.request(method, body="action=restart")
        # busybox httpd answers 501 for methods it does not know; the CGI 405 for the rest
        assert status in (405, 501), method
    assert httpd.restarter.restarts == 0
