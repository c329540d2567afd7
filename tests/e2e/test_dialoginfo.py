"""Busy lamps end to end: serlite with presence and pua_dialoginfo, a watcher on a raw UDP
socket SUBSCRIBEd with ``Event: dialog`` (RFC 4235) to bob's or alice's address, and calls
made by sipp (a UAC calling as sip:alice@serlite, sipp UASes registered as bob).  The
NOTIFY bodies must say how the call went, in order: the callee's early (with the caller in
``<remote>``), confirmed, terminated; the caller's trying, early, confirmed, terminated; a
forked call as one dialog; a cancelled and a rejected call with their reasons.

No real BLF client runs here: baresip and linphonec cannot subscribe to the dialog package
(baresip's presence module speaks PIDF only), and no desk phone fits in a test.
"""

import re
import secrets
import time
from pathlib import Path

import pytest

from . import sipnet
from .sipnet import UdpPeer, is_final, request_line, response_to, status_of
from .test_presence import RawPhone
from .test_shipped_config import auth_args, auth_register, start
from .test_stateful import LOCAL, grace, register, sipp_contact

CONFIG = """\
debug=3
fork = yes
log_stderr=no

loadmodule "/usr/lib/ser/modules/sl.so"
loadmodule "/usr/lib/ser/modules/tm.so"
loadmodule "/usr/lib/ser/modules/rr.so"
loadmodule "/usr/lib/ser/modules/usrloc.so"
loadmodule "/usr/lib/ser/modules/registrar.so"
loadmodule "/usr/lib/ser/modules/presence.so"
loadmodule "/usr/lib/ser/modules/pua_dialoginfo.so"
modparam("usrloc", "db_mode", 0)
modparam("rr", "enable_full_rr", yes)

route {
    if (method == "SUBSCRIBE") {
        handle_subscribe();
        exit;
    }
    if (!method == "REGISTER") record_route();
    if (loose_route()) {
        t_relay();
        exit;
    }
    if (uri == myself) {
        if (method == "REGISTER") {
            save("location");
            exit;
        }
        if (method == "INVITE" && !has_totag()) {
            dialoginfo_set();
        }
        if (!lookup("location")) {
            sl_reply("404", "Not Found");
            exit;
        }
    }
    t_relay();
}
"""

DEADLINE = 15.0     # seconds a whole call's NOTIFYs may take


class Watcher(UdpPeer):
    """A BLF key's subscription: SUBSCRIBE sip:user@serlite (Event: dialog), every NOTIFY
    answered 200 and its body kept (a retransmission, same CSeq, once)."""

    def __init__(self, server, user):
        super().__init__()
        self.server = server
        self.uri = f"sip:{user}@{LOCAL}:{server.port}"
        self.notifies = {}      # CSeq -> body
        self.order = []         # CSeqs in the order they came

    def subscribe(self, timeout=5.0):
        req = sipnet.make_request(
            "SUBSCRIBE", self.uri, via=(self.host, self.port), to=self.uri,
            from_=f"sip:watcher@{LOCAL}:{self.server.port}",
            headers=[f"Contact: <sip:watcher@{self.host}:{self.port}>", "Event: dialog",
                     "Accept: application/dialog-info+xml", "Expires: 600"])
        self.send(req, self.server.addr)
        got = self.recv_until(is_final, timeout)
        finals = [m for m in got if is_final(m)]
        assert finals and status_of(finals[0]) in (200, 202), f"SUBSCRIBE: {got!r}"
        for m in got:
            self._take(m)
        # the first NOTIFY (RFC 6665 4.2.1): no call yet, an empty full-state document
        self.wait(lambda docs: len(docs) >= 1, timeout)
        assert self.documents() == [[]], self.bodies()

    def _take(self, msg):
        if (request_line(msg) or (None,))[0] != "NOTIFY":
            return
        self.send(response_to(msg, 200, "OK"), self.server.addr)
        cseq = int(re.search(rb"\r\nCSeq: *(\d+)", msg).group(1))
        if cseq not in self.notifies:
            self.notifies[cseq] = msg.split(b"\r\n\r\n", 1)[1]
            self.order.append(cseq)

    def wait(self, done, timeout=DEADLINE):
        """Take NOTIFYs until ``done(self.documents())`` or the deadline."""
        deadline = time.monotonic() + timeout
        while not done(self.documents()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise sipnet.HarnessError(f"{self.uri}: NOTIFYs so far {self.bodies()!r}")
            for m in self.recv_until(lambda m: True, left):
                self._take(m)
        return self.documents()

    def bodies(self):
        return [self.notifies[c] for c in self.order]

    def documents(self):
        """Per NOTIFY, its dialogs' (state, event, code), in the order the NOTIFYs came."""
        return [[(s.decode(), e.decode() or None, c.decode() or None) for e, c, s in
                 re.findall(rb'<state(?: event="([a-z-]+)")?(?: code="(\d+)")?>'
                            rb'([a-z]+)</state>', body)] for body in self.bodies()]


def ended(docs):
    return bool(docs) and any(s == "terminated" for s, _, _ in docs[-1])


def states(docs):
    """The NOTIFYs' one dialog each: its states, the initial empty document left out."""
    assert all(len(d) <= 1 for d in docs), docs
    return [d[0] for d in docs if d]


def local_caller(scenario, workdir):
    """A copy of a sipp UAC scenario that calls as sip:alice@serlite (a local party: its
    watchers see the call) rather than from sipp's own address."""
    text = (sipnet.SCENARIOS / scenario).read_text()
    assert "sip:alice@[local_ip]:[local_port]>" in text
    copy = Path(workdir) / f"local-{scenario}"
    copy.write_text(text.replace("sip:alice@[local_ip]:[local_port]>",
                                 "sip:alice@[remote_ip]:[remote_port]>"))
    return copy


def call(server, workdir, scenario, *, timeout=15):
    args = ["-sf", local_caller(scenario, workdir), "-s", "bob", "-t", "u1", "-i", LOCAL,
            "-p", sipnet.free_port(), "-m", 1, "-r", 1, sipnet.hostport(*server.addr)]
    return sipnet.start_sipp(args, workdir=workdir, timeout=timeout,
                             name=f"uac-{secrets.token_hex(2)}")


@pytest.mark.parametrize("python", [None, sipnet.PYTHON3_LIGHT], ids=["python3", "light"])
def test_a_call_gives_the_watchers_early_confirmed_terminated_in_order(ser, tmp_path, python):
    server = ser(CONFIG, python=python)
    with sipnet.start_uas(workdir=tmp_path) as uas, Watcher(server, "bob") as bob, \
            Watcher(server, "alice") as alice:
        register(server, "bob", [sipp_contact(uas)])
        bob.subscribe()
        alice.subscribe()
        with call(server, tmp_path, "uac_call.xml") as uac:
            bob_docs = bob.wait(ended)
            alice_docs = alice.wait(ended)
            result = uac.wait()
        uas_result = uas.wait(timeout=grace(result))
    result.assert_ok(1)
    uas_result.assert_ok(1)
    assert states(bob_docs) == [("early", None, None), ("confirmed", None, None),
                                ("terminated", "remote-bye", None)], bob.bodies()
    assert states(alice_docs) == [("trying", None, None), ("early", None, None),
                                  ("confirmed", None, None),
                                  ("terminated", "local-bye", None)], alice.bodies()
    early = bob.bodies()[1]
    # the caller, for a pick-up; the entity; each watcher's own version count (RFC 4235 4.1)
    assert re.search(rb"<remote>\s*<identity>sip:alice@127\.0\.0\.1:\d+</identity>", early)
    assert b'direction="recipient"' in early and b'call-id="' in early
    assert [re.search(rb'<dialog-info[^>]* version="(\d+)"', b).group(1)
            for b in bob.bodies()] == [b"0", b"1", b"2", b"3"]
    assert bob.order == sorted(bob.order)


def test_a_forked_call_is_one_dialog_the_answering_phones(ser, tmp_path):
    # bob has two phones: one rings at once and is CANCELled when the other, ringing
    # 300 ms later, answers (RFC 3261 16.7 step 10)
    server = ser(CONFIG)
    with sipnet.start_uas(workdir=tmp_path, delay_ms=300, name="answering") as winner, \
            sipnet.start_uas(workdir=tmp_path, scenario="uas_ring_cancel.xml",
                             name="cancelled") as loser, \
            Watcher(server, "bob") as bob:
        register(server, "bob", [sipp_contact(winner), sipp_contact(loser)])
        bob.subscribe()
        with call(server, tmp_path, "uac_fork_call.xml") as uac:
            docs = bob.wait(ended)
            result = uac.wait()
        winner_result = winner.wait(timeout=grace(result))
        loser_result = loser.wait(timeout=grace(result))
    result.assert_ok(1)
    winner_result.assert_ok(1)
    loser_result.assert_ok(1)
    assert states(docs) == [("early", None, None), ("confirmed", None, None),
                            ("terminated", "remote-bye", None)], bob.bodies()
    tags = [re.search(rb'local-tag="([^"]+)"', b).group(1) for b in bob.bodies()[1:]]
    # ringing: the first phone's early dialog; answered: the other's, to the end
    assert tags[0] != tags[1] and tags[1] == tags[2], tags


def test_a_cancelled_call_ends_cancelled(ser, tmp_path):
    server = ser(CONFIG)
    with sipnet.start_uas(workdir=tmp_path, scenario="uas_ring_cancel.xml") as uas, \
            Watcher(server, "bob") as bob, Watcher(server, "alice") as alice:
        register(server, "bob", [sipp_contact(uas)])
        bob.subscribe()
        alice.subscribe()
        with call(server, tmp_path, "uac_cancel.xml") as uac:
            bob_docs = bob.wait(ended)
            alice_docs = alice.wait(ended)
            result = uac.wait()
        uas_result = uas.wait(timeout=grace(result))
    result.assert_ok(1)
    uas_result.assert_ok(1)
    assert states(bob_docs) == [("early", None, None), ("terminated", "cancelled", None)]
    assert states(alice_docs)[-1] == ("terminated", "cancelled", None)


def test_a_rejected_call_ends_rejected_with_its_code(ser, tmp_path):
    server = ser(CONFIG)
    with sipnet.start_uas(workdir=tmp_path, scenario="uas_busy.xml") as uas, \
            Watcher(server, "bob") as bob, Watcher(server, "alice") as alice:
        register(server, "bob", [sipp_contact(uas)])
        bob.subscribe()
        alice.subscribe()
        with call(server, tmp_path, "uac_invite_486.xml") as uac:
            bob_docs = bob.wait(ended)
            alice_docs = alice.wait(ended)
            result = uac.wait()
        uas_result = uas.wait(timeout=grace(result))
    result.assert_ok(1)
    uas_result.assert_ok(1)
    assert states(bob_docs)[-1] == ("terminated", "rejected", "486"), bob.bodies()
    assert states(alice_docs) == [("trying", None, None), ("terminated", "rejected", "486")]


def test_the_shipped_config_lights_the_lamp_of_a_house_call(ser, tmp_path):
    # files/etc/ser/ser.cfg as the router runs it: alice logs in and watches bob's line (a
    # desk phone's BLF key); bob's phone registers with its password; a call from the house
    # (sipp as alice, 407 then credentials) rings, is answered and hung up
    server = start(ser, tmp_path)
    watcher = RawPhone(server, "alice")
    try:
        with sipnet.start_uas(workdir=tmp_path) as uas:
            auth_register(server, tmp_path, "bob", uas.host, uas.port).assert_ok(1)
            reply, _ = watcher.subscribe("bob", event="dialog")
            assert status_of(reply) == 200, reply
            seen = {}
            deadline = time.monotonic() + DEADLINE

            def take(notify):
                cseq = int(re.search(rb"\r\nCSeq: *(\d+)", notify).group(1))
                seen.setdefault(cseq, notify.split(b"\r\n\r\n", 1)[1])
            take(watcher.wait_notify())
            uac = sipnet.run_uac(server.addr, workdir=tmp_path, service="bob", calls=1,
                                 scenario="auth_invite.xml", extra=auth_args(server))
            while b"terminated</state>" not in b"".join(seen.values()):
                assert time.monotonic() < deadline, seen
                take(watcher.wait_notify(timeout=max(0.1, deadline - time.monotonic())))
            uas_result = uas.wait(timeout=grace(uac))
    finally:
        watcher.close()
    uac.assert_ok(1)
    uas_result.assert_ok(1)
    docs = [re.findall(rb"<state[^>]*>([a-z]+)</state>", seen[c]) for c in sorted(seen)]
    assert docs == [[], [b"early"], [b"confirmed"], [b"terminated"]], seen
    assert re.search(rb"<remote>\s*<identity>sip:alice@", seen[sorted(seen)[1]])
