"""The transports over loopback: TCP limits (message size, connection count, idle lifetime),
TCP framing across and within writes, answers on the connection a request came on, and IPv6.

Globals used (serlite/script/compiler.py GLOBALS, read by serlite/server.py):
max_message_size, tcp_max_connections, tcp_connection_lifetime (the slowloris limits:
test_abuse.py).
"""

import time

import pytest

from . import sipnet
from .sipnet import (V6, TcpPeer, UdpPeer, hostport, is_final, is_request, make_request,
                     request_line, response_to, status_of)

SEED = sipnet.SEED_CFG.read_text()


def seed_with(*globals_):
    return "\n".join(globals_) + "\n" + SEED


def tcp_request(method, server_addr, tcp, *, user="ping", body=b"", headers=(), rport=True,
                via=None):
    uri = f"sip:{user}@{hostport(*server_addr)}"
    return make_request(method, uri, via=via or (tcp.host, tcp.port), to=uri, transport="TCP",
                        body=body, headers=headers, rport=rport)


def answered(tcp, req, timeout=2.0):
    """Send req on the connection and return its final answer (None if none came)."""
    tcp.send(req)
    call_id = sipnet.header_values(req, "call-id")[0]
    got = tcp.recv_until(lambda m: is_final(m) and sipnet.header_values(m, "call-id") == [call_id],
                         timeout)
    return got[-1] if got and is_final(got[-1]) else None


# --- limits ---------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["body", "headers"])
def test_tcp_message_over_max_message_size_gets_513_and_close(ser, where):
    server = ser(seed_with("max_message_size=4096"))
    with TcpPeer(server.addr) as tcp:
        if where == "body":
            def build(n):
                return tcp_request("INVITE", server.addr, tcp, body=b"a" * n,
                                   headers=["Content-Type: application/sdp"])
        else:
            def build(n):
                return tcp_request("INVITE", server.addr, tcp, headers=[f"X-Pad: {'p' * n}"])
        req = build(6000 - len(build(1000)) + 1000)
        assert len(req) == 6000
        tcp.send(req)
        closed = tcp.wait_closed(3.0)
        msgs = tcp.recv_until(None, 0)
    assert [status_of(m) for m in msgs] == [513], msgs
    assert closed, "serlite kept the connection open after 513"
    # the server lives on, and a message under the limit is fine
    with TcpPeer(server.addr) as tcp:
        assert status_of(answered(tcp, tcp_request("OPTIONS", server.addr, tcp))) == 404


def test_tcp_max_connections(ser):
    server = ser(seed_with("tcp_max_connections=4"))
    conns = [TcpPeer(server.addr) for _ in range(4)]
    try:
        for tcp in conns:       # each accepted and served
            assert status_of(answered(tcp, tcp_request("OPTIONS", server.addr, tcp))) == 404
        with TcpPeer(server.addr) as extra:
            assert extra.wait_closed(3.0), "the fifth connection was not closed by serlite"
            assert extra.recv_until(None, 0) == []
        for tcp in conns:       # the first four still work
            assert status_of(answered(tcp, tcp_request("OPTIONS", server.addr, tcp))) == 404
    finally:
        for tcp in conns:
            tcp.close()


def test_idle_tcp_connection_closed_after_lifetime(ser):
    # serlite sweeps every lifetime/4 s, so the close comes 2 to 2.5 s after the last message
    server = ser(seed_with("tcp_connection_lifetime=2"))
    with TcpPeer(server.addr) as tcp:
        assert status_of(answered(tcp, tcp_request("OPTIONS", server.addr, tcp))) == 404
        idle_since = time.monotonic()
        assert tcp.wait_closed(5.0), "the idle connection was not closed within 5 s"
        idle = time.monotonic() - idle_since
    assert 1.9 <= idle <= 3.5, f"closed after {idle:.2f} s idle, lifetime 2 s"


# --- framing --------------------------------------------------------------------------------

def test_two_messages_in_one_tcp_write(ser):
    server = ser(SEED)
    with TcpPeer(server.addr) as tcp:
        a = tcp_request("OPTIONS", server.addr, tcp, user="one")
        b = tcp_request("OPTIONS", server.addr, tcp, user="two", body=b"hello",
                        headers=["Content-Type: text/plain"])
        tcp.send(a + b)
        got = tcp.recv_until(None, 0)
        ids = {sipnet.header_values(m, "call-id")[0] for m in (a, b)}
        while len(got) < 2:
            more = tcp.recv_until(is_final, 2.0)
            assert more, f"only {len(got)} answer(s) to two messages in one write"
            got += more
    assert {sipnet.header_values(m, "call-id")[0] for m in got} == ids
    assert [status_of(m) for m in got] == [404, 404]


def test_one_message_over_several_tcp_writes(ser):
    # After each part, two OPTIONS over UDP are answered in turn: serlite handles every
    # socket poll() reports before it polls again, so by the second answer it has read the
    # part already sent. The message is thus read in pieces, not whole.
    server = ser(SEED)
    with TcpPeer(server.addr) as tcp:
        req = tcp_request("OPTIONS", server.addr, tcp, body=b"0123456789" * 10,
                          headers=["Content-Type: text/plain"])
        head_end = req.index(b"\r\n\r\n")
        parts = [req[:20], req[20:head_end + 2], req[head_end + 2:head_end + 30],
                 req[head_end + 30:]]
        for part in parts[:-1]:
            tcp.send(part)
            sipnet.barrier(server.addr)
            sipnet.barrier(server.addr)
            assert tcp.recv_until(None, 0) == [], "answered before the message was complete"
        tcp.send(parts[-1])
        got = tcp.recv_until(is_final, 2.0)
    assert got and status_of(got[-1]) == 404, got


# --- answers over the connection the request came on (RFC 3261 18.2.2) --------------------

def test_local_reply_goes_back_over_the_same_connection(ser):
    # the Via names a port nobody listens on: only the open connection reaches the client
    server = ser(SEED)
    with TcpPeer(server.addr) as tcp:
        nobody = sipnet.free_port("tcp")
        req = tcp_request("OPTIONS", server.addr, tcp, rport=False, via=("127.0.0.1", nobody))
        assert status_of(answered(tcp, req)) == 404


def test_relayed_response_goes_back_over_the_same_connection(ser):
    server = ser(SEED)
    with UdpPeer() as bob, TcpPeer(server.addr) as tcp:
        with UdpPeer() as ua:
            aor = f"sip:bob@{hostport(*server.addr)}"
            ua.send(make_request("REGISTER", f"sip:{hostport(*server.addr)}",
                                 via=(ua.host, ua.port), to=aor,
                                 headers=[f"Contact: <sip:bob@127.0.0.1:{bob.port}>"]),
                    server.addr)
            assert status_of(ua.recv_until(is_final, 2.0)[-1]) == 200
        nobody = sipnet.free_port("tcp")
        invite = tcp_request("INVITE", server.addr, tcp, user="bob", rport=False,
                             via=("127.0.0.1", nobody))
        tcp.send(invite)
        fwd = bob.recv_until(is_request("INVITE"), 2.0)
        assert fwd and request_line(fwd[-1])[0] == "INVITE", fwd
        bob.send(response_to(fwd[-1], 180, "Ringing", to_tag="b"), server.addr)
        bob.send(response_to(fwd[-1], 486, "Busy Here", to_tag="b"), server.addr)
        got = tcp.recv_until(is_final, 2.0)
    assert [status_of(m) for m in got] == [100, 180, 486], got


# --- IPv6 ---------------------------------------------------------------------------------

@pytest.mark.skipif(not sipnet.ipv6_available(), reason="::1 cannot be bound on this machine")
def test_ipv6_udp_and_tcp_answered(ser):
    server = ser(SEED, ipv6=True)
    addr = server.addr6
    with UdpPeer(V6) as ua:
        ua.send(sipnet.options(addr, ua), addr)
        got = ua.recv_until(is_final, 2.0)
    assert got and status_of(got[-1]) == 404, got
    assert sipnet.header_values(got[-1], "via")[0].startswith(f"SIP/2.0/UDP [::1]:{ua.port};")
    with TcpPeer(addr) as tcp:
        assert tcp.host == "::1"
        assert status_of(answered(tcp, tcp_request("OPTIONS", addr, tcp))) == 404


def test_513_also_when_the_header_section_alone_is_too_large(ser):
    # The same 6000-byte INVITE as above, its header section not yet complete when serlite
    # passes the limit: it has Via, From, To, Call-ID and CSeq, so it can be answered.
    server = ser(seed_with("max_message_size=4096"))
    with TcpPeer(server.addr) as tcp:
        req = tcp_request("INVITE", server.addr, tcp, headers=[f"X-Pad: {'p' * 5000}"])
        tcp.send(req[:5000])
        closed = tcp.wait_closed(3.0)
        msgs = tcp.recv_until(None, 0)
    assert closed
    assert [status_of(m) for m in msgs] == [513], msgs


def test_stateless_relay_answer_goes_back_over_the_same_connection(ser):
    # forward() keeps no transaction: rport (RFC 3581) names the connection's port
    with UdpPeer() as hop:
        server = ser("debug=3\n" 'loadmodule "/usr/lib/ser/modules/sl.so"\n'
                     f"route {{ forward(127.0.0.1, {hop.port}); }}\n")
        with TcpPeer(server.addr) as tcp:
            nobody = sipnet.free_port("tcp")
            tcp.send(tcp_request("MESSAGE", server.addr, tcp, user="carol",
                                 via=("127.0.0.1", nobody)))
            fwd = hop.recv_until(is_request("MESSAGE"), 2.0)
            assert fwd and is_request("MESSAGE")(fwd[-1]), fwd
            hop.send(response_to(fwd[-1], 200, "OK", to_tag="c"), server.addr)
            got = tcp.recv_until(is_final, 2.0)
    assert [status_of(m) for m in got] == [200], got


def test_udp_backlog_is_how_full_the_receive_buffer_is():
    """transport._filled: the fraction tm's shed_backlog is compared with, from the kernel's
    own accounting (a real socket: 0 when empty, growing with what waits unread)."""
    import socket

    from serlite.transport import _filled
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        assert _filled(rx, 0.0) == 0.0
        for _ in range(20):
            tx.sendto(b"x" * 500, rx.getsockname())
        some = _filled(rx, 0.0)
        for _ in range(20):
            tx.sendto(b"x" * 500, rx.getsockname())
        more = _filled(rx, some)
        assert 0.0 < some < more <= 1.0
        for _ in range(40):
            rx.recv(2048)
        assert _filled(rx, more) == 0.0


def test_udp_backlog_is_each_sockets_own():
    """Listener.backlog: each UDP socket's after its last read, so an idle socket read empty
    (say the LAN's) neither hides a flooded one (the WAN's) nor is taken for one."""
    import socket

    from serlite.loop import Loop
    from serlite.transport import RECV_BATCH, Transport

    got = []
    transport = Transport(Loop(), lambda data, source: got.append(data))
    try:
        flooded = transport.bind("udp", "127.0.0.1", 0)
        idle = transport.bind("udp", "127.0.0.1", 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for _ in range(2 * RECV_BATCH):
                tx.sendto(b"INVITE " + b"x" * 500, ("127.0.0.1", flooded.port))
            transport._read_udp(flooded)            # one batch: as many again still wait
            assert len(got) == RECV_BATCH
            behind = flooded.backlog
            assert behind > 0.0
            transport._read_udp(idle)               # nothing there
            assert flooded.backlog == behind and idle.backlog == 0.0
            transport._read_udp(flooded)
            transport._read_udp(flooded)            # read empty: caught up
            assert len(got) == 2 * RECV_BATCH
            assert flooded.backlog == 0.0
    finally:
        transport.close()


def test_mhomed_picks_the_socket_on_the_kernels_source_address():
    """SER's mhomed: toward a 127/8 peer the kernel's route gives 127.0.0.1 as the source, so
    with mhomed the 127.0.0.1 socket is chosen though 127.0.0.2's is first; without it the
    first one (SER's mhomed=0).  The route is asked once per destination, in a bounded
    table."""
    import socket

    from serlite import transport as tmod
    from serlite.loop import Loop
    from serlite.transport import Transport

    t = Transport(Loop(), lambda data, source: None)
    try:
        wan = t.bind("udp", "127.0.0.2", 0)
        lan = t.bind("udp", "127.0.0.1", 0)
        assert t.listener_for("udp", socket.AF_INET, "127.0.0.9") is wan
        t.mhomed = True
        assert t.listener_for("udp", socket.AF_INET, "127.0.0.9") is lan
        assert t._route_sources == {"127.0.0.9": "127.0.0.1"}
        assert t.listener_for("udp", socket.AF_INET) is wan         # no destination: first
        assert t.listener_for("tcp", socket.AF_INET, "127.0.0.9") is None
        for i in range(tmod._ROUTE_CACHE_MAX + 5):
            t.listener_for("udp", socket.AF_INET, f"127.1.{i // 250}.{i % 250 + 1}")
        assert len(t._route_sources) <= tmod._ROUTE_CACHE_MAX
    finally:
        t.close()
