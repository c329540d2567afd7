"""What tm keeps of a finished transaction, and for how long: once its wait is over it is
freed at once (no reference cycle left for the garbage collector), and a branch answering
after that is handled by RFC 3261 16.7 step 5 (a 2xx to an INVITE still goes upstream, no
second final response to a non-INVITE).  A real Core on the seed config with a clock the
test moves and a transport that records what it would send."""

import gc

from test_tm_shed import request, seed_core

from serlite.proxy.context import Source
from serlite.transaction.transaction import ClientTransaction, ServerTransaction


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def forking_server():
    """Bob registered at two contacts: an INVITE to him forks to both."""
    clock = Clock()
    loop, tr, core = seed_core(clock=clock)
    caller = Source("udp", "127.0.0.1", 6001, tr.listeners[0])
    core.receive(request("REGISTER", "reg1", "r1", extra=(
        "Contact: <sip:bob@127.0.0.1:7000>, <sip:bob@127.0.0.1:7001>", "Expires: 600")), caller)
    assert tr.sent[-1][2].startswith("SIP/2.0 200"), tr.sent

    def wait(seconds):
        """Move the clock on, firing the timers due, a tick at a time."""
        end = clock.now + seconds
        while clock.now < end:
            clock.now = min(end, clock.now + 0.0625)
            loop.run_due(clock.now)
    return tr, core, caller, wait


def response(invite, status, reason, to_tag):
    """The callee's answer to the INVITE it was sent (its Vias, From, To, Call-ID, CSeq)."""
    head = invite.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    keep = [h for h in head if h.split(b":", 1)[0].lower() in
            (b"via", b"from", b"call-id", b"cseq")]
    to = [h for h in head if h.lower().startswith(b"to:")][0] + b";tag=" + to_tag
    lines = [b"SIP/2.0 %d %s" % (status, reason), *keep, to,
             b"Contact: <sip:bob@127.0.0.1:7000>", b"Content-Length: 0"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def recording(tr):
    """{port: [messages sent there]}, filled as the core sends."""
    sent = {}
    record = tr.send

    def send(proto, ip, port, data, local=None, conn=None):
        sent.setdefault(port, []).append(data)
        return record(proto, ip, port, data, local, conn)
    tr.send = send
    return sent


def callee(tr, port):
    return Source("udp", "127.0.0.1", port, tr.listeners[0])


def test_a_late_2xx_after_the_transaction_ended_still_goes_upstream():
    tr, core, caller, wait = forking_server()
    sent = recording(tr)
    core.receive(request("INVITE", "call1", "i1"), caller)
    a, b = sent[7000][-1], sent[7001][-1]
    core.receive(response(b, 180, b"Ringing", b"tb"), callee(tr, 7001))   # b rings on
    core.receive(response(a, 200, b"OK", b"ta"), callee(tr, 7000))         # a answers
    assert [m.split(b"\r\n", 1)[0] for m in sent[6001]][-2:] == [b"SIP/2.0 180 Ringing",
                                                                   b"SIP/2.0 200 OK"]
    wait(40.0)                    # past timer L (64*T1): the INVITE server transaction ends
    assert not core.tm.table.server
    core.receive(response(b, 200, b"OK", b"tb"), callee(tr, 7001))     # b answers late
    last = sent[6001][-1]
    assert last.startswith(b"SIP/2.0 200 OK") and b"tag=tb" in last, last


def test_a_2xx_after_a_reliable_non_invite_ended_is_not_relayed():
    # Over TCP a non-INVITE server transaction ends with its final response (timer J = 0,
    # RFC 3261 17.2.2) while the other branch may still answer: 16.7 step 5, no second
    # final response goes upstream (and the ended transaction is not touched).
    tr, core, _, wait = forking_server()
    caller = Source("tcp", "127.0.0.1", 6001, tr.listeners[0])
    sent = recording(tr)
    core.receive(request("MESSAGE", "msg1", "m1"), caller)
    a, b = sent[7000][-1], sent[7001][-1]
    core.receive(response(a, 200, b"OK", b"ta"), callee(tr, 7000))
    assert [m.split(b"\r\n", 1)[0] for m in sent[6001]] == [b"SIP/2.0 200 OK"]
    wait(0.125)                   # timer J, 0 over TCP, fires on the next tick
    assert not core.tm.table.server
    core.receive(response(b, 202, b"Accepted", b"tb"), callee(tr, 7001))
    assert len(sent[6001]) == 1, sent[6001]


def test_a_finished_call_is_freed_when_its_wait_ends():
    # No ServerTransaction <-> ResponseContext cycle is left: with the garbage collector
    # off, nothing of the call remains once its transactions have ended.
    tr, core, caller, wait = forking_server()
    gc.collect()
    gc.disable()
    try:
        sent = recording(tr)
        core.receive(request("INVITE", "call2", "i2"), caller)
        a, b = sent[7000][-1], sent[7001][-1]
        core.receive(response(b, 486, b"Busy Here", b"tb"), callee(tr, 7001))
        core.receive(response(a, 200, b"OK", b"ta"), callee(tr, 7000))
        assert sent[6001][-1].startswith(b"SIP/2.0 200 OK")
        assert any(isinstance(o, ServerTransaction) for o in gc.get_objects())
        wait(40.0)
        assert not core.tm.table.server and not core.tm.table.client
        kept = [o for o in gc.get_objects() if isinstance(o, (ServerTransaction,
                                                              ClientTransaction))]
        assert kept == []
    finally:
        gc.enable()
