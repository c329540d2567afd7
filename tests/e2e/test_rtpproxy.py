"""The built-in media relay against the real server: a call between two raw-UDP phones (the
caller on 127.0.0.3, the callee on 127.0.0.4) through serlite with ``rtpproxy_manage()``,
which listens on 127.0.0.2 (standing in for its WAN address: the caller's INVITE comes in
there) and on 127.0.0.1 (its LAN address: the INVITE leaves by it for the callee).
Each SDP reaches the other phone rewritten to the relay's ports; RTP sent by each phone comes
out at the other from the relay's ports (latching: the callee's packets go back to where the
caller's came from); ``ser-ctl stats`` counts them; after BYE the relay's sockets are closed
(the ports can be bound again and the server holds as many descriptors as before the call);
``ser-ctl rtpproxy`` shows the call's packets each way while it lasts."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from . import sipnet
from .sipnet import UdpPeer, is_final, is_request, make_request, response_to, status_of

CALLER, CALLEE = "127.0.0.3", "127.0.0.4"
LAN, WAN = "127.0.0.1", "127.0.0.2"


@pytest.fixture
def two_homed(request, tmp_path, tools):
    """Start serlite listening on LAN (first: where requests leave by) and WAN addresses."""
    servers = []
    request.node._serlite_servers = servers

    def start(config):
        port = sipnet.free_port_pair()
        server = sipnet.SerServer(tmp_path / "relay", config, name="relay", port=port,
                                  extra_args=["-l", f"udp:{WAN}:{port}"])
        servers.append(server)
        return server.start()
    yield start
    for server in servers:
        server.stop()


def config(low, high):
    return f"""
debug=3
loadmodule "sl"
loadmodule "tm"
loadmodule "rr"
loadmodule "rtpproxy"
modparam("rtpproxy", "rtp_port_min", {low})
modparam("rtpproxy", "rtp_port_max", {high})
route {{
    if (loose_route()) {{
        rtpproxy_manage();
        t_relay();
        exit;
    }}
    if (method == "INVITE") {{
        record_route();
        t_on_reply("1");
    }}
    if (method == "INVITE" || method == "CANCEL") {{
        rtpproxy_manage();
    }}
    t_relay();
}}
onreply_route[1] {{
    rtpproxy_manage();
}}
"""


def ctl(server, *args):
    env = dict(os.environ, PYTHONPATH=str(sipnet.REPO))
    env.pop("SER_UNIX_SOCK", None)
    out = subprocess.run([sys.executable, "-m", "serlite.ctl", "-s", server.ctl_sock, *args],
                         capture_output=True, text=True, timeout=30, cwd=sipnet.REPO, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def counters(server):
    return json.loads(ctl(server, "stats", "--json"))["counters"]


def body_of(msg):
    return msg.split(b"\r\n\r\n", 1)[1]


def media_of(msg):
    """(c= address, m=audio port) of a message's SDP."""
    body = body_of(msg)
    return (re.search(rb"^c=IN IP4 (\S+)", body, re.M).group(1).decode(),
            int(re.search(rb"^m=audio (\d+) ", body, re.M).group(1)))


def sdp(ip, port):
    return (f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            f"a=candidate:1 1 UDP 2130706431 {ip} {port} typ host\r\n").encode()


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def bindable(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def header(msg, name):
    m = re.search(rb"^" + name.encode() + rb":\s*(.*?)\r$", msg, re.M | re.I)
    return m.group(1).decode() if m else None


def test_a_relayed_call_carries_rtp_both_ways_and_frees_its_sockets(two_homed):
    low = 30000 + (sipnet.free_port() % 20000) & ~1     # a range of its own, likely free
    server = two_homed(config(low, low + 99))
    wan = (WAN, server.port)
    with UdpPeer(host=CALLER) as alice, UdpPeer(host=CALLEE) as bob, \
            UdpPeer(host=CALLER) as alice_rtp, UdpPeer(host=CALLEE) as bob_rtp:
        before = fds(server.pid)
        bob_uri = f"sip:bob@{CALLEE}:{bob.port}"
        invite = make_request("INVITE", bob_uri, via=(alice.host, alice.port), to=bob_uri,
                              from_=f"sip:alice@{CALLER}",
                              headers=[f"Contact: <sip:alice@{CALLER}:{alice.port}>",
                                       "Content-Type: application/sdp"],
                              body=sdp(CALLER, alice_rtp.port))
        alice.send(invite, wan)
        got = bob.recv_until(is_request("INVITE"), 5)
        assert got and is_request("INVITE")(got[-1]), got
        offer = got[-1]
        # the callee is told to send to the relay, on the address the INVITE left by
        relay_b = media_of(offer)
        assert relay_b[0] == LAN and low <= relay_b[1] <= low + 99, offer
        assert relay_b[1] % 2 == 0 and b"a=candidate" not in offer
        answer = response_to(offer, 200, "OK", to_tag="bobtag",
                             headers=[f"Contact: <{bob_uri}>", "Content-Type: application/sdp"],
                             body=sdp(CALLEE, bob_rtp.port))
        bob.send(answer, server.addr)
        got = alice.recv_until(is_final, 5)
        assert got and status_of(got[-1]) == 200, got
        ok = got[-1]
        relay_a = media_of(ok)
        assert relay_a[0] == WAN and low <= relay_a[1] <= low + 99, ok
        assert relay_a[1] not in (relay_b[1], bob_rtp.port)
        assert fds(server.pid) == before + 4        # one RTP/RTCP pair facing each phone

        route = header(ok, "Record-Route")
        call_id, from_line = header(invite, "Call-ID"), header(invite, "From")
        to_line = header(ok, "To")

        def in_dialog(method, cseq):
            return ("\r\n".join([
                f"{method} {bob_uri} SIP/2.0",
                f"Via: SIP/2.0/UDP {CALLER}:{alice.port};branch={sipnet.new_branch()};rport",
                "Max-Forwards: 70", f"Route: {route}", f"From: {from_line}", f"To: {to_line}",
                f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", "Content-Length: 0"])
                + "\r\n\r\n").encode()
        alice.send(in_dialog("ACK", 1), wan)
        assert bob.recv_until(is_request("ACK"), 5), "the ACK did not reach the callee"

        # media: each phone sends to the relay's address its SDP answer/offer named
        for i in range(5):
            alice_rtp.send(b"A" * (100 + i), relay_a)
            data, src = bob_rtp.sock.recvfrom(2048)
            assert (data, src) == (b"A" * (100 + i), relay_b)
        for i in range(3):
            bob_rtp.send(b"B" * 50, relay_b)
            data, src = alice_rtp.sock.recvfrom(2048)
            assert (data, src) == (b"B" * 50, relay_a)
        c = counters(server)
        assert (c["rtp_packets"], c["rtp_bytes"]) == (8, 510 + 150), c
        assert (c["rtp_sessions"], c["rtp_sessions_active"]) == (1, 1), c
        (shown,) = json.loads(ctl(server, "rtpproxy", "--json"))["sessions"]
        assert shown["call_id"] == call_id
        assert shown["from_caller"] == {"packets": 5, "bytes": 510, "silent": False}
        assert shown["from_callee"] == {"packets": 3, "bytes": 150, "silent": False}
        assert shown["streams"][0][0]["peer"] == f"{CALLER}:{alice_rtp.port}"   # latched
        text = ctl(server, "rtpproxy")
        assert "relayed calls: 1" in text and "5 pkts 510 B" in text, text

        alice.send(in_dialog("BYE", 2), wan)
        got = bob.recv_until(is_request("BYE"), 5)
        assert got and is_request("BYE")(got[-1]), got
        bob.send(response_to(got[-1], 200, "OK"), server.addr)
        assert [status_of(m) for m in alice.recv_until(is_final, 5)][-1:] == [200]
        c = counters(server)
        assert c["rtp_sessions_active"] == 0, c
        assert json.loads(ctl(server, "rtpproxy", "--json"))["sessions"] == []
        assert fds(server.pid) == before
        for port in (relay_a[1], relay_a[1] + 1, relay_b[1], relay_b[1] + 1):
            assert bindable(LAN, port) and bindable(WAN, port), \
                f"relay port {port} still bound after BYE"


def test_an_external_relay_the_check_accepts_and_one_it_cannot_use(tmp_path):
    """-c: a UDP relay socket is fine (nothing is sent at check); rtpproxy's unix: socket is
    not supported: file:line and why."""
    cfg = tmp_path / "ext.cfg"
    cfg.write_text('loadmodule "rtpproxy"\n'
                   'modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1:7722")\n'
                   'route { rtpproxy_manage(); drop; }\n')
    out = subprocess.run([sys.executable, "-m", "serlite", "-c", "-f", str(cfg)],
                         cwd=sipnet.REPO, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    cfg.write_text(cfg.read_text().replace("udp:127.0.0.1:7722", "unix:/run/rtpproxy.sock"))
    out = subprocess.run([sys.executable, "-m", "serlite", "-c", "-f", str(cfg)],
                         cwd=sipnet.REPO, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "unix sockets are not supported" in out.stderr, out.stderr
    assert out.stderr.startswith(f"{cfg}:1:"), out.stderr


# --- a forked call: two phones answer with early media, one answers ------------------------

FORK_A, FORK_B = "127.0.0.4", "127.0.0.5"


def fork_config(low, high):
    """config() with a registrar: bob's two phones are both rung (RFC 3261 16.6)."""
    return config(low, high).replace('loadmodule "rtpproxy"\n', (
        'loadmodule "usrloc"\nloadmodule "registrar"\nloadmodule "rtpproxy"\n'
        'modparam("usrloc", "db_mode", 0)\n')).replace(
        "route {\n", 'route {\n    if (method == "REGISTER") { save("location"); exit; }\n', 1
    ).replace('        t_on_reply("1");\n', (
        '        t_on_reply("1");\n'
        '        if (uri == myself && !lookup("location")) {\n'
        '            sl_send_reply("404", "Not Found");\n'
        '            exit;\n'
        '        }\n'))


def start_fork(tmp_path, scenario, ip, rtp_port, name):
    """A sipp UAS at ``ip`` whose SDP names ``ip:rtp_port`` (a socket of the test)."""
    with UdpPeer(host=ip) as probe:
        port = probe.port
    ports = tmp_path / f"{name}.csv"        # the scenario's [field0]
    ports.write_text(f"SEQUENTIAL\n{rtp_port};\n")
    run = sipnet.start_sipp(["-sf", sipnet.SCENARIOS / scenario, "-t", "u1", "-i", ip,
                             "-p", port, "-m", 1, "-inf", ports, "-mp", sipnet.free_port()],
                            workdir=tmp_path, timeout=30, name=name, trace_msg=True)
    sipnet.wait_bound("udp", socket.AF_INET, port, 10, run.proc, what=f"sipp {name}")
    run.host, run.port = ip, port
    return run


def in_dialog(method, ruri, route, from_line, to_line, call_id, cseq, peer):
    return ("\r\n".join([
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {peer.host}:{peer.port};branch={sipnet.new_branch()};rport",
        "Max-Forwards: 70", f"Route: {route}", f"From: {from_line}", f"To: {to_line}",
        f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", "Content-Length: 0"])
        + "\r\n\r\n").encode()


def relayed(sock, timeout=3.0):
    """The next datagram ``sock`` receives (data, source), None after ``timeout`` s."""
    sock.settimeout(timeout)
    try:
        return sock.recvfrom(2048)
    except socket.timeout:
        return None


def test_a_forked_call_carries_each_forks_early_media_and_then_the_answer(two_homed, tmp_path):
    """bob has two phones (sipp at 127.0.0.4 and .5); both answer the INVITE with a 183 and
    SDP (early media), then the first answers and the second is CANCELled.  RTP sent from
    each phone's announced address reaches the caller from the relay port that phone's 183
    named, and the caller's RTP to each of those ports reaches that phone only; after the
    answer the other phone's port is closed and its packets reach no one; after BYE every
    relay socket is closed.  Before forks had legs of their own, both 183s named one port."""
    low = 30000 + (sipnet.free_port() % 20000) & ~1
    server = two_homed(fork_config(low, low + 99))
    wan = (WAN, server.port)
    with UdpPeer(host=CALLER) as alice, UdpPeer(host=CALLER) as alice_rtp, \
            UdpPeer(host=FORK_A) as a_rtp, UdpPeer(host=FORK_B) as b_rtp, \
            start_fork(tmp_path, "uas_early_answer.xml", FORK_A, a_rtp.port, "fork-a") as a, \
            start_fork(tmp_path, "uas_early_cancel.xml", FORK_B, b_rtp.port, "fork-b") as b:
        for uas in (a, b):
            sipnet.register(server.addr, "bob", uas.host, uas.port, workdir=tmp_path)
        before = fds(server.pid)
        bob_uri = f"sip:bob@{WAN}:{server.port}"
        invite = make_request("INVITE", bob_uri, via=(alice.host, alice.port), to=bob_uri,
                              from_=f"sip:alice@{CALLER}",
                              headers=[f"Contact: <sip:alice@{CALLER}:{alice.port}>",
                                       "Content-Type: application/sdp"],
                              body=sdp(CALLER, alice_rtp.port))
        alice.send(invite, wan)
        early = {}          # the phone's address -> the 183 the caller got from it
        got = alice.recv_until(lambda m: status_of(m) == 183 and (early.setdefault(
            header(m, "Contact").split("@")[1].split(":")[0], m) and len(early) == 2), 10)
        assert sorted(early) == [FORK_A, FORK_B], got
        relay_a, relay_b = media_of(early[FORK_A]), media_of(early[FORK_B])
        assert relay_a[0] == relay_b[0] == WAN and relay_a[1] != relay_b[1], (relay_a, relay_b)
        (shown,) = json.loads(ctl(server, "rtpproxy", "--json"))["sessions"]
        ip, port = shown["forks"][0]["streams"][0][1]["local"].split(":")
        shared = (ip, int(port))                # offered to both phones in the INVITE
        assert shared[0] == LAN and fds(server.pid) == before + 6

        # early media: each phone's packets reach the caller from that phone's port
        b_rtp.send(b"B-early", shared)
        assert relayed(alice_rtp.sock) == (b"B-early", relay_b)
        a_rtp.send(b"A-early", shared)
        assert relayed(alice_rtp.sock) == (b"A-early", relay_a)
        # and the caller's, sent to the port of one 183's answer, reach that phone only
        alice_rtp.send(b"to-B", relay_b)
        assert relayed(b_rtp.sock) == (b"to-B", shared)
        alice_rtp.send(b"to-A", relay_a)
        assert relayed(a_rtp.sock) == (b"to-A", shared)

        # the caller's INFO in A's early dialog is A's cue to answer (uas_early_answer.xml)
        m183 = early[FORK_A]
        route = header(m183, "Record-Route")
        a_uri = header(m183, "Contact").strip("<>")
        call_id, from_line, to_a = header(invite, "Call-ID"), header(invite, "From"), \
            header(m183, "To")
        alice.send(in_dialog("INFO", a_uri, route, from_line, to_a, call_id, 2, alice), wan)
        got = alice.recv_until(lambda m: status_of(m) == 200
                               and header(m, "CSeq").endswith("INVITE"), 10)
        assert got and header(got[-1], "CSeq").endswith("INVITE"), got
        ok = got[-1]
        assert media_of(ok) == relay_a          # the answer: A's port, as its 183 said
        alice.send(in_dialog("ACK", a_uri, route, from_line, to_a, call_id, 1, alice), wan)
        assert b.wait(timeout=15).received("CANCEL") == 1
        # B's fork is closed with the answer: its sockets gone, its port free
        assert fds(server.pid) == before + 4
        assert bindable(WAN, relay_b[1]) and bindable(WAN, relay_b[1] + 1)
        b_rtp.send(b"B-late", shared)           # B's media reaches no one now ...
        a_rtp.send(b"A-talk", shared)           # ... A's goes on (after B's: same socket)
        assert relayed(alice_rtp.sock) == (b"A-talk", relay_a)
        alice_rtp.send(b"to-A-again", relay_a)
        assert relayed(a_rtp.sock) == (b"to-A-again", shared)
        c = counters(server)
        assert (c["rtp_sessions"], c["rtp_forks"]) == (1, 2), c
        assert c["rtp_packets"] == 6 and c["rtp_dropped"] >= 1, c     # B-late dropped

        alice.send(in_dialog("BYE", a_uri, route, from_line, to_a, call_id, 3, alice), wan)
        got = alice.recv_until(lambda m: status_of(m) == 200
                               and header(m, "CSeq").endswith("BYE"), 10)
        assert got and header(got[-1], "CSeq").endswith("BYE"), got
        assert counters(server)["rtp_sessions_active"] == 0
        assert fds(server.pid) == before
        for port in (relay_a[1], relay_a[1] + 1, shared[1], shared[1] + 1):
            assert bindable(WAN, port) and bindable(LAN, port), port
        a.wait(timeout=15).assert_ok(1)
    assert b.wait().successful
