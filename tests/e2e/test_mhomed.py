"""SER's ``mhomed`` and rr's double Record-Route, on the real server with two loopback
addresses: 127.0.0.2 listed first (the WAN address) and 127.0.0.1 (the LAN one).  Toward any
127/8 peer the kernel's route gives 127.0.0.1 as the source, so with ``mhomed=1`` a request for
the callee on 127.0.0.4 leaves by the 127.0.0.1 socket, whatever the listeners' order; with
``mhomed=0`` by the first one, 127.0.0.2, as SER does.  Leaving by another socket than it came
in on, the INVITE records both (the outgoing one on top), and each side's in-dialog request
reaches the other through the address it was given.  The namespace case (a router's LAN and
WAN, a second home's NAT) is tests/e2e/test_audio.py's LAN->home2 call."""

import re

import pytest

from . import sipnet
from .sipnet import UdpPeer, is_final, is_request, make_request, response_to, status_of

CALLER, CALLEE = "127.0.0.3", "127.0.0.4"
WAN, LAN = "127.0.0.2", "127.0.0.1"

CONFIG = """
mhomed={mhomed}
loadmodule "sl"
loadmodule "tm"
loadmodule "rr"
modparam("rr", "sign_routes", 1)
route {{
    if (loose_route()) {{
        t_relay();
        exit;
    }}
    if (method == "INVITE") {{
        record_route();
    }}
    t_relay();
}}
"""


class WanFirst(sipnet.SerServer):
    """serlite listening on udp WAN:port first, then the harness's 127.0.0.1 ones."""

    def command(self):
        cmd = super().command()
        at = cmd.index("-l")
        return cmd[:at] + ["-l", f"udp:{WAN}:{self.port}"] + cmd[at:]


@pytest.fixture
def server(request, tmp_path):
    servers = []
    request.node._serlite_servers = servers

    def start(mhomed):
        s = WanFirst(tmp_path / "mhomed", CONFIG.format(mhomed=mhomed), name="mhomed",
                     port=sipnet.free_port_pair())
        servers.append(s)
        return s.start()
    yield start
    for s in servers:
        s.stop()


def record_routes(msg):
    return re.findall(rb"^Record-Route: (<[^>]*>)\r$", msg, re.M)


def top_via(msg):
    return re.search(rb"^Via: SIP/2.0/UDP ([^;]+);", msg, re.M).group(1).decode()


def receive(peer, timeout=5.0):
    peer.sock.settimeout(timeout)
    return peer.sock.recvfrom(65535)


def header(msg, name):
    return re.search(rb"^" + name.encode() + rb": (.*)\r$", msg, re.M).group(1).decode()


def in_dialog(method, ruri, sender, route_set, call_id, from_line, to_line, cseq):
    headers = "".join(f"Route: {r.decode()}\r\n" for r in route_set)
    return (f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {sender.host}:{sender.port};branch={sipnet.new_branch()};rport\r\n"
            f"Max-Forwards: 70\r\n{headers}From: {from_line}\r\nTo: {to_line}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n").encode()


def test_mhomed_0_sends_from_the_first_socket_and_records_one(server):
    s = server(0)
    with UdpPeer(host=CALLER) as alice, UdpPeer(host=CALLEE) as bob:
        bob_uri = f"sip:bob@{CALLEE}:{bob.port}"
        alice.send(make_request("INVITE", bob_uri, via=(alice.host, alice.port), to=bob_uri),
                   (WAN, s.port))
        invite, src = receive(bob)
        assert src == (WAN, s.port) and top_via(invite) == f"{WAN}:{s.port}", invite
        assert len(record_routes(invite)) == 1, invite


def test_mhomed_1_sends_from_the_routed_socket_and_records_both(server):
    s = server(1)
    with UdpPeer(host=CALLER) as alice, UdpPeer(host=CALLEE) as bob:
        bob_uri = f"sip:bob@{CALLEE}:{bob.port}"
        alice_uri = f"sip:alice@{CALLER}:{alice.port}"
        invite = make_request("INVITE", bob_uri, via=(alice.host, alice.port), to=bob_uri,
                              from_=f"sip:alice@{CALLER}",
                              headers=[f"Contact: <{alice_uri}>"])
        alice.send(invite, (WAN, s.port))
        got, src = receive(bob)
        # left by the LAN socket (the kernel's source toward the callee), and says so
        assert src == (LAN, s.port) and top_via(got) == f"{LAN}:{s.port}", got
        rr = record_routes(got)
        assert len(rr) == 2, got
        assert rr[0].startswith(f"<sip:{LAN}:{s.port};".encode()), rr        # callee's side
        assert rr[1].startswith(f"<sip:{WAN}:{s.port};".encode()), rr        # caller's side
        assert all(b";sig=" in r for r in rr), rr
        ok = response_to(got, 200, "OK", to_tag="bobtag", headers=[f"Contact: <{bob_uri}>"])
        bob.send(ok, (LAN, s.port))
        answers = alice.recv_until(is_final, 5)
        assert answers and status_of(answers[-1]) == 200, answers
        call_id, caller_tag = header(invite, "Call-ID"), header(invite, "From")
        callee_tag = header(answers[-1], "To")
        # the caller's route set is the Record-Route reversed: first the WAN entry
        alice.send(in_dialog("ACK", bob_uri, alice, rr[::-1], call_id, caller_tag, callee_tag,
                             1), (WAN, s.port))
        assert bob.recv_until(is_request("ACK"), 5), "the caller's ACK did not arrive"
        # the callee's BYE goes to the top entry (LAN) and is routed on to the caller
        bob.send(in_dialog("BYE", alice_uri, bob, rr, call_id, callee_tag, caller_tag, 1),
                 (LAN, s.port))
        got = alice.recv_until(is_request("BYE"), 5)
        assert got and is_request("BYE")(got[-1]), got
        assert b"\r\nRoute:" not in got[-1], got[-1]     # both of ours taken off
