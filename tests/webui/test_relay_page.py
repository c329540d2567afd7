"""A real relayed call on the status page: serlite with rtpproxy_manage() and acc (tests/e2e/
test_rtpproxy.py's loopback set-up: the caller on 127.0.0.3 comes in on the "WAN" address
127.0.0.2, the callee on 127.0.0.4 is reached from the "LAN" address 127.0.0.1), the page
served by busybox httpd and loaded by headless Chromium.  While the call is up the page shows
it relayed with packet counts that rise as RTP flows, ``ser-ctl calls`` and ``ser-ctl
rtpproxy`` show the same numbers; after BYE the call is gone and the relay holds nothing."""

import json

from tests.e2e import sipnet
from tests.e2e.sipnet import UdpPeer, is_final, is_request, make_request, response_to, status_of
from tests.e2e.test_rtpproxy import (CALLEE, CALLER, LAN, WAN, config, ctl, header, media_of,
                                     sdp, two_homed)  # noqa: F401  (two_homed: a fixture)

from .pagetools import Page
from .test_browser import chromium, run_chromium


def relay_config(low, high, history):
    """With acc's call history: acc shows the active calls only then (its tracker)."""
    return config(low, high).replace(
        'loadmodule "rtpproxy"\n',
        f'loadmodule "rtpproxy"\nloadmodule "acc"\nmodparam("acc", "history_file", '
        f'"{history}")\n')


def media_row(httpd):
    """(the active calls' rows, the first row's From caller and From callee packet counts
    from the cells' data-n, the page)."""
    status, _, body = httpd.get()
    assert status == 200, body
    page = Page(body)
    rows = page.rows("active-calls")
    counts = None
    if rows:
        cells = page.root.by_id("active-calls").find("tbody").find("tr").find_all("td")
        counts = tuple(int(c.attrs["data-n"]) for c in cells
                       if c.attrs.get("data-label") in ("From caller", "From callee"))
    return rows, counts, page


def test_the_page_shows_a_relayed_call_with_rising_packet_counts(two_homed, ser, webui,
                                                                  tmp_path):
    binary = chromium()
    low = 30000 + (sipnet.free_port() % 20000) & ~1     # a range of its own, likely free
    server = two_homed(relay_config(low, low + 99, tmp_path / "calls"))
    httpd = webui(server)
    wan = (WAN, server.port)
    with UdpPeer(host=CALLER) as alice, UdpPeer(host=CALLEE) as bob, \
            UdpPeer(host=CALLER) as alice_rtp, UdpPeer(host=CALLEE) as bob_rtp:
        bob_uri = f"sip:bob@{CALLEE}:{bob.port}"
        invite = make_request("INVITE", bob_uri, via=(alice.host, alice.port), to=bob_uri,
                              from_=f"sip:alice@{CALLER}",
                              headers=[f"Contact: <sip:alice@{CALLER}:{alice.port}>",
                                       "Content-Type: application/sdp"],
                              body=sdp(CALLER, alice_rtp.port))
        alice.send(invite, wan)
        got = bob.recv_until(is_request("INVITE"), 5)
        assert got and is_request("INVITE")(got[-1]), got
        relay_b = media_of(got[-1])
        bob.send(response_to(got[-1], 180, "Ringing", to_tag="bobtag"), server.addr)
        assert alice.recv_until(lambda m: status_of(m) == 180, 5)
        rows, counts, page = media_row(httpd)
        assert [(r["Caller"], r["State"], r["Media"]) for r in rows] == [
            (f"alice@{CALLER}", "ringing", "relayed")], rows
        assert counts == (0, 0) and page.card("relay-sessions").startswith("Calls relayed 1")

        bob.send(response_to(got[-1], 200, "OK", to_tag="bobtag",
                             headers=[f"Contact: <{bob_uri}>", "Content-Type: application/sdp"],
                             body=sdp(CALLEE, bob_rtp.port)), server.addr)
        got = alice.recv_until(is_final, 5)
        assert got and status_of(got[-1]) == 200, got
        ok = got[-1]
        relay_a = media_of(ok)
        route, call_id = header(ok, "Record-Route"), header(invite, "Call-ID")
        from_line, to_line = header(invite, "From"), header(ok, "To")

        def in_dialog(method, cseq):
            return ("\r\n".join([
                f"{method} {bob_uri} SIP/2.0",
                f"Via: SIP/2.0/UDP {CALLER}:{alice.port};branch={sipnet.new_branch()};rport",
                "Max-Forwards: 70", f"Route: {route}", f"From: {from_line}", f"To: {to_line}",
                f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", "Content-Length: 0"])
                + "\r\n\r\n").encode()
        alice.send(in_dialog("ACK", 1), wan)
        assert bob.recv_until(is_request("ACK"), 5), "the ACK did not reach the callee"

        def talk(a_packets, b_packets):
            for _ in range(a_packets):
                alice_rtp.send(b"A" * 160, relay_a)
                assert bob_rtp.sock.recvfrom(2048)[0] == b"A" * 160
            for _ in range(b_packets):
                bob_rtp.send(b"B" * 80, relay_b)
                assert alice_rtp.sock.recvfrom(2048)[0] == b"B" * 80

        talk(5, 3)
        rows, counts, page = media_row(httpd)
        assert [(r["State"], r["Media"]) for r in rows] == [("answered", "relayed")], rows
        assert counts == (5, 3) and "silent" not in rows[0]["From callee"], rows
        talk(10, 7)
        rows, counts, page = media_row(httpd)
        assert counts == (15, 10), rows                 # rising with the call's RTP
        assert page.card("relay-ports").startswith("RTP ports in use 4 / 100")
        assert page.card("relay-packets").startswith("Media relayed 25 packets")

        # ser-ctl calls and ser-ctl rtpproxy: the same numbers, from the same join
        (active,) = json.loads(ctl(server, "calls", "--json"))["active"]
        shown = json.loads(ctl(server, "rtpproxy", "--json"))
        (session,) = shown["sessions"]
        assert active["media"]["from_caller"] == session["from_caller"] == {
            "packets": 15, "bytes": 15 * 160, "silent": False}
        assert active["media"]["from_callee"] == session["from_callee"]
        assert (session["caller"], session["state"]) == (active["caller"], "confirmed")
        assert shown["totals"]["ports_used"] == 4 and shown["free_ports"] == 96
        # the legs (addresses, latching) are rtpproxy's detail; calls carries the counts
        assert len(session["streams"]) == 1 and "streams" not in active["media"]
        for text in (ctl(server, "calls"), ctl(server, "rtpproxy")):
            assert "15 pkts 2400 B" in text and "10 pkts 800 B" in text, text
            assert "RTP ports in use: 4 of 100" in text, text

        dom = Page(run_chromium(binary, tmp_path / "profile", "--dump-dom", httpd.url()))
        assert [r["Media"] for r in dom.rows("active-calls")] == ["relayed"]

        alice.send(in_dialog("BYE", 2), wan)
        got = bob.recv_until(is_request("BYE"), 5)
        assert got and is_request("BYE")(got[-1]), got
        bob.send(response_to(got[-1], 200, "OK"), server.addr)
        assert [status_of(m) for m in alice.recv_until(is_final, 5)][-1:] == [200]
        rows, counts, page = media_row(httpd)
        assert rows == [] and page.root.by_id("active-calls-empty") is not None
        assert page.card("relay-sessions").startswith("Calls relayed 0")
        assert page.card("relay-ports").startswith("RTP ports in use 0 / 100")
