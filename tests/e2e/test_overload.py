"""Overload: past tm's max_transactions new requests get 503 with Retry-After, statelessly."""

from .sipnet import UdpPeer, header_values, is_final, make_request, status_of
from .test_stateful import config, register


def test_new_requests_past_max_transactions_get_503_retry_after(ser):
    with UdpPeer() as callee, UdpPeer() as caller:
        server = ser(config(modparams='modparam("tm", "max_transactions", 3)\n'
                                      'modparam("tm", "retry_after", 7)'))
        register(server, "bob", [f"<sip:bob@{callee.host}:{callee.port}>"])
        uri = f"sip:bob@127.0.0.1:{server.port}"
        finals = []
        for i in range(5):      # the callee never answers: every INVITE stays open
            caller.send(make_request("INVITE", uri, via=(caller.host, caller.port), to=uri),
                        server.addr)
            got = caller.recv_until(lambda m: status_of(m) in (100, 503), 5)
            finals += [m for m in got if is_final(m)]
        assert [status_of(m) for m in finals] == [503, 503]      # the 4th and the 5th
        assert header_values(finals[0], "retry-after") == ["7"]
        invites = callee.recv_until(lambda m: False, 0.5)
        assert len({header_values(m, "call-id")[0] for m in invites}) == 3
