"""The four RFC 3261 17 state machines, walked with a fake clock."""

import pytest

from serlite.transaction import machines
from serlite.transaction.transaction import T1, T2, ClientTransaction, ServerTransaction

TABLES = {
    "client_invite": machines.CLIENT_INVITE,
    "client_non_invite": machines.CLIENT_NON_INVITE,
    "server_invite": machines.SERVER_INVITE,
    "server_non_invite": machines.SERVER_NON_INVITE,
}


@pytest.mark.parametrize("name", TABLES)
def test_every_row_leads_to_a_state_of_the_table(name):
    table = TABLES[name]
    states = {state for state, _ in table} | {"terminated"}
    for (state, event), (actions, nxt) in table.items():
        assert nxt in states, (state, event)
        assert isinstance(actions, tuple)


def _fire_all(tx, until):
    """Step the fake clock through every deadline up to ``until``; returns (time, actions)."""
    out = []
    while True:
        when = tx.next_deadline()
        if when is None or when > until:
            return out
        out.append((round(when, 3), tx.expire(when)))


def test_invite_client_over_udp_retransmits_and_times_out_at_32s():
    tx = ClientTransaction("INVITE", "z9hG4bK1", b"INVITE", reliable=False, now=0.0,
                           fr_timer=0)
    fired = _fire_all(tx, 100.0)
    retrans = [t for t, actions in fired if "retransmit" in actions]
    assert retrans == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]     # timer A doubles (17.1.1.2)
    assert fired[-1] == (64 * T1, ["timeout"])               # timer B = 32 s
    assert tx.terminated


def test_invite_client_over_tcp_never_retransmits():
    tx = ClientTransaction("INVITE", "b", b"INVITE", reliable=True, now=0.0, fr_timer=0)
    fired = _fire_all(tx, 100.0)
    assert fired == [(32.0, ["timeout"])]


def test_provisional_stops_retransmissions_and_arms_fr_inv():
    tx = ClientTransaction("INVITE", "b", b"INVITE", reliable=False, now=0.0, fr_timer=0,
                           fr_inv_timer=120.0)
    assert tx.receive(180, 0.2) == ["up"]
    assert tx.state == "proceeding"
    fired = _fire_all(tx, 500.0)
    # timer C (16.8): CANCEL and 408 for the branch; then 64*T1 to wait for the 487
    assert fired == [(120.2, ["cancel", "timeout"]), (152.2, ["timeout"])]
    assert tx.terminated


def test_cancel_sent_waits_64_t1_for_the_final_response():
    tx = ClientTransaction("INVITE", "b", b"INVITE", reliable=False, now=0.0, fr_timer=0,
                           fr_inv_timer=120.0)
    tx.receive(180, 1.0)
    assert tx.step("cancel_sent", 2.0) == []
    assert tx.receive(487, 3.0) == ["send_ack", "up"]       # the UAS answered the CANCEL
    assert tx.state == "completed"


def test_invite_client_error_response_is_acked_and_absorbed_in_completed():
    tx = ClientTransaction("INVITE", "b", b"INVITE", reliable=False, now=0.0)
    assert tx.receive(486, 1.0) == ["send_ack", "up"]
    assert tx.state == "completed"
    assert tx.receive(486, 2.0) == ["send_ack"]             # retransmitted final: ACK again
    assert _fire_all(tx, 100.0) == [(33.0, [])]             # timer D = 32 s
    assert tx.terminated


def test_non_invite_client_retransmits_up_to_t2():
    tx = ClientTransaction("OPTIONS", "b", b"OPTIONS", reliable=False, now=0.0, fr_timer=0)
    fired = _fire_all(tx, 100.0)
    times = [t for t, actions in fired if "retransmit" in actions]
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]          # E doubles, capped at T2 = 4 s
    assert all(b - a == T2 for a, b in zip(times[3:], times[4:]))
    assert fired[-1] == (32.0, ["timeout"])                 # timer F


def test_non_invite_client_completed_waits_t4_then_ends():
    tx = ClientTransaction("BYE", "b", b"BYE", reliable=False, now=0.0)
    assert tx.receive(200, 0.1) == ["up"]
    assert tx.receive(200, 0.2) == []                       # absorbed
    assert _fire_all(tx, 100.0) == [(5.1, [])]              # timer K = T4
    assert tx.terminated


def test_invite_server_resends_final_until_ack():
    st = ServerTransaction("INVITE", "k", reliable=False, dest=None)
    assert st.respond(100, b"100", 0.0) == ["send"]
    assert st.step("request", 0.1) == ["resend"]            # retransmitted INVITE
    assert st.respond(486, b"486", 1.0) == ["send"]
    fired = _fire_all(st, 2.6)
    assert [t for t, a in fired if a == ["resend"]] == [1.5, 2.5]   # timer G
    assert st.step("ack", 2.6) == []
    assert st.state == "confirmed"
    assert _fire_all(st, 100.0) == [(7.6, [])]              # timer I = T4
    assert st.terminated


def test_invite_server_without_ack_times_out_after_64_t1():
    st = ServerTransaction("INVITE", "k", reliable=False, dest=None)
    st.respond(404, b"404", 0.0)
    fired = _fire_all(st, 100.0)
    assert fired[-1] == (32.0, ["timeout"])                 # timer H


def test_invite_server_accepted_absorbs_and_relays_more_2xx():
    st = ServerTransaction("INVITE", "k", reliable=False, dest=None)
    st.respond(200, b"200 a", 0.0)
    assert st.state == "accepted"                           # RFC 6026
    assert st.step("request", 1.0) == []
    assert st.respond(200, b"200 b", 1.5) == ["send"]       # a second 2xx from a fork
    assert _fire_all(st, 100.0) == [(32.0, [])]             # timer L
    assert st.terminated


def test_non_invite_server_completed_absorbs_with_last_response():
    st = ServerTransaction("REGISTER", "k", reliable=False, dest=None)
    assert st.step("request", 0.0) == []                    # trying: nothing to resend yet
    assert st.respond(200, b"200", 0.1) == ["send"]
    assert st.step("request", 0.2) == ["resend"]
    assert _fire_all(st, 100.0) == [(32.1, [])]             # timer J
    assert st.terminated


def test_missing_row_is_an_error_not_a_no_op():
    st = ServerTransaction("REGISTER", "k", reliable=False, dest=None)
    with pytest.raises(KeyError):
        st.step("ack", 0.0)


TIMERS = {"A", "B", "D", "E", "F", "G", "H", "I", "J", "K", "L", "fr"}


@pytest.mark.parametrize("kind", ["INVITE-client", "BYE-client", "INVITE-server",
                                  "BYE-server"])
@pytest.mark.parametrize("reliable", [False, True])
def test_random_walks_never_fire_a_timer_the_state_has_no_row_for(kind, reliable):
    """Every (state, input) the machine can meet is in its table: walk each machine many times
    with random inputs among those its state accepts, and fire every timer that comes due."""
    import random
    rng = random.Random(kind + str(reliable))
    method, side = kind.split("-")
    for _ in range(300):
        if side == "client":
            tx = ClientTransaction(method, "b", b"x", reliable=reliable, now=0.0,
                                   fr_timer=rng.choice([0, 5.0]), fr_inv_timer=10.0)
        else:
            tx = ServerTransaction(method, "k", reliable=reliable, dest=None)
        now = 0.0
        for _ in range(12):
            if tx.terminated:
                break
            inputs = [e for (state, e) in tx.table if state == tx.state and e not in TIMERS]
            if rng.random() < 0.4 and tx.next_deadline() is not None:
                now = max(now, tx.next_deadline())
                tx.expire(now)              # a missing row raises KeyError here
                continue
            event = rng.choice(inputs)
            now += rng.random()
            if event.endswith("xx") and side == "client":
                tx.receive({"1xx": 180, "2xx": 200, "3xx": 486}[event], now)
            elif event.startswith("send"):
                tx.respond({"send1xx": 180, "send2xx": 200, "send3xx": 486}[event], b"r", now)
            else:
                tx.step(event, now)
        # whatever happened, the transaction ends on its own once its timers run out
        for _ in range(20):
            if tx.terminated or tx.next_deadline() is None:
                break
            tx.expire(tx.next_deadline())
        assert tx.terminated or tx.state in ("proceeding", "trying", "calling"), tx.state


def _machine_in(table_name, state):
    """A transaction of the given table, put in ``state`` as its table allows."""
    reliable = False
    if table_name.startswith("client"):
        method = "INVITE" if table_name == "client_invite" else "BYE"
        tx = ClientTransaction(method, "b", b"x", reliable=reliable, now=0.0, fr_timer=5.0)
    else:
        method = "INVITE" if table_name == "server_invite" else "BYE"
        tx = ServerTransaction(method, "k", reliable=reliable, dest=None)
    tx.state = state
    return tx


@pytest.mark.parametrize("table_name,state,event", [
    (name, state, event) for name, table in TABLES.items() for (state, event) in table])
def test_every_state_input_pair_steps_to_its_row(table_name, state, event):
    tx = _machine_in(table_name, state)
    actions, expected = TABLES[table_name][(state, event)]
    out = tx.step(event, 10.0)
    assert tx.state == expected
    assert all(a in actions for a in out)                # only the row's own I/O actions
    if expected == "terminated":
        assert tx.next_deadline() is None                # nothing left to fire
