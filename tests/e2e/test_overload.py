"""Overload: new requests get 503 with Retry-After, statelessly, past tm's max_transactions
or while more than its shed_backlog waits unread in the socket."""

import os
import secrets
import signal
import time

from serlite.transport import RECV_BATCH

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


def _await_polling(pid, timeout=5.0):
    """Return once process ``pid`` sleeps in poll()/select() (its loop is idle)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
        if state == "S" and ("poll" in wchan or "select" in wchan):
            return
        time.sleep(0.005)
    raise AssertionError(f"pid {pid} not idle in poll() after {timeout} s: {state} {wchan}")


def _flood_while_stopped(server, caller, uri, count):
    """``count`` INVITEs queued in the server's socket while it is stopped (SIGSTOP), then
    let go: it finds more waiting than one read batch takes.  Returns {Call-ID: [answers]}
    once each has one (or after 10 s)."""
    call_ids = [f"flood{i}-{secrets.token_hex(4)}@e2e" for i in range(count)]
    # Stopped while it waits in poll(), not in the middle of the read batch that answered
    # the REGISTER: that batch would take the first INVITEs, with one place fewer for them.
    _await_polling(server.proc.pid)
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        for cid in call_ids:
            caller.send(make_request("INVITE", uri, via=(caller.host, caller.port), to=uri,
                                     call_id=cid), server.addr)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    answers = {cid: [] for cid in call_ids}
    deadline = time.monotonic() + 10
    while not all(answers.values()) and time.monotonic() < deadline:
        for m in caller.recv_until(None, 0.2):
            answers[header_values(m, "call-id")[0]].append(m)
    return answers


def test_behind_its_socket_new_invites_get_503_before_the_script(ser):
    """More waiting unread after a read batch than shed_backlog (1 % of the socket's receive
    buffer; the server asks for 512 KiB, the kernel gives at most twice that): the calls
    already read go on, the new INVITEs after them are turned away with 503 + Retry-After (and never reach
    the callee); once caught up, new calls are relayed again."""
    with UdpPeer() as callee, UdpPeer() as caller:
        server = ser(config(modparams='modparam("tm", "retry_after", 9)\n'
                                      'modparam("tm", "shed_backlog", 1)'))
        register(server, "bob", [f"<sip:bob@{callee.host}:{callee.port}>"])
        uri = f"sip:bob@127.0.0.1:{server.port}"
        answers = _flood_while_stopped(server, caller, uri, 2 * RECV_BATCH)
        codes = {c: [status_of(m) for m in got] for c, got in answers.items()}
        relayed = [c for c, got in codes.items() if got == [100]]
        shed = [c for c, got in codes.items() if got == [503]]
        assert len(relayed) >= RECV_BATCH, codes     # the first batch read went through
        assert shed and len(relayed) + len(shed) == len(answers), codes
        assert header_values(answers[shed[0]][0], "retry-after") == ["9"]
        at_callee = {header_values(m, "call-id")[0] for m in callee.recv_until(None, 0.5)}
        assert at_callee == set(relayed)            # none of the shed ones reached the callee
        caller.drain()
        caller.send(make_request("INVITE", uri, via=(caller.host, caller.port), to=uri),
                    server.addr)
        got = caller.recv_until(lambda m: status_of(m) is not None, 5)
        assert [status_of(m) for m in got][:1] == [100]       # caught up: relayed again


def test_shed_backlog_0_relays_everything(ser):
    with UdpPeer() as callee, UdpPeer() as caller:
        server = ser(config(modparams='modparam("tm", "shed_backlog", 0)'))
        register(server, "bob", [f"<sip:bob@{callee.host}:{callee.port}>"])
        uri = f"sip:bob@127.0.0.1:{server.port}"
        answers = _flood_while_stopped(server, caller, uri, 2 * RECV_BATCH)
        codes = [[status_of(m) for m in got] for got in answers.values()]
        assert codes == [[100]] * len(codes), codes
