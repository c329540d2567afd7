"""pua_dialoginfo's documents, pure: the real dialog tracker drives a DialogInfo with a clock
the test holds; each publication's bytes are checked (RFC 4235 4.1), the states each side's
watchers see, the reasons of an end, forks, several calls of one party, and the bounds."""

import pytest

from serlite.dialog.tracker import DialogTracker
from serlite.presence.dialoginfo import (PENDING_TTL, TERMINATED_EXPIRES, Call, DialogInfo,
                                         aor, display_name, termination)
from serlite.sip.uri import URI

ALICE, BOB = "sip:alice@home", "sip:bob@home"


class Rig:
    """A tracker, a DialogInfo listening to it, and what it published."""

    def __init__(self, **options):
        self.now = 100.0
        self.tracker = DialogTracker(max_lifetime=3600, max_dialogs=10)
        self.info = DialogInfo(lifetime=3600, **options)
        self.published = []
        self.tracker.subscribe(lambda dlg, old: self.published.extend(
            self.info.changed(dlg, old)))

    def call(self, call_id="c1", tag="a1", caller=ALICE, callee=BOB, local=(ALICE, BOB),
             **kw):
        c = Call(call_id, tag, caller, callee, caller_name=kw.pop("caller_name", "Alice"),
                 caller_target=kw.pop("caller_target", "sip:alice@10.0.0.2:5060"),
                 caller_aor=caller if caller in local else None,
                 callee_aor=callee if callee in local else None)
        assert self.info.mark(c, self.now)
        return self.tracker.invite(call_id, tag, caller, callee, self.now)

    def states(self, presentity):
        """(state element text, event, code) of every dialog of each document, in order."""
        import re
        out = []
        for p in self.published:
            if p.presentity == presentity:
                out.append(re.findall(rb'<state(?: event="([a-z-]+)")?(?: code="(\d+)")?>'
                                      rb'([a-z]+)</state>', p.body))
        return [[(s.decode(), e.decode() or None, int(c) if c else None) for e, c, s in doc]
                for doc in out]


def test_an_answered_call_shows_each_side_its_states_in_order_and_the_bytes_are_rfc_4235s():
    r = Rig()
    dlg = r.call()
    r.tracker.response(dlg, 180, "Ringing", "b1", 101.0)
    early_bob = [p for p in r.published if p.presentity == BOB][0]
    assert early_bob.body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" '
        b'entity="sip:bob@home">\n'
        b'  <dialog id="' + early_bob.body.split(b'<dialog id="')[1][:9] + b'" call-id="c1" '
        b'local-tag="b1" remote-tag="a1" direction="recipient">\n'
        b'    <state>early</state>\n'
        b'    <local>\n      <identity>sip:bob@home</identity>\n'
        b'      <target uri="sip:bob@home"/>\n    </local>\n'
        b'    <remote>\n      <identity display="Alice">sip:alice@home</identity>\n'
        b'      <target uri="sip:alice@10.0.0.2:5060"/>\n    </remote>\n'
        b'  </dialog>\n</dialog-info>\n')
    assert early_bob.expires == 3600
    r.tracker.response(dlg, 200, "OK", "b1", 103.0)
    r.tracker.bye(dlg, 160.0, by_callee=False)
    assert r.states(ALICE) == [[("trying", None, None)], [("early", None, None)],
                               [("confirmed", None, None)], [("terminated", "local-bye", None)]]
    assert r.states(BOB) == [[("early", None, None)], [("confirmed", None, None)],
                             [("terminated", "remote-bye", None)]]
    assert [p.expires for p in r.published][-2:] == [TERMINATED_EXPIRES] * 2
    alice_docs = [p.body for p in r.published if p.presentity == ALICE]
    assert b'direction="initiator"' in alice_docs[0] and b"remote-tag" not in alice_docs[0]
    assert b'local-tag="a1" remote-tag="b1"' in alice_docs[1]
    assert len(r.info) == 0 and r.info.parties == {}


def test_the_callees_bye_is_its_local_bye():
    r = Rig()
    dlg = r.call()
    r.tracker.response(dlg, 200, "OK", "b1", 101.0)
    r.tracker.bye(dlg, 110.0, by_callee=True)
    assert r.states(ALICE)[-1] == [("terminated", "remote-bye", None)]
    assert r.states(BOB)[-1] == [("terminated", "local-bye", None)]


@pytest.mark.parametrize("status,cancel,event,code", [
    (487, True, "cancelled", None), (486, False, "rejected", 486),
    (603, False, "rejected", 603), (408, False, "timeout", 408)])
def test_an_unanswered_call_ends_with_its_reason(status, cancel, event, code):
    r = Rig()
    dlg = r.call()
    r.tracker.response(dlg, 180, "Ringing", "b1", 101.0)
    if cancel:
        r.tracker.cancel(dlg)
    r.tracker.response(dlg, status, "x", "b1", 102.0)
    assert r.states(BOB) == [[("early", None, None)], [("terminated", event, code)]]
    assert r.states(ALICE)[-1] == [("terminated", event, code)]


def test_a_call_no_one_answered_ends_in_timeout_with_its_transaction():
    r = Rig()
    dlg = r.call()
    r.tracker.response(dlg, 180, "Ringing", "b1", 101.0)
    r.tracker.transaction_ended(dlg, 200.0)
    assert r.states(BOB)[-1] == [("terminated", "timeout", 408)]


def test_a_call_rejected_before_it_rang_shows_the_callee_only_its_end():
    r = Rig()
    dlg = r.call()
    r.tracker.response(dlg, 404, "Not Found", "b1", 101.0)
    assert r.states(BOB) == [[("terminated", "rejected", 404)]]


def test_a_forked_call_is_one_dialog_with_the_answering_branchs_tag():
    r = Rig()
    dlg = r.call()
    r.tracker.response(dlg, 180, "Ringing", "fork1", 101.0)
    r.tracker.response(dlg, 180, "Ringing", "fork2", 101.5)   # the second branch rings
    r.tracker.response(dlg, 200, "OK", "fork2", 103.0)
    bob = [p.body for p in r.published if p.presentity == BOB]
    assert len(bob) == 2 and bob[0].count(b"<dialog ") == 1 and bob[1].count(b"<dialog ") == 1
    assert b'local-tag="fork1"' in bob[0] and b'local-tag="fork2"' in bob[1]
    assert r.states(BOB) == [[("early", None, None)], [("confirmed", None, None)]]


def test_a_party_with_two_calls_shows_both_and_then_the_one_left():
    r = Rig()
    first = r.call("c1", "a1")
    r.tracker.response(first, 200, "OK", "b1", 101.0)
    carol = "sip:carol@home"
    second = r.call("c2", "x1", caller=carol, local=(carol, BOB))
    r.tracker.response(second, 180, "Ringing", "b2", 102.0)
    assert r.states(BOB)[-1] == [("confirmed", None, None), ("early", None, None)]
    r.tracker.response(second, 486, "Busy Here", "b2", 103.0)
    assert r.states(BOB)[-1] == [("confirmed", None, None), ("terminated", "rejected", 486)]
    assert r.published[-1].expires == 3600      # a call goes on: the document stays
    r.tracker.bye(first, 110.0)
    assert r.states(BOB)[-1] == [("terminated", "remote-bye", None)]


def test_only_the_local_parties_are_published():
    r = Rig()
    dlg = r.call(caller="sip:+4930123@provider.example", local=(BOB,))
    r.tracker.response(dlg, 180, "Ringing", "b1", 101.0)
    assert {p.presentity for p in r.published} == {BOB}
    assert b"<identity display=\"Alice\">sip:+4930123@provider.example</identity>" in \
        r.published[0].body


def test_caller_confirmed_and_callee_trying_as_kamailio():
    r = Rig(caller_confirmed=True, callee_trying=True)
    dlg = r.call()
    r.tracker.response(dlg, 180, "Ringing", "b1", 101.0)
    assert r.states(ALICE)[:2] == [[("trying", None, None)], [("confirmed", None, None)]]
    assert r.states(BOB)[:2] == [[("trying", None, None)], [("early", None, None)]]


def test_the_include_options_leave_out_call_id_tags_and_parties():
    r = Rig(include_callid=False, include_tags=False, include_localremote=False)
    dlg = r.call()
    r.tracker.response(dlg, 180, "Ringing", "b1", 101.0)
    body = r.published[-1].body
    assert b"call-id" not in body and b"-tag=" not in body and b"<remote>" not in body
    assert b"<state>early</state>" in body


def test_a_call_calling_its_own_party_shows_both_directions_in_one_document():
    r = Rig()
    dlg = r.call(callee=ALICE, local=(ALICE,))
    r.tracker.response(dlg, 180, "Ringing", "b1", 101.0)
    last = r.published[-1]
    assert last.presentity == ALICE and last.body.count(b"<dialog ") == 2
    ids = [x.split(b'"')[0] for x in last.body.split(b'<dialog id="')[1:]]
    assert len(set(ids)) == 2


def test_values_from_the_network_are_escaped_and_cut():
    r = Rig()
    dlg = r.call(call_id='c"<&>\x01', caller_name='A "quote" <b>\x07' + "x" * 500)
    body = r.published[0].body
    assert b'call-id="c&quot;&lt;&amp;&gt;"' in body
    assert b'display="A &quot;quote&quot; &lt;b&gt;' in body and b"\x07" not in body
    assert len(body) < 1500
    assert dlg is not None


def test_a_mark_never_relayed_is_forgotten_and_the_marks_are_bounded():
    r = Rig(max_calls=2)
    assert r.info.mark(Call("x1", "t", ALICE, BOB, caller_aor=ALICE), 100.0)
    assert r.info.mark(Call("x2", "t", ALICE, BOB, caller_aor=ALICE), 101.0)
    assert not r.info.mark(Call("x3", "t", ALICE, BOB, caller_aor=ALICE), 102.0)
    assert r.info.mark(Call("x3", "t", ALICE, BOB, caller_aor=ALICE), 100.0 + PENDING_TTL)
    assert set(r.info.pending) == {("x2", "t"), ("x3", "t")}
    # a call not marked (or marked with no local party) publishes nothing
    r.tracker.invite("other", "t", ALICE, BOB, 103.0)
    assert r.published == []


def test_termination_without_a_reason():
    class D:
        cancelled, ended_by, status, bye_by_callee = False, None, 0, False
    assert termination(D, True) == (None, None)


def test_display_names_and_aors():
    assert display_name('"Al \\"the\\" Ice"') == 'Al "the" Ice'
    assert display_name("Alice Smith") == "Alice Smith"
    assert display_name(None) == ""
    assert aor(URI.parse("sip:bob@HOME.example:5070;transport=tcp")) == "sip:bob@home.example"
    assert aor(URI.parse("sip:home.example")) == "sip:home.example"
