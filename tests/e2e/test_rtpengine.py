"""serlite with an external relay: a real rtpengine (tests/e2e/rtpengine.py) over the rtpproxy
control protocol (``rtpproxy_sock``), on loopback.  The phones are raw UDP peers as in
test_rtpproxy.py: the caller on 127.0.0.3 reaches serlite's "WAN" address 127.0.0.2, the
callee on 127.0.0.4 is reached from its "LAN" address 127.0.0.1; rtpengine's interfaces are
``internal/127.0.0.1`` and ``external/127.0.0.2``, chosen by the script's ``i``/``e`` flags.

Each SDP reaches the other phone naming rtpengine's port on the interface facing it; RTP
flows through rtpengine both ways; after BYE rtpengine holds no session.  A relay that does
not answer holds the INVITE at most rtpproxy_tout * rtpproxy_retr seconds, while serlite
answers other requests at once; a relay that is not there at all costs nothing."""

import json
import re
import socket
import struct
import time

import pytest

from . import sipnet
from .rtpengine import RtpEngine
from .sipnet import UdpPeer, is_final, is_request, make_request, response_to, status_of
from .test_rtpproxy import CALLEE, CALLER, LAN, WAN, ctl, counters, header, media_of, sdp
from .test_rtpproxy import two_homed  # noqa: F401  (the fixture)

PROBE_MS = 250      # an OPTIONS answered within this while an INVITE waits for the relay


def config(sock, extra=""):
    return f"""
debug=3
loadmodule "sl"
loadmodule "tm"
loadmodule "rr"
loadmodule "rtpproxy"
modparam("rtpproxy", "rtpproxy_sock", "{sock}")
{extra}
route {{
    if (method == "OPTIONS") {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (loose_route()) {{
        route(media);
        t_relay();
        exit;
    }}
    if (method == "INVITE") {{
        record_route();
        t_on_reply("1");
    }}
    if (method == "INVITE" || method == "CANCEL") {{
        route(media);
    }}
    t_relay();
}}
# the direction: from the network of the message's sender to the other one
route[media] {{
    if (src_ip == {CALLER}) {{
        rtpproxy_manage("ei");
    }} else {{
        rtpproxy_manage("ie");
    }}
}}
onreply_route[1] {{
    route(media);
}}
"""


@pytest.fixture
def rtpengine(tmp_path):
    low = 40000 + (sipnet.free_port() % 10000) & ~1
    engine = RtpEngine(tmp_path, internal=LAN, external=WAN, port_min=low,
                       port_max=low + 99).start()
    engine.range = (low, low + 99)
    yield engine
    engine.stop()


def rtp(seq, payload):
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234abcd) + payload


class Call:
    """The caller's INVITE and what follows, by hand."""

    def __init__(self, server, alice, bob, alice_rtp, bob_rtp):
        self.server, self.alice, self.bob = server, alice, bob
        self.alice_rtp, self.bob_rtp = alice_rtp, bob_rtp
        self.wan = (WAN, server.port)
        self.bob_uri = f"sip:bob@{CALLEE}:{bob.port}"

    def invite(self):
        self.request = make_request(
            "INVITE", self.bob_uri, via=(self.alice.host, self.alice.port), to=self.bob_uri,
            from_=f"sip:alice@{CALLER}",
            headers=[f"Contact: <sip:alice@{CALLER}:{self.alice.port}>",
                     "Content-Type: application/sdp"],
            body=sdp(CALLER, self.alice_rtp.port))
        self.sent_at = time.monotonic()
        self.alice.send(self.request, self.wan)

    def offer(self, timeout=5):
        got = self.bob.recv_until(is_request("INVITE"), timeout)
        assert got and is_request("INVITE")(got[-1]), got
        self.offer_at = time.monotonic()
        return got[-1]

    def answer(self, offer):
        self.answer_sent_at = time.monotonic()
        self.bob.send(response_to(offer, 200, "OK", to_tag="bobtag",
                                  headers=[f"Contact: <{self.bob_uri}>",
                                           "Content-Type: application/sdp"],
                                  body=sdp(CALLEE, self.bob_rtp.port)), self.server.addr)
        got = self.alice.recv_until(is_final, 5)
        assert got and status_of(got[-1]) == 200, got
        self.ok_at = time.monotonic()
        self.ok = got[-1]
        return self.ok

    def in_dialog(self, method, cseq):
        return ("\r\n".join([
            f"{method} {self.bob_uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {CALLER}:{self.alice.port};branch={sipnet.new_branch()};rport",
            "Max-Forwards: 70", f"Route: {header(self.ok, 'Record-Route')}",
            f"From: {header(self.request, 'From')}", f"To: {header(self.ok, 'To')}",
            f"Call-ID: {header(self.request, 'Call-ID')}", f"CSeq: {cseq} {method}",
            "Content-Length: 0"]) + "\r\n\r\n").encode()

    def hang_up(self):
        self.alice.send(self.in_dialog("BYE", 2), self.wan)
        got = self.bob.recv_until(is_request("BYE"), 5)
        assert got and is_request("BYE")(got[-1]), got
        self.bob.send(response_to(got[-1], 200, "OK"), self.server.addr)
        assert [status_of(m) for m in self.alice.recv_until(is_final, 5)][-1:] == [200]


def peers():
    return (UdpPeer(host=CALLER), UdpPeer(host=CALLEE), UdpPeer(host=CALLER),
            UdpPeer(host=CALLEE))


def test_a_call_through_rtpengine_carries_rtp_both_ways_and_ends_its_session(two_homed,
                                                                              rtpengine,
                                                                              tmp_path):
    server = two_homed(config(rtpengine.sock, f"""loadmodule "acc"
modparam("acc", "history_file", "{tmp_path / 'calls'}")"""))
    low, high = rtpengine.range
    alice, bob, alice_rtp, bob_rtp = peers()
    with alice, bob, alice_rtp, bob_rtp:
        call = Call(server, alice, bob, alice_rtp, bob_rtp)
        call.invite()
        offer = call.offer()
        # the callee is told rtpengine's port on its internal interface (flags "ei")
        relay_b = media_of(offer)
        assert relay_b[0] == LAN and low <= relay_b[1] <= high, offer
        assert rtpengine.sessions() == 1
        ok = call.answer(offer)
        relay_a = media_of(ok)
        assert relay_a[0] == WAN and low <= relay_a[1] <= high, ok
        alice.send(call.in_dialog("ACK", 1), call.wan)
        assert bob.recv_until(is_request("ACK"), 5), "the ACK did not reach the callee"

        # media through rtpengine, each way (rtpengine learns each side from its packets)
        for i in range(5):
            alice_rtp.send(rtp(i, b"A" * 160), relay_a)
            data, src = bob_rtp.sock.recvfrom(2048)
            assert (data[12:], src) == (b"A" * 160, relay_b)
        for i in range(3):
            bob_rtp.send(rtp(i, b"B" * 160), relay_b)
            data, src = alice_rtp.sock.recvfrom(2048)
            assert (data[12:], src) == (b"B" * 160, relay_a)
        c = counters(server)
        assert c["rtpp_commands"] >= 4 and c["rtpp_unrelayed"] == 0, c   # V, VF, U, L
        shown = json.loads(ctl(server, "rtpproxy", "--json"))
        assert shown["external"] == rtpengine.sock and shown["external_calls"] == 1, shown
        assert "external relay" in ctl(server, "rtpproxy")
        # the call going on shows relayed by rtpengine, not "direct" (its packets: rtpengine's)
        (active,) = json.loads(ctl(server, "calls", "--json"))["active"]
        assert active["media"] == {"call_id": active["call_id"], "external": rtpengine.sock}
        assert f"relayed by {rtpengine.sock}" in ctl(server, "calls")

        call.hang_up()
        deadline = time.monotonic() + 5     # the D goes out with the BYE, answered at once
        while rtpengine.sessions() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rtpengine.sessions() == 0
        assert counters(server)["rtpp_timeouts"] == 0


def wait_no_sessions(rtpengine, seconds=5):
    deadline = time.monotonic() + seconds
    while rtpengine.sessions() and time.monotonic() < deadline:
        time.sleep(0.05)
    return rtpengine.sessions()


def test_a_rejected_call_and_a_cancelled_one_leave_no_session(two_homed, rtpengine):
    server = two_homed(config(rtpengine.sock))
    alice, bob, alice_rtp, bob_rtp = peers()
    with alice, bob, alice_rtp, bob_rtp:
        call = Call(server, alice, bob, alice_rtp, bob_rtp)
        call.invite()
        offer = call.offer()
        assert rtpengine.sessions() == 1
        bob.send(response_to(offer, 486, "Busy Here", to_tag="busy"), server.addr)
        got = alice.recv_until(is_final, 5)
        assert got and status_of(got[-1]) == 486, got
        assert wait_no_sessions(rtpengine) == 0
        call = Call(server, alice, bob, alice_rtp, bob_rtp)
        call.invite()
        offer = call.offer()
        assert rtpengine.sessions() == 1
        lines = [line for line in call.request.split(b"\r\n\r\n")[0].decode().split("\r\n")
                 if not line.startswith(("Content-", "Contact:"))]
        lines[0] = lines[0].replace("INVITE ", "CANCEL ", 1)
        cancel = re.sub(r"CSeq: (\d+) INVITE", r"CSeq: \1 CANCEL", "\r\n".join(lines))
        alice.send((cancel + "\r\nContent-Length: 0\r\n\r\n").encode(), call.wan)
        assert bob.recv_until(is_request("CANCEL"), 5), "the CANCEL did not reach the callee"
        assert wait_no_sessions(rtpengine) == 0


def test_the_setup_delay_rtpengine_adds(two_homed, rtpengine, capsys):
    """Measured, not bounded tightly: the INVITE's and the 200's way through serlite with the
    relay's round trip (U, L) in it, against the same without rtpproxy_manage."""
    def setup_times(server, calls=10):
        times = []
        for _ in range(calls):
            alice, bob, alice_rtp, bob_rtp = peers()
            with alice, bob, alice_rtp, bob_rtp:
                call = Call(server, alice, bob, alice_rtp, bob_rtp)
                call.invite()
                offer = call.offer()
                call.answer(offer)
                times.append(((call.offer_at - call.sent_at) * 1000,
                              (call.ok_at - call.answer_sent_at) * 1000))
                call.alice.send(call.in_dialog("ACK", 1), call.wan)
                call.hang_up()
        times.sort(key=sum)
        return times[len(times) // 2]
    relayed = setup_times(two_homed(config(rtpengine.sock)))
    plain = setup_times(two_homed(config(rtpengine.sock).replace(
        'rtpproxy_manage("ei");', "").replace('rtpproxy_manage("ie");', "")))
    with capsys.disabled():
        print(f"\nsetup through serlite, median of 10 calls: INVITE {relayed[0]:.2f} ms, "
              f"200 {relayed[1]:.2f} ms with rtpengine; {plain[0]:.2f} ms, {plain[1]:.2f} "
              f"ms without the relay")
    assert relayed[0] < 1000 and relayed[1] < 1000


def test_a_relay_that_does_not_answer_holds_the_invite_not_the_server(two_homed):
    """A black hole where the relay should be (a socket that reads and never answers): the
    INVITE goes out unchanged after rtpproxy_tout * rtpproxy_retr = 2 s, and meanwhile an
    OPTIONS is answered at once."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.1", 0))
    sock = f"udp:127.0.0.1:{hole.getsockname()[1]}"
    server = two_homed(config(sock, 'modparam("rtpproxy", "rtpproxy_retr", 2)\n'
                                    'modparam("rtpproxy", "rtpproxy_disable_tout", 0)'))
    alice, bob, alice_rtp, bob_rtp = peers()
    with hole, alice, bob, alice_rtp, bob_rtp, UdpPeer(host=CALLER) as prober:
        deadline = time.monotonic() + 5     # the start-up V/VF time out first
        while "no reply from" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "no reply from" in server.log()
        call = Call(server, alice, bob, alice_rtp, bob_rtp)
        call.invite()
        probes = []
        while time.monotonic() - call.sent_at < 1.5:
            options = make_request("OPTIONS", f"sip:{WAN}:{server.port}",
                                   via=(prober.host, prober.port), to=f"sip:{WAN}")
            t0 = time.monotonic()
            prober.send(options, call.wan)
            got = prober.recv_until(is_final, 2)
            assert got and status_of(got[-1]) == 200, got
            probes.append((time.monotonic() - t0) * 1000)
        assert bob.recv_until(is_request("INVITE"), 0) == [], "the INVITE did not wait"
        offer = call.offer(timeout=3)
        waited = call.offer_at - call.sent_at
        assert 1.8 <= waited <= 3.0, waited
        assert media_of(offer) == (CALLER, alice_rtp.port)      # unchanged
        assert max(probes) < PROBE_MS, probes
        assert len(probes) >= 5, probes
        c = counters(server)
        assert c["rtpp_unrelayed"] == 1 and c["rtpp_timeouts"] >= 1, c
        # the relay got the command twice (two tries), with one cookie
        tries = []
        hole.settimeout(0.1)
        while True:
            try:
                tries.append(hole.recv(2048))
            except OSError:
                break
        u = [t for t in tries if b" U" in t]
        assert len(u) == 2 and u[0] == u[1], tries
        print(f"\nOPTIONS answered in max {max(probes):.1f} ms while the INVITE waited "
              f"{waited * 1000:.0f} ms")


def test_no_relay_listening_costs_the_call_nothing(two_homed):
    """Nothing on rtpproxy_sock: the start-up V is refused (ICMP), the relay is left alone,
    and calls go through at once with their own SDP."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    sock = f"udp:127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    server = two_homed(config(sock))
    alice, bob, alice_rtp, bob_rtp = peers()
    with alice, bob, alice_rtp, bob_rtp:
        time.sleep(0.3)
        call = Call(server, alice, bob, alice_rtp, bob_rtp)
        call.invite()
        offer = call.offer(timeout=2)
        assert call.offer_at - call.sent_at < PROBE_MS / 1000
        assert media_of(offer) == (CALLER, alice_rtp.port)
    assert re.search(r"refuses commands", server.log())
