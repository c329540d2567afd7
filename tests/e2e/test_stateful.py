"""The transaction-stateful proxy (tm) end to end: CANCEL, forking, timers, failure_route,
serial forking by q, redirects, retransmissions, branch_route and onreply_route.

Each test starts serlite on a config made from the SER seed config (tests/data/configs/valid/
seed.cfg) plus the routes it needs. The peers are sipp where a scenario can say what the peer
does, and raw UDP sockets (RawUas, a raw caller) where the test must see or hold back single
messages: which branch gets an INVITE first, a lost INVITE, a lost 200. Every wait is for a
message, a sipp exit or a log line, with a deadline; "nothing arrived" is checked after a
barrier() (an OPTIONS answered by serlite after everything it had to send before).
"""

import re
import secrets
import time

import pytest

from . import sipnet
from .sipnet import (UdpPeer, barrier, contacts_of, has_status, header_values, is_final,
                     is_request, request_line, response_to, status_of)

LOCAL = "127.0.0.1"


# --- configs ----------------------------------------------------------------------------------

def config(*, modparams="", before_relay="", routes="", modules=()):
    """The SER seed config with tm parameters, script lines just before the main route's
    t_relay() and extra route blocks."""
    loads = "".join(f'loadmodule "/usr/lib/ser/modules/{m}.so"\n' for m in modules)
    return f"""\
debug=3
fork = yes
log_stderr=no

loadmodule "/usr/lib/ser/modules/sl.so"
loadmodule "/usr/lib/ser/modules/tm.so"
loadmodule "/usr/lib/ser/modules/rr.so"
loadmodule "/usr/lib/ser/modules/usrloc.so"
loadmodule "/usr/lib/ser/modules/registrar.so"
{loads}
modparam("usrloc", "db_mode", 0)
modparam("rr", "enable_full_rr", yes)
{modparams}

route {{
    if (!method == "REGISTER") record_route();
    if (loose_route()) {{
        t_relay();
        break;
    }}
    if (uri == myself) {{
        if (method == "REGISTER") {{
            save("location");
            break;
        }}
        if (!lookup("location")) {{
            sl_reply("404", "Not Found");
            break;
        }}
    }}
{before_relay}
    t_relay();
}}
{routes}
"""


# --- peers ------------------------------------------------------------------------------------

def register(server, user, contacts, timeout=3.0):
    """One REGISTER for sip:user@server with these Contact header values (e.g.
    '<sip:a@127.0.0.1:5070>;q=0.5'); fails unless the 200 lists every one of them."""
    aor = f"sip:{user}@{LOCAL}:{server.port}"
    with UdpPeer() as peer:
        req = sipnet.make_request("REGISTER", f"sip:{LOCAL}:{server.port}",
                                  via=(peer.host, peer.port), to=aor,
                                  headers=[f"Contact: {c}" for c in contacts] + ["Expires: 600"])
        peer.send(req, server.addr)
        finals = [r for r in peer.recv_until(is_final, timeout) if is_final(r)]
    assert finals and status_of(finals[0]) == 200, f"REGISTER {user}: {finals!r}"
    listed = set(contacts_of(finals[0]))
    wanted = {re.search(r"<([^>]*)>", c).group(1) for c in contacts}
    assert wanted <= listed, f"REGISTER {user}: 200 lists {listed}, wanted {wanted}"


def sipp_contact(uas, user="bob"):
    return f"<sip:{user}@{uas.host}:{uas.port};transport=udp>"


def start_uac(server, workdir, scenario="uac_call.xml", *, service="bob", timeout=15,
              trace_msg=False):
    """One sipp call in the background (run_uac waits for its end; these tests drive raw
    peers meanwhile)."""
    args = ["-sf", sipnet.SCENARIOS / scenario, "-s", service, "-t", "u1", "-i", LOCAL,
            "-p", sipnet.free_port(), "-m", 1, "-r", 1, sipnet.hostport(*server.addr)]
    return sipnet.start_sipp(args, workdir=workdir, timeout=timeout, trace_msg=trace_msg,
                             name=f"uac-{scenario.split('.')[0]}-{secrets.token_hex(2)}")


def top_branch(msg):
    return re.search(r"branch=([^;,\s]+)", header_values(msg, "via")[0]).group(1)


class RawUas(UdpPeer):
    """A UAS on a raw UDP socket: it sees every datagram and answers only when told to.
    Responses go back to serlite (the sender of every request here)."""

    def __init__(self, server, user="bob"):
        super().__init__()
        self.server = server
        self.user = user
        self.tag = secrets.token_hex(4)

    @property
    def uri(self):
        return f"sip:{self.user}@{self.host}:{self.port}"

    def expect(self, method, timeout=5.0):
        """The next `method` request (other datagrams before it are skipped)."""
        got = self.recv_until(is_request(method), timeout)
        if not got or not is_request(method)(got[-1]):
            raise sipnet.HarnessError(f"{self.uri}: no {method} within {timeout} s: {got!r}")
        return got[-1]

    def reply(self, request, status, reason):
        headers = [f"Contact: <{self.uri}>"] if status < 300 and request_line(request)[0] \
            == "INVITE" else []
        self.send(response_to(request, status, reason, to_tag=self.tag, headers=headers),
                  self.server.addr)

    def answer_call(self, invite):
        """180, 200; then the caller's ACK and BYE (which come through serlite, as the
        dialog is record-routed); 200 for the BYE."""
        self.reply(invite, 180, "Ringing")
        self.reply(invite, 200, "OK")
        self.expect("ACK")
        bye = self.expect("BYE")
        self.reply(bye, 200, "OK")


def sipp_messages(result, first_line):
    """The messages a sipp run received whose first line starts with `first_line` (its
    -trace_msg log)."""
    try:
        log = result.path("messages.log").read_text(errors="replace")
    except FileNotFoundError:
        return []
    blocks = re.split(r"message received \[\d+\] bytes :", log)[1:]
    blocks = [re.split(r"\n-{20,}", b)[0].strip() for b in blocks]
    return [b for b in blocks if b.startswith(first_line)]


def grace(uac, calls=1):
    # the far end waits for its -timeout only if the caller failed; then a few seconds
    return None if uac.ok(calls) else 5


# --- 1. CANCEL --------------------------------------------------------------------------------

def test_cancel_while_ringing(ser, tmp_path):
    # RFC 3261 16.10: the proxy answers the CANCEL with 200, CANCELs the ringing branch;
    # the UAS's 487 goes up as the INVITE's final response; 17.1.1.3: the proxy ACKs the
    # 487 itself and absorbs the caller's ACK.
    server = ser(config())
    with sipnet.start_uas(workdir=tmp_path, scenario="uas_ring_cancel.xml",
                          trace_msg=True) as uas:
        register(server, "bob", [sipp_contact(uas)])
        uac = sipnet.run_uac(server.addr, workdir=tmp_path, scenario="uac_cancel.xml",
                             trace_msg=True)
        uas_result = uas.wait(timeout=grace(uac))
    uac.assert_ok(1)
    uas_result.assert_ok(1)
    assert uas_result.received("CANCEL") == 1, uas_result.describe()
    assert uas_result.received("ACK") == 1, uas_result.describe()
    assert len(sipp_messages(uac, "SIP/2.0 487")) == 1, "the 487 was not absorbed by its ACK"


# --- 2. parallel forking ----------------------------------------------------------------------

def test_parallel_fork_cancels_the_other_branch(ser, tmp_path):
    # Two contacts for bob: the INVITE goes to both (16.6). One rings then answers after
    # 300 ms; the 200 goes up and the other branch, ringing, is CANCELled (16.7 step 10);
    # its 487 stays at the proxy. The caller's ACK and BYE reach the answering UAS only.
    server = ser(config())
    with sipnet.start_uas(workdir=tmp_path, delay_ms=300, trace_msg=True,
                          name="answering") as winner, \
            sipnet.start_uas(workdir=tmp_path, scenario="uas_ring_cancel.xml",
                             trace_msg=True, name="cancelled") as loser:
        register(server, "bob", [sipp_contact(winner), sipp_contact(loser)])
        uac = sipnet.run_uac(server.addr, workdir=tmp_path, scenario="uac_fork_call.xml",
                             trace_msg=True)
        winner_result = winner.wait(timeout=grace(uac))
        loser_result = loser.wait(timeout=grace(uac))
    uac.assert_ok(1)
    winner_result.assert_ok(1)
    loser_result.assert_ok(1)
    assert loser_result.received("CANCEL") == 1, loser_result.describe()
    assert winner_result.received("CANCEL") == 0, winner_result.describe()
    assert sipp_messages(uac, "SIP/2.0 487") == []


def test_cancel_waits_for_the_late_branch_to_ring(ser, tmp_path):
    # The first contact answers at once; the second has not sent anything yet, so it may
    # not be CANCELled yet (RFC 3261 9.1: a CANCEL waits for a provisional response). When
    # it rings, the CANCEL follows; its 180 and 487 stay at the proxy (the call is
    # answered), so the caller sees one 180 and the 200 only.
    server = ser(config())
    with RawUas(server, "fast") as fast, RawUas(server, "late") as late:
        register(server, "bob", [f"<{fast.uri}>", f"<{late.uri}>"])
        with start_uac(server, tmp_path, "uac_fork_call.xml", trace_msg=True) as uac:
            invite_fast = fast.expect("INVITE")
            invite_late = late.expect("INVITE")
            fast.reply(invite_fast, 180, "Ringing")
            fast.reply(invite_fast, 200, "OK")
            fast.expect("ACK")
            barrier(server.addr)
            before = late.drain()
            assert not any(is_request("CANCEL")(m) for m in before), \
                f"CANCEL before the branch sent a provisional response: {before!r}"
            late.reply(invite_late, 180, "Ringing")
            cancel = late.expect("CANCEL")
            assert top_branch(cancel) == top_branch(invite_late)
            late.reply(cancel, 200, "OK")
            late.reply(invite_late, 487, "Request Terminated")
            late.expect("ACK")
            fast.reply(fast.expect("BYE"), 200, "OK")
            result = uac.wait()
    result.assert_ok(1)
    assert len(sipp_messages(result, "SIP/2.0 180")) == 1
    assert sipp_messages(result, "SIP/2.0 487") == []


# --- 3. no answer -----------------------------------------------------------------------------

@pytest.mark.parametrize("timer", [dict(modparams='modparam("tm", "fr_inv_timer", 2000)'),
                                   dict(before_relay='    t_set_fr(2000);')],
                         ids=["fr_inv_timer", "t_set_fr"])
def test_ringing_without_answer_times_out_with_408(ser, tmp_path, timer):
    # fr_inv_timer (16.6 step 11, timer C) runs from the 180: after 2 s the proxy CANCELs
    # the branch (16.8) and answers the caller 408. Set for all transactions by modparam,
    # or for this one by t_set_fr (the modparam default is 120 s).
    server = ser(config(**timer))
    with sipnet.start_uas(workdir=tmp_path, scenario="uas_ring_cancel.xml",
                          trace_msg=True) as uas:
        register(server, "bob", [sipp_contact(uas)])
        start = time.monotonic()
        uac = sipnet.run_uac(server.addr, workdir=tmp_path, scenario="uac_invite_408.xml")
        elapsed = time.monotonic() - start
        uas_result = uas.wait(timeout=grace(uac))
    uac.assert_ok(1)
    assert 1.5 <= elapsed <= 6, f"408 after {elapsed:.2f} s, fr_inv_timer is 2 s"
    uas_result.assert_ok(1)
    assert uas_result.received("CANCEL") == 1, uas_result.describe()


def test_silent_far_end_times_out_with_408(ser, tmp_path):
    # No response at all: the INVITE is retransmitted (timer A, 17.1.1.2) until fr_timer
    # (1 s) ends the branch with 408. Nothing was received, so nothing is CANCELled (9.1).
    # The armed failure_route sees the 408 tm made up (t_check_status).
    server = ser(config(modparams='modparam("tm", "fr_timer", 1000)',
                        before_relay='    if (method == "INVITE") t_on_failure("1");',
                        routes="""
failure_route[1] {
    if (t_check_status("408")) log(1, "failure_route saw the 408");
}
"""))
    with RawUas(server) as hole:
        register(server, "bob", [f"<{hole.uri}>"])
        start = time.monotonic()
        uac = sipnet.run_uac(server.addr, workdir=tmp_path, scenario="uac_invite_408.xml")
        elapsed = time.monotonic() - start
        uac.assert_ok(1)
        barrier(server.addr)
        got = hole.drain()
    assert 0.8 <= elapsed <= 6, f"408 after {elapsed:.2f} s, fr_timer is 1 s"
    invites = [m for m in got if is_request("INVITE")(m)]
    assert len(invites) >= 2, f"no retransmission of the INVITE: {got!r}"
    assert len({top_branch(m) for m in invites}) == 1
    assert not any(is_request("CANCEL")(m) for m in got), got
    sipnet.wait_log(server, r"failure_route saw the 408")


# --- 4. failure_route -------------------------------------------------------------------------

def busy_config(second_uri=None):
    reroute = (f'rewriteuri("{second_uri}");\n        t_relay();' if second_uri
               else 'log(1, "not re-routed");')
    return config(before_relay='    if (method == "INVITE") t_on_failure("1");',
                  routes=f"""
failure_route[1] {{
    if (t_check_status("486")) {{
        {reroute}
    }}
}}
""")


def test_failure_route_reroutes_busy_call(ser, tmp_path):
    # The first UAS is busy; failure_route[1] sends the INVITE to a second one, which
    # answers. The caller sees the 200 only (a 486 would be unexpected and fail its call).
    with sipnet.start_uas(workdir=tmp_path, scenario="uas_busy.xml", name="busy") as busy, \
            sipnet.start_uas(workdir=tmp_path, name="second", trace_msg=True) as second:
        server = ser(busy_config(f"sip:second@{second.host}:{second.port}"))
        register(server, "bob", [sipp_contact(busy)])
        uac = sipnet.run_uac(server.addr, workdir=tmp_path)
        busy_result = busy.wait(timeout=grace(uac))
        second_result = second.wait(timeout=grace(uac))
    uac.assert_ok(1)
    busy_result.assert_ok(1)
    second_result.assert_ok(1)
    assert second_result.received("INVITE") == 1


def test_failure_route_that_does_nothing_lets_486_through(ser, tmp_path):
    # failure_route[1] runs (its log line) but relays nothing: the 486 is the best
    # response (16.7 step 6) and goes up; the proxy ACKs it to the UAS itself.
    with sipnet.start_uas(workdir=tmp_path, scenario="uas_busy.xml") as busy:
        server = ser(busy_config(None))
        register(server, "bob", [sipp_contact(busy)])
        uac = sipnet.run_uac(server.addr, workdir=tmp_path, scenario="uac_invite_486.xml")
        busy_result = busy.wait(timeout=grace(uac))
    uac.assert_ok(1)
    busy_result.assert_ok(1)
    sipnet.wait_log(server, r"not re-routed")


@pytest.mark.parametrize("reroute", [
    'rewriteuri("SECOND");',
    'append_branch("SECOND");',
    'rewriteuri("SECOND");\n        append_branch();',
], ids=["rewriteuri", "append_branch_uri", "ser09_rewrite_append_branch"])
def test_failure_route_reroute_sends_one_invite_to_the_new_target(ser, tmp_path, reroute):
    # The three ways a SER config re-routes in failure_route: Kamailio's rewriteuri() +
    # t_relay(), append_branch(uri) + t_relay(), and SER 0.9's idiom rewrite + append_branch()
    # + t_relay(). Each must send exactly one INVITE, to the new target, and none back to
    # the destination that just failed (in failure_route SER's tm takes the destination set,
    # and the R-URI only when the script rewrote it; Kamailio: ruri_mark_consumed() before
    # failure_route, ruri_mark_new() on a rewrite).
    with RawUas(None, "first") as first, RawUas(None, "second") as second:
        server = ser(config(before_relay='    if (method == "INVITE") t_on_failure("1");',
                            routes=f"""
failure_route[1] {{
    if (t_check_status("486")) {{
        {reroute.replace("SECOND", second.uri)}
        t_relay();
    }}
}}
"""))
        first.server = second.server = server
        register(server, "bob", [f"<{first.uri}>"])
        with start_uac(server, tmp_path) as uac:
            invite = first.expect("INVITE")
            first.reply(invite, 486, "Busy Here")
            first.expect("ACK")
            barrier(server.addr)
            again = [m for m in first.drain() if is_request("INVITE")(m)]
            invites = [m for m in second.drain() if is_request("INVITE")(m)]
            assert again == [], f"the busy destination got the INVITE again: {again!r}"
            assert len(invites) == 1, f"the new target got {len(invites)} INVITEs: {invites!r}"
            assert request_line(invites[0])[1] == second.uri
            second.answer_call(invites[0])
            result = uac.wait()
    result.assert_ok(1)


@pytest.mark.parametrize("guard", [
    True, False,
], ids=["t_was_cancelled", "unguarded"])
def test_failure_route_after_cancel_does_not_fork(ser, tmp_path, guard):
    # The caller CANCELs while the first UAS rings; the UAS's 487 runs failure_route[1],
    # which re-routes to a second UAS. The request is cancelled: there must be no new
    # branch (RFC 3261 16.10: the proxy MUST cancel every pending client transaction of a
    # CANCELled response context; SER's tm answers t_relay() on a cancelled transaction
    # with E_CANCELED). The caller gets the 487. Scripts guard with t_was_cancelled();
    # without the guard t_relay() itself must refuse.
    check = ('if (t_was_cancelled()) {\n        log(1, "cancelled: not re-routed");\n'
             '        exit;\n    }') if guard else ""
    with RawUas(None, "first") as first, RawUas(None, "second") as second:
        server = ser(config(before_relay='    if (method == "INVITE") t_on_failure("1");',
                            routes=f"""
failure_route[1] {{
    {check}
    rewriteuri("{second.uri}");
    t_relay();
}}
"""))
        first.server = second.server = server
        register(server, "bob", [f"<{first.uri}>"])
        with start_uac(server, tmp_path, "uac_cancel.xml") as uac:
            invite = first.expect("INVITE")
            first.reply(invite, 180, "Ringing")
            cancel = first.expect("CANCEL")
            first.reply(cancel, 200, "OK")
            first.reply(invite, 487, "Request Terminated")
            first.expect("ACK")
            barrier(server.addr)
            stray = second.drain()
            assert stray == [], f"a new branch after the CANCEL: {stray!r}"
            result = uac.wait()
    result.assert_ok(1)
    if guard:
        sipnet.wait_log(server, r"cancelled: not re-routed")


# --- 5. serial forking by q -------------------------------------------------------------------

SERIAL = config(before_relay="""\
    if (method == "INVITE") {
        t_load_contacts();
        t_next_contacts();
        t_on_failure("next");
    }""", routes="""
failure_route[next] {
    if (t_next_contacts()) {
        t_on_failure("next");
        t_relay();
    }
}
""")


def test_serial_forking_by_q(ser, tmp_path):
    # t_load_contacts/t_next_contacts: the q=1.0 contact alone first; only after its 480
    # does the q=0.5 contact get the INVITE, and its 200 ends the call set-up.
    server = ser(SERIAL)
    with RawUas(server, "first") as first, RawUas(server, "second") as second:
        # registered lowest q first, so that the order is the q's, not the REGISTER's
        register(server, "bob", [f"<{second.uri}>;q=0.5", f"<{first.uri}>;q=1.0"])
        with start_uac(server, tmp_path) as uac:
            invite = first.expect("INVITE")
            assert request_line(invite)[1] == first.uri
            barrier(server.addr)
            early = second.drain()
            assert early == [], f"the q=0.5 contact got {early!r} before the q=1.0 one failed"
            first.reply(invite, 480, "Temporarily Unavailable")
            first.expect("ACK")
            invite2 = second.expect("INVITE")
            assert request_line(invite2)[1] == second.uri
            second.answer_call(invite2)
            result = uac.wait()
    result.assert_ok(1)


# --- 6. redirect server -----------------------------------------------------------------------

REDIRECT = """\
debug=3
loadmodule "/usr/lib/ser/modules/sl.so"
loadmodule "/usr/lib/ser/modules/tm.so"
loadmodule "/usr/lib/ser/modules/usrloc.so"
loadmodule "/usr/lib/ser/modules/registrar.so"
modparam("usrloc", "db_mode", 0)

route {
    if (uri == myself) {
        if (method == "REGISTER") {
            save("location");
            break;
        }
        if (lookup("location")) {
            REPLY;
            exit;
        }
        sl_send_reply("404", "Not Found");
    }
}
"""


def q_of(value):
    m = re.search(r";\s*q\s*=\s*([0-9.]+)", value.split(">", 1)[-1])
    return float(m.group(1)) if m else None


@pytest.mark.parametrize("reply", ['sl_send_reply("302", "Moved Temporarily")',
                                   't_reply("302", "Moved")'], ids=["sl", "tm"])
def test_redirect_lists_destination_set(ser, tmp_path, reply):
    # A redirect server (SER's lookup(); sl_send_reply("302")): the 3xx lists the
    # destination set as Contact headers (RFC 3261 21.3), q as registered (10.2.1.2).
    server = ser(REDIRECT.replace("REPLY", reply))
    a, b, c = (f"sip:{u}@{LOCAL}:{p}" for u, p in (("a", 5071), ("b", 5072), ("c", 5073)))
    register(server, "bob", [f"<{a}>;q=1.0", f"<{b}>;q=0.5", f"<{c}>"])
    with UdpPeer() as caller:
        uri = f"sip:bob@{LOCAL}:{server.port}"
        invite = sipnet.make_request("INVITE", uri, via=(caller.host, caller.port), to=uri)
        caller.send(invite, server.addr)
        got = caller.recv_until(is_final, 3)
        assert got and status_of(got[-1]) == 302, got
        moved = got[-1]
        # one Contact header per destination, each with the q it was registered with
        found = {re.search(r"<([^>]*)>", v).group(1): q_of(v)
                 for v in header_values(moved, "contact")}
        assert len(found) == len(header_values(moved, "contact"))
        assert found == {a: 1.0, b: 0.5, c: None}, header_values(moved, "contact")
        if reply.startswith("t_reply"):
            # stateful: the 302 is retransmitted (timer G, 17.2.1) until the ACK comes
            again = caller.recv_until(has_status(302), 2)
            assert again and status_of(again[-1]) == 302, "no retransmitted 302"
            caller.send(ack_for(invite, moved), server.addr)
            # after the ACK the transaction is Confirmed (17.2.1): a late copy of the INVITE
            # is absorbed without a reply (in Completed it would get the 302 again)
            caller.send(invite, server.addr)
            barrier(server.addr)
            late = caller.drain()
            assert late == [], f"after the ACK: {late!r}"


def ack_for(invite, response):
    """17.1.1.3: the ACK of a non-2xx final: the INVITE's R-URI, top Via, From, Call-ID and
    CSeq number; the response's To."""
    head = invite.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    ruri = lines[0].split(" ")[1]
    keep = [x for x in lines[1:] if x.split(":", 1)[0].lower() in ("via", "from", "call-id",
                                                                      "max-forwards")]
    to = "To: " + header_values(response, "to")[0]
    cseq = re.search(r"CSeq: (\d+)", head).group(1)
    return ("\r\n".join([f"ACK {ruri} SIP/2.0", *keep, to, f"CSeq: {cseq} ACK",
                         "Content-Length: 0"]) + "\r\n\r\n").encode()


# --- 7. lost packets --------------------------------------------------------------------------

def test_lost_invite_is_retransmitted_by_the_proxy(ser, tmp_path):
    # The first INVITE to the UAS is "lost" (ignored): serlite's timer A (T1 = 0.5 s,
    # 17.1.1.2) sends the same request again, same branch, and the call goes on.
    server = ser(config())
    with RawUas(server) as uas:
        register(server, "bob", [f"<{uas.uri}>"])
        with start_uac(server, tmp_path) as uac:
            first = uas.expect("INVITE")
            t1 = time.monotonic()
            second = uas.expect("INVITE", timeout=3)
            t2 = time.monotonic()
            uas.answer_call(second)
            result = uac.wait()
    result.assert_ok(1)
    assert 0.35 <= t2 - t1 <= 1.0, f"retransmission after {t2 - t1:.3f} s, timer A is 0.5 s"
    assert top_branch(first) == top_branch(second)
    assert first == second


def dialog_request(method, caller, server, *, call_id, from_tag, to, cseq, ruri, routes):
    lines = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/UDP {caller.host}:{caller.port};branch={sipnet.new_branch()};rport",
             "Max-Forwards: 70",
             *[f"Route: {r}" for r in routes],
             f"From: <sip:alice@{caller.host}:{caller.port}>;tag={from_tag}",
             f"To: {to}",
             f"Call-ID: {call_id}",
             f"CSeq: {cseq} {method}",
             f"Contact: <sip:alice@{caller.host}:{caller.port}>",
             "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_lost_200_is_recovered_by_uas_retransmission(ser, tmp_path):
    # The UAS's 200 is "lost" on its way to the caller (a raw UDP caller ignores the first
    # one). The UAS (sipp) retransmits its 200 until the ACK (13.3.1.4); serlite relays the
    # retransmission too (16.7 step 5 / 13.3.1.4), the caller ACKs it and hangs up.
    server = ser(config())
    with sipnet.start_uas(workdir=tmp_path, trace_msg=True) as uas:
        register(server, "bob", [sipp_contact(uas)])
        with UdpPeer() as caller:
            call_id, from_tag = secrets.token_hex(8) + "@e2e", secrets.token_hex(4)
            target = f"sip:bob@{LOCAL}:{server.port}"
            caller.send(dialog_request("INVITE", caller, server, call_id=call_id,
                                       from_tag=from_tag, to=f"<{target}>", cseq=1,
                                       ruri=target, routes=()), server.addr)
            got = caller.recv_until(has_status(200), 5)
            assert got and status_of(got[-1]) == 200, got
            t1 = time.monotonic()
            again = caller.recv_until(has_status(200), 3)
            t2 = time.monotonic()
            assert again and status_of(again[-1]) == 200, f"no retransmitted 200: {again!r}"
            ok = again[-1]
            routes = list(reversed(header_values(ok, "record-route")))
            assert routes, "the seed config record-routes"
            peer_uri = contacts_of(ok)[0]
            to = header_values(ok, "to")[0]
            common = dict(call_id=call_id, from_tag=from_tag, to=to, ruri=peer_uri,
                          routes=routes)
            caller.send(dialog_request("ACK", caller, server, cseq=1, **common), server.addr)
            caller.send(dialog_request("BYE", caller, server, cseq=2, **common), server.addr)
            bye_ok = caller.recv_until(lambda m: status_of(m) == 200
                                       and b" BYE\r\n" in m, 5)
            assert bye_ok and b" BYE\r\n" in bye_ok[-1], f"no 200 for the BYE: {bye_ok!r}"
        uas_result = uas.wait(timeout=10)
    uas_result.assert_ok(1)
    assert 0.3 <= t2 - t1 <= 1.5, f"second 200 after {t2 - t1:.3f} s"
    assert uas_result.received("ACK") == 1


# --- 8. branch_route --------------------------------------------------------------------------

def test_branch_route_drops_and_edits_branches(ser, tmp_path):
    # t_on_branch: branch_route[1] runs once per destination on that branch's own copy of
    # the INVITE: `drop` there means that destination gets nothing; append_hf edits only
    # the branch it runs for.
    server = ser(config(modules=["textops"],
                        before_relay='    if (method == "INVITE") t_on_branch("1");',
                        routes="""
branch_route[1] {
    if (uri =~ "drop-me") drop;
    append_hf("X-Branch: yes\\r\\n");
}
"""))
    with RawUas(server, "drop-me") as dropped, RawUas(server, "bob") as kept:
        register(server, "bob", [f"<{dropped.uri}>", f"<{kept.uri}>"])
        with start_uac(server, tmp_path) as uac:
            invite = kept.expect("INVITE")
            barrier(server.addr)
            stray = dropped.drain()
            assert header_values(invite, "X-Branch") == ["yes"], invite
            kept.answer_call(invite)
            result = uac.wait()
    result.assert_ok(1)
    assert stray == [], f"the dropped branch got {stray!r}"


# --- 9. onreply_route -------------------------------------------------------------------------

def test_onreply_route_sees_provisional_reply(ser, tmp_path):
    # t_on_reply: onreply_route[1] sees this INVITE's replies; `status` matches the 180
    # (not the UAS's 100, not the 200), and a header it appends goes up with the 180.
    server = ser(config(modules=["textops"],
                        before_relay='    if (method == "INVITE") t_on_reply("1");',
                        routes="""
onreply_route[1] {
    if (status =~ "^18") {
        log(1, "onreply_route[1] saw a 18x");
        append_hf("X-Seen: 18x\\r\\n");
    }
}
"""))
    with sipnet.start_uas(workdir=tmp_path) as uas:
        register(server, "bob", [sipp_contact(uas)])
        uac = sipnet.run_uac(server.addr, workdir=tmp_path, trace_msg=True)
        uas_result = uas.wait(timeout=grace(uac))
    uac.assert_ok(1)
    uas_result.assert_ok(1)
    sipnet.wait_log(server, r"onreply_route\[1\] saw a 18x")
    assert server.log().count("saw a 18x") == 1, "the route matched more than the one 180"
    ringing = sipp_messages(uac, "SIP/2.0 180")
    assert len(ringing) == 1 and "X-Seen: 18x" in ringing[0], ringing
    assert all("X-Seen" not in m for m in sipp_messages(uac, "SIP/2.0 200")), \
        "the 200 went through the 18x branch of the route"
