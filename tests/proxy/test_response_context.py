"""RFC 3261 16.7 step 6: which branch's final response goes upstream."""

import pytest

from serlite.proxy.response_context import BranchState, ResponseContext, best_response


def branches(*finals):
    rc = ResponseContext(None, None)
    out = []
    for final in finals:
        b = BranchState(rc, "sip:x@10.0.0.1", "udp", "10.0.0.1", 5060, None, b"")
        b.final = final
        out.append(b)
    rc.branches = out
    return rc, out


@pytest.mark.parametrize("finals, chosen", [
    ((), None),
    ((0, 0), None),                 # none final yet
    ((200,), None),                 # a 2xx goes up at once, it is not chosen here
    ((486, 603, 302), 603),         # a 6xx over everything
    ((404, 302, 500), 302),         # the lowest class
    ((500, 503), 500),
    ((404, 486, 407), 407),         # 4xx: the ones the UAC can act on first
    ((404, 401, 407), 401),         # ... in 401, 407, 415, 420, 484 order
    ((486, 484), 484),
    ((486, 404), 486),              # else the first of the class
])
def test_best_response(finals, chosen):
    _, bs = branches(*finals)
    best = best_response(bs)
    assert (best.final if best else None) == chosen


def test_the_first_of_equals_is_chosen():
    _, bs = branches(486, 486)
    assert best_response(bs) is bs[0]


def test_pending_all_final_and_release():
    rc, bs = branches(0, 486)
    assert rc.pending() == [bs[0]] and not rc.all_final()
    bs[0].final = 408
    assert rc.all_final()
    rc.held = 1                     # a branch waiting for a Hold counts as pending
    assert not rc.all_final()
    rc.held = 0
    rc.ctx = object()
    bs[1].response = object()
    rc.release()
    assert rc.ctx is None and bs[1].response is None and rc.branches == ()


def test_a_503_from_the_only_branch_goes_upstream_as_500():
    # 16.7 step 6 through tm: a real Core on the seed config (tests/modules/test_tm_shed.py)
    from serlite.proxy.context import Source
    from serlite.sip.message import parse
    from tests.modules.test_tm_shed import request, seed_core

    loop, tr, core = seed_core()
    phone = Source("udp", "127.0.0.1", 6001, tr.listeners[0])
    core.receive(request("REGISTER", "reg1", "r1", extra=(
        "Contact: <sip:bob@127.0.0.1:7000>", "Expires: 600")), phone)
    tr.sent.clear()
    core.receive(request("INVITE", "c1", "i1"), phone)
    assert [line.split()[0] for _, _, line in tr.sent] == ["SIP/2.0", "INVITE"]
    invite = parse(tr.last)
    tr.sent.clear()
    lines = ["SIP/2.0 503 Service Unavailable",
             *(f"Via: {v}" for v in invite.values("Via")),
             "From: <sip:alice@127.0.0.1>;tag=a1", "To: <sip:bob@127.0.0.1>;tag=b1",
             "Call-ID: c1", "CSeq: 1 INVITE", "Content-Length: 0"]
    core.receive(("\r\n".join(lines) + "\r\n\r\n").encode(),
                 Source("udp", "127.0.0.1", 7000, tr.listeners[0]))
    upstream = [line for _, port, line in tr.sent if port == 6001]
    assert upstream == ["SIP/2.0 500 Server Internal Error"]
    loop.close()
