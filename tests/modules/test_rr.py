"""rr's signed routes, in process on SER's seed config: with ``sign_routes`` every Record-Route
we add carries ``;sig=`` (a MAC of the Call-ID), and ``loose_route()`` follows a route set of
ours only with the right one; without the parameter nothing changes (a SER config as it was)."""

import re

from serlite.proxy.context import Source

from test_tm_shed import request, seed_core


def relay(modparams, out_by_wan=False):
    """``send(data) -> (sent lines, last bytes)`` through the seed config's core, bob registered.
    ``out_by_wan``: a second (WAN) socket that every request leaves by, as mhomed=1 chooses it
    for a destination out there; requests come in on the first one."""
    _, tr, core = seed_core(modparams)
    if out_by_wan:
        wan = WanListener()
        tr.listeners.append(wan)
        core.set_identity(tr.listeners, [])
        tr.listener_for = lambda proto, family, ip=None: wan
    src = Source("udp", "127.0.0.1", 6001, tr.listeners[0])
    core.receive(request("REGISTER", "reg1", "r1", extra=(
        "Contact: <sip:bob@127.0.0.1:7000>", "Expires: 600")), src)
    tr.sent.clear()

    def send(data):
        core.receive(data, src)
        out, tr.sent[:] = [(port, line) for _, port, line in tr.sent], []
        return out, tr.last
    return send


def record_route_of(data):
    return re.search(rb"\r\nRecord-Route: <([^>]*)>", data).group(1).decode()


def test_signed_record_route_and_loose_route():
    send = relay('modparam("rr", "sign_routes", 1)')
    sent, data = send(request("INVITE", "call-1", "i1"))
    assert (7000, "INVITE sip:bob@127.0.0.1:7000 SIP/2.0") in sent
    rr = record_route_of(data)
    assert re.search(r";sig=[0-9a-f]{16}$", rr), rr
    # the BYE of this call with the route set we recorded: followed to bob's phone
    bye = request("BYE", "call-1", "b1", to_tag="t1", cseq=2, user="bob",
                  extra=(f"Route: <{rr}>",))
    bye = bye.replace(b"BYE sip:bob@127.0.0.1:5060", b"BYE sip:bob@127.0.0.1:7000")
    sent, _ = send(bye)
    assert sent == [(7000, "BYE sip:bob@127.0.0.1:7000 SIP/2.0")]
    # the same route on another Call-ID, or no signature: not ours, not followed by loose_route
    # (the seed config then relays by the Request-URI, with the Route still in place)
    for call_id, route in (("call-2", rr), ("call-1", rr.split(";sig=")[0])):
        other = request("BYE", call_id, "b2", to_tag="t1", cseq=2, user="nobody",
                        extra=(f"Route: <{route}>",))
        sent, data = send(other)
        assert sent == [(6001, "SIP/2.0 404 Not Found")], (call_id, sent)


def test_without_sign_routes_nothing_changes():
    send = relay("")
    sent, data = send(request("INVITE", "call-3", "i3"))
    assert ";sig=" not in record_route_of(data)
    bye = request("BYE", "call-3", "b3", to_tag="t1", cseq=2, user="nobody",
                  extra=("Route: <sip:127.0.0.1:5060;lr=on>",))
    sent, _ = send(bye)
    assert sent and "404" not in sent[0][1]         # followed: relayed, not looked up


class WanListener:
    proto, family, ip, host, port = "udp", 2, "192.0.2.1", "192.0.2.1", 5060
    name = "udp:192.0.2.1:5060"
    backlog = 0.0


def relay_out_by_wan(modparams):
    return relay(modparams, out_by_wan=True)


def record_routes_of(data):
    return [m.decode() for m in re.findall(rb"\r\nRecord-Route: <([^>]*)>", data)]


def test_leaving_by_another_socket_records_both_the_outgoing_on_top():
    send = relay_out_by_wan('modparam("rr", "sign_routes", 1)')
    sent, data = send(request("INVITE", "call-4", "i4"))
    assert (7000, "INVITE sip:bob@127.0.0.1:7000 SIP/2.0") in sent
    assert b"\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;" in data
    out, inbound = record_routes_of(data)
    # the callee sends to the top entry: the address it was sent from; both signed alike
    assert out.startswith("sip:192.0.2.1:5060;lr=on;ftag=a1;sig=")
    assert inbound.startswith("sip:127.0.0.1:5060;lr=on;ftag=a1;sig=")
    assert out.split(";sig=")[1] == inbound.split(";sig=")[1]
    # the callee's BYE with that route set: loose_route takes both of ours off
    bye = request("BYE", "call-4", "b4", to_tag="t1", cseq=2, user="alice",
                  extra=(f"Route: <{out}>", f"Route: <{inbound}>",
                         "Contact: <sip:bob@127.0.0.1:7000>"))
    bye = bye.replace(b"BYE sip:alice@127.0.0.1:5060", b"BYE sip:alice@127.0.0.1:6001")
    sent, data = send(bye)
    assert sent == [(6001, "BYE sip:alice@127.0.0.1:6001 SIP/2.0")], sent
    assert b"\r\nRoute:" not in data


def test_enable_double_rr_0_records_the_incoming_socket_only():
    send = relay_out_by_wan('modparam("rr", "enable_double_rr", 0)')
    _, data = send(request("INVITE", "call-5", "i5"))
    assert record_routes_of(data) == ["sip:127.0.0.1:5060;lr=on;ftag=a1"]


def test_leaving_by_the_incoming_socket_records_one():
    send = relay("")
    _, data = send(request("INVITE", "call-6", "i6"))
    assert record_routes_of(data) == ["sip:127.0.0.1:5060;lr=on;ftag=a1"]
