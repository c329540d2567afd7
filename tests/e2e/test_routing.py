"""Proxy routing over UDP on loopback: record-routing and the route set (RFC 3261 16.4, 16.6,
16.12), Max-Forwards and Proxy-Require (16.3), Via handling (16.6 step 8, 18.2.1), responses
that are not ours (18.1.2), stateless forward(), and the script's textops, R-URI rewriting,
flags and conditions as the next hop sees them.

The next hop is a UdpPeer of the test: registered as bob for the seed config, or the target of
forward(127.0.0.1, PORT) in a config written around its port. Where nothing may arrive, an
OPTIONS probe answered by serlite (sipnet.barrier) marks the point after which whatever serlite
would have sent has arrived, and the peers are drained.
"""

import re
import secrets

import pytest

from . import sipnet
from .sipnet import (UdpPeer, has_status, hostport, is_final, is_request, make_request,
                     request_line, response_to, status_of)

SEED = sipnet.SEED_CFG.read_text()

# Everything goes to 127.0.0.1:@HOP@ by stateless forward(); OPTIONS to sip:ping@ is the
# barrier probe and answered here.
SCRIPT = """\
debug=3
loadmodule "/usr/lib/ser/modules/sl.so"
loadmodule "/usr/lib/ser/modules/textops.so"
route {
    if (method == "OPTIONS" && uri =~ "^sip:ping@") { sl_send_reply("200", "pong"); break; }
    if (src_ip == 127.0.0.0/8) append_hf("X-Src: loopback\\r\\n");
    if (src_ip == 10.0.0.0/8) append_hf("X-Src: ten\\r\\n");
    if (proto == udp) append_hf("X-Proto: udp\\r\\n");
    if (proto == tcp) append_hf("X-Proto: tcp\\r\\n");
    if (method == "MESSAGE") setflag(3);
    if (isflag(3)) append_hf("X-Flag3: set\\r\\n");
    if (isflag(4)) append_hf("X-Flag4: set\\r\\n");
    if (is_present_hf("User-Agent")) append_hf("X-Had-UA: yes\\r\\n");
    if (is_present_hf("X-Absent")) append_hf("X-Had-Absent: yes\\r\\n");
    remove_hf("User-Agent");
    if (search("Subject: .*foo")) append_hf("X-Search: hit\\r\\n");
    if (search("Subject: .*nomatch")) append_hf("X-Search: wrong\\r\\n");
    subst('/foo/bar/');
    append_hf("X-Hint: yes\\r\\n");
    if (uri =~ "^sip:rw@") { rewriteuri("sip:new@127.0.0.1:@HOP@"); }
    else if (uri =~ "^sip:host@") { rewritehost("127.0.0.1"); }
    else if (uri =~ "^sip:pre@") { prefix("00"); }
    else if (uri =~ "^sip:0049") { strip(4); };
    forward(127.0.0.1, @HOP@);
}
"""

MYSELF = """\
debug=3
alias="home.example"
alias=pbx.example:5999
loadmodule "/usr/lib/ser/modules/sl.so"
route {
    if (uri == myself) { sl_send_reply("200", "Mine"); break; }
    sl_send_reply("403", "Not Mine");
}
"""


def first(peer, pred, timeout=2.0, what="message"):
    got = peer.recv_until(pred, timeout)
    assert got and pred(got[-1]), f"no {what} within {timeout} s: {got!r}"
    return got[-1]


def hv(msg, name):
    return sipnet.header_values(msg, name)


def register(server, user, peer):
    aor = f"sip:{user}@{hostport(*server.addr)}"
    with UdpPeer() as ua:
        req = make_request("REGISTER", f"sip:{hostport(*server.addr)}", via=(ua.host, ua.port),
                           to=aor, headers=[f"Contact: <sip:{user}@127.0.0.1:{peer.port}>"])
        ua.send(req, server.addr)
        assert status_of(first(ua, is_final, what="answer to REGISTER")) == 200


def request(method, ruri, sender, *, to=None, headers=(), **kw):
    return make_request(method, ruri, via=(sender.host, sender.port), to=to or ruri,
                        from_="sip:alice@127.0.0.1", headers=headers, **kw)


@pytest.fixture
def peers():
    made = []

    def make(n):
        new = [UdpPeer() for _ in range(n)]
        made.extend(new)
        return new

    yield make
    for p in made:
        p.close()


@pytest.fixture
def seed(ser, peers):
    """serlite on the seed config, bob registered at a peer: (server, bob's peer, caller)."""
    server = ser(SEED)
    bob, caller = peers(2)
    register(server, "bob", bob)
    return server, bob, caller


def bob_uri(server):
    return f"sip:bob@{hostport(*server.addr)}"


# --- record-routing and the route set -----------------------------------------------------

def test_record_route_on_invite(seed):
    server, bob, caller = seed
    caller.send(request("INVITE", bob_uri(server), caller), server.addr)
    fwd = first(bob, is_request("INVITE"))
    rr = hv(fwd, "record-route")
    assert rr and re.match(rf"<sip:127\.0\.0\.1:{server.port};lr[;>=]", rr[0]), rr
    assert request_line(fwd)[1] == f"sip:bob@127.0.0.1:{bob.port}"


def test_in_dialog_request_loose_routed_to_the_uas(seed):
    server, bob, caller = seed
    target = f"sip:bob@127.0.0.1:{bob.port}"
    caller.send(request("BYE", target, caller, to=bob_uri(server),
                        headers=[f"Route: <sip:127.0.0.1:{server.port};lr>"]), server.addr)
    fwd = first(bob, is_request("BYE"))
    assert request_line(fwd)[1] == target
    assert hv(fwd, "route") == []


def test_loose_route_to_the_next_proxy(seed, peers):
    # 16.12: our Route entry goes, the next one is a loose router: it gets the request with
    # the Request-URI unchanged and its own Route entry still on top
    server, bob, caller = seed
    (proxy2,) = peers(1)
    target = f"sip:bob@127.0.0.1:{bob.port}"
    caller.send(request("BYE", target, caller, to=bob_uri(server),
                        headers=[f"Route: <sip:127.0.0.1:{server.port};lr>, "
                                 f"<sip:127.0.0.1:{proxy2.port};lr>"]), server.addr)
    fwd = first(proxy2, is_request("BYE"))
    assert request_line(fwd)[1] == target
    assert hv(fwd, "route") == [f"<sip:127.0.0.1:{proxy2.port};lr>"]
    sipnet.barrier(server.addr)
    assert bob.drain() == []


@pytest.mark.parametrize("via_proxy2", [False, True], ids=["to-uas", "via-next-proxy"])
def test_strict_router_compatibility(seed, peers, via_proxy2):
    # 16.4: the R-URI is our own Record-Route URI (a strict router before us put it there):
    # it is replaced by the last Route value, which is removed
    server, bob, caller = seed
    (proxy2,) = peers(1)
    target = f"sip:bob@127.0.0.1:{bob.port}"
    routes = ([f"<sip:127.0.0.1:{proxy2.port};lr>"] if via_proxy2 else []) + [f"<{target}>"]
    caller.send(request("BYE", f"sip:127.0.0.1:{server.port};lr=on", caller, to=bob_uri(server),
                        headers=[f"Route: {', '.join(routes)}"]), server.addr)
    hop = proxy2 if via_proxy2 else bob
    fwd = first(hop, is_request("BYE"))
    assert request_line(fwd)[1] == target
    assert hv(fwd, "route") == routes[:-1]


# --- Max-Forwards, Proxy-Require (16.3, 16.6 step 3) ----------------------------------------

@pytest.mark.parametrize("sent, forwarded", [(70, "69"), (5, "4"), (1, "0"), (None, "70")],
                         ids=["70", "5", "1", "absent"])
def test_max_forwards_on_forward(seed, sent, forwarded):
    server, bob, caller = seed
    caller.send(request("MESSAGE", bob_uri(server), caller, max_forwards=sent), server.addr)
    fwd = first(bob, is_request("MESSAGE"))
    assert hv(fwd, "max-forwards") == [forwarded]


def test_max_forwards_0_is_483_and_not_forwarded(seed):
    server, bob, caller = seed
    caller.send(request("MESSAGE", bob_uri(server), caller, max_forwards=0), server.addr)
    assert status_of(first(caller, is_final)) == 483
    sipnet.barrier(server.addr)
    assert bob.drain() == []


def test_proxy_require_unknown_extension_is_420(seed):
    server, bob, caller = seed
    caller.send(request("MESSAGE", bob_uri(server), caller, headers=["Proxy-Require: foo"]),
                server.addr)
    reply = first(caller, is_final)
    assert status_of(reply) == 420, reply
    assert hv(reply, "unsupported") == ["foo"]
    sipnet.barrier(server.addr)
    assert bob.drain() == []


@pytest.mark.parametrize("header, status", [("Max-Forwards: 0", 483),
                                            ("Proxy-Require: foo", 420)],
                         ids=["max-forwards-0", "proxy-require"])
def test_stateless_forward_refuses_too(scripted, header, status):
    server, hop, sender = scripted
    ruri = f"sip:carol@{hostport(*server.addr)}"
    req = request("MESSAGE", ruri, sender, max_forwards=None, headers=[header])
    sender.send(req, server.addr)
    assert status_of(first(sender, is_final)) == status
    sipnet.barrier(server.addr)
    assert hop.drain() == []


def test_2xx_retransmission_is_relayed(seed):
    # 16.7 step 5 / 17.1.1.2: each 2xx goes up, also one that no transaction matches any more
    server, bob, caller = seed
    caller.send(request("INVITE", bob_uri(server), caller), server.addr)
    fwd = first(bob, is_request("INVITE"))
    ok = response_to(fwd, 200, "OK", to_tag="b",
                     headers=[f"Contact: <sip:bob@127.0.0.1:{bob.port}>"])
    bob.send(ok, server.addr)
    assert status_of(first(caller, has_status(200))) == 200
    bob.send(ok, server.addr)
    assert status_of(first(caller, has_status(200))) == 200


# --- Via ----------------------------------------------------------------------------------

def _message_with_via(server, caller, sent_by, rport):
    req = request("MESSAGE", bob_uri(server), caller, rport=rport)
    return req.replace(f"SIP/2.0/UDP {caller.host}:{caller.port};".encode(),
                       f"SIP/2.0/UDP {sent_by};".encode(), 1)


@pytest.mark.parametrize("sent_by, rport, params", [
    ("192.0.2.7:{port}", False, {"received": "127.0.0.1"}),
    ("127.0.0.1:{port}", False, {}),
    ("127.0.0.1:{port}", True, {"received": "127.0.0.1", "rport": "{port}"}),
], ids=["other-host", "same-host", "rport"])
def test_via_on_forward_and_response_back(seed, sent_by, rport, params):
    server, bob, caller = seed
    sent_by = sent_by.format(port=caller.port)
    req = _message_with_via(server, caller, sent_by, rport)
    caller.send(req, server.addr)
    fwd = first(bob, is_request("MESSAGE"))
    vias = hv(fwd, "via")
    assert len(vias) == 2, vias
    m = re.fullmatch(rf"SIP/2\.0/UDP 127\.0\.0\.1:{server.port};branch=(z9hG4bK[^;,\s]+)",
                     vias[0])
    assert m, f"top Via is not serlite's with an RFC 3261 branch: {vias[0]}"
    assert m.group(1) != re.search(r"branch=([^;]+)", vias[1]).group(1)
    assert vias[1].startswith(f"SIP/2.0/UDP {sent_by};")
    got = dict(p.partition("=")[::2] for p in vias[1].split(";")[1:])
    got.pop("branch")
    assert got == {k: v.format(port=caller.port) for k, v in params.items()}, vias[1]

    # the UAS answers: serlite takes its Via off and the answer reaches the caller
    bob.send(response_to(fwd, 200, "OK", to_tag="b1"), server.addr)
    reply = first(caller, is_final)
    assert status_of(reply) == 200
    assert hv(reply, "via") == [vias[1]]


def test_response_with_foreign_top_via_is_dropped(ser, peers):
    # 18.1.2: a response whose top Via is not ours is discarded, not relayed to the next Via
    server = ser(SEED)
    sender, foreign, below = peers(3)
    call_id = secrets.token_hex(8)
    resp = (f"SIP/2.0 200 OK\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{foreign.port};branch=z9hG4bK-foreign-{call_id}\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{below.port};branch=z9hG4bK-below-{call_id}\r\n"
            f"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n").encode()
    sender.send(resp, server.addr)
    assert status_of(sipnet.barrier(server.addr)) is not None     # still answering
    assert (sender.drain(), foreign.drain(), below.drain()) == ([], [], [])
    assert server.running()


# --- stateless forward() and the script ---------------------------------------------------

@pytest.fixture
def scripted(ser, peers):
    """serlite on SCRIPT, forwarding everything to a peer: (server, next hop, sender)."""
    hop, sender = peers(2)
    server = ser(SCRIPT.replace("@HOP@", str(hop.port)))
    return server, hop, sender


def test_stateless_forward_relays_request_and_response(scripted):
    server, hop, sender = scripted
    ruri = f"sip:carol@{hostport(*server.addr)}"
    sender.send(request("MESSAGE", ruri, sender), server.addr)
    fwd = first(hop, is_request("MESSAGE"))
    assert request_line(fwd)[1] == ruri
    assert hv(fwd, "via")[0].startswith(f"SIP/2.0/UDP 127.0.0.1:{server.port};branch=z9hG4bK")
    hop.send(response_to(fwd, 202, "Accepted", to_tag="c1"), server.addr)
    reply = first(sender, is_final)
    assert status_of(reply) == 202
    assert len(hv(reply, "via")) == 1


def test_textops_edits_seen_at_next_hop(scripted):
    server, hop, sender = scripted
    ruri = f"sip:carol@{hostport(*server.addr)}"
    sender.send(request("MESSAGE", ruri, sender,
                        headers=["User-Agent: test-phone/1.0", "Subject: foo and foo"]),
                server.addr)
    fwd = first(hop, is_request("MESSAGE"))
    assert hv(fwd, "x-hint") == ["yes"]                  # append_hf
    assert hv(fwd, "user-agent") == []                   # remove_hf
    assert hv(fwd, "x-had-ua") == ["yes"]                # is_present_hf, true
    assert hv(fwd, "x-had-absent") == []                 # is_present_hf, false
    assert hv(fwd, "x-search") == ["hit"]                # search, true and false
    assert hv(fwd, "subject") == ["bar and foo"]         # subst without g: the first match


@pytest.mark.parametrize("ruri, forwarded", [
    ("sip:rw@{server}", "sip:new@127.0.0.1:{hop}"),                       # rewriteuri
    ("sip:host@elsewhere.invalid:7777", "sip:host@127.0.0.1:7777"),     # rewritehost
    ("sip:pre@{server}", "sip:00pre@{server}"),                         # prefix
    ("sip:00491234@{server}", "sip:1234@{server}"),                     # strip
    ("sip:plain@{server}", "sip:plain@{server}"),                       # none
], ids=["rewriteuri", "rewritehost", "prefix", "strip", "untouched"])
def test_request_uri_rewriting(scripted, ruri, forwarded):
    server, hop, sender = scripted
    fill = {"server": hostport(*server.addr), "hop": hop.port}
    sender.send(request("MESSAGE", ruri.format(**fill), sender), server.addr)
    fwd = first(hop, is_request("MESSAGE"))
    assert request_line(fwd)[1] == forwarded.format(**fill)


@pytest.mark.parametrize("method, flag3", [("MESSAGE", ["set"]), ("INFO", [])])
def test_setflag_isflag(scripted, method, flag3):
    server, hop, sender = scripted
    sender.send(request(method, f"sip:carol@{hostport(*server.addr)}", sender), server.addr)
    fwd = first(hop, is_request(method))
    assert hv(fwd, "x-flag3") == flag3
    assert hv(fwd, "x-flag4") == []


def test_src_ip_and_proto_udp(scripted):
    server, hop, sender = scripted
    sender.send(request("MESSAGE", f"sip:carol@{hostport(*server.addr)}", sender), server.addr)
    fwd = first(hop, is_request("MESSAGE"))
    assert hv(fwd, "x-src") == ["loopback"]
    assert hv(fwd, "x-proto") == ["udp"]


def test_proto_tcp(scripted):
    server, hop, _ = scripted
    with sipnet.TcpPeer(server.addr) as tcp:
        req = make_request("MESSAGE", f"sip:carol@{hostport(*server.addr)}",
                           via=(tcp.host, tcp.port), to=f"sip:carol@{hostport(*server.addr)}",
                           transport="TCP")
        tcp.send(req)
        fwd = first(hop, is_request("MESSAGE"))
    assert hv(fwd, "x-proto") == ["tcp"]
    assert hv(fwd, "x-src") == ["loopback"]


@pytest.mark.parametrize("host, mine", [
    ("home.example", True),
    ("HOME.example:{port}", True),
    ("home.example:1", False),
    ("pbx.example:5999", True),
    ("pbx.example", False),
    ("127.0.0.1:{port}", True),
    ("elsewhere.example", False),
], ids=lambda v: str(v))
def test_uri_myself_with_alias(ser, host, mine):
    server = ser(MYSELF)
    uri = f"sip:x@{host.format(port=server.port)}"
    with UdpPeer() as ua:
        ua.send(request("MESSAGE", uri, ua), server.addr)
        reply = first(ua, is_final)
    assert (status_of(reply), mine) in ((200, True), (403, False)), reply


def test_subst_on_the_body_keeps_content_length_true(ser):
    """An edit that changes the body's length changes its Content-Length with it."""
    with UdpPeer() as sink, UdpPeer() as client:
        server = ser(f"""debug=3
loadmodule "textops"
route {{
    subst('/hello/goodbye/');
    forward("127.0.0.1", {sink.port});
}}
""")
        uri = f"sip:x@127.0.0.1:{server.port}"
        client.send(make_request("MESSAGE", uri, via=(client.host, client.port), to=uri,
                                 headers=["Content-Type: text/plain"], body=b"hello world"),
                    server.addr)
        got = sink.recv_until(is_request, timeout=5)
        assert got, "nothing forwarded"
        assert got[0].split(b"\r\n\r\n", 1)[1] == b"goodbye world"
        assert sipnet.header_values(got[0], "content-length") == ["13"]


def test_an_ipv6_reference_is_myself_whatever_its_spelling(ser):
    server = ser("""debug=3
loadmodule "sl"
route {
    if (uri == myself) { sl_send_reply("200", "Mine"); exit; }
    sl_send_reply("403", "Not mine");
}
""", ipv6=True)
    with UdpPeer(family=sipnet.V6) as client:
        for spelling in ("[::1]", "[0:0:0:0:0:0:0:1]"):
            uri = f"sip:x@{spelling}:{server.port6}"
            client.send(make_request("OPTIONS", uri, via=(client.host, client.port), to=uri),
                        server.addr6)
            got = client.recv_until(lambda m: status_of(m) is not None, timeout=5)
            assert [status_of(m) for m in got] == [200], spelling
