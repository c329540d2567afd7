"""The dialog tracker, pure: states, matching of in-dialog requests from either side, forks,
the ends (BYE, final, the INVITE transaction, max lifetime) and its bounds."""

import pytest

from serlite.dialog.tracker import (BY_BYE, BY_EXPIRED, BY_FINAL, BY_TIMEOUT, CONFIRMED, EARLY,
                                    TERMINATED, TRYING, DialogTracker, call_result)


@pytest.fixture
def tracker():
    t = DialogTracker(max_lifetime=3600, max_dialogs=3)
    t.seen = []
    t.subscribe(lambda dlg, old: t.seen.append((old, dlg.state)))
    return t


def call(t, cid="c1", tag="a1", now=100.0):
    return t.invite(cid, tag, "sip:100@home", "sip:101@home", now)


def test_an_answered_call_goes_through_every_state_and_ends_with_the_callers_bye(tracker):
    dlg = call(tracker)
    tracker.response(dlg, 180, "Ringing", None, 101.0)
    tracker.response(dlg, 200, "OK", "b1", 103.0)
    assert dlg.state == CONFIRMED and dlg.to_tag == "b1" and len(tracker) == 1
    assert tracker.in_dialog("c1", "a1", "b1") is dlg
    tracker.bye(tracker.in_dialog("c1", "a1", "b1"), 163.5)
    assert tracker.seen == [(None, TRYING), (TRYING, EARLY), (EARLY, CONFIRMED),
                            (CONFIRMED, TERMINATED)]
    assert dlg.ended_by == BY_BYE and dlg.duration == 60.5 and len(tracker) == 0
    assert call_result(dlg) == "answered"


def test_the_callees_bye_has_the_tags_swapped_and_finds_the_call(tracker):
    dlg = call(tracker)
    tracker.response(dlg, 200, "OK", "b1", 101.0)
    assert tracker.in_dialog("c1", "b1", "a1") is dlg
    assert tracker.in_dialog("c1", "a1", "other") is None     # another fork's dialog
    assert tracker.in_dialog("c2", "a1", "b1") is None


def test_a_bye_before_the_answer_changes_nothing(tracker):
    dlg = call(tracker)
    tracker.bye(dlg, 101.0)
    assert dlg.state == TRYING and len(tracker) == 1


@pytest.mark.parametrize("status, cancelled, result", [
    (487, True, "missed"), (408, False, "missed"), (480, False, "missed"),
    (486, False, "busy"), (600, False, "busy"), (603, False, "busy"),
    (404, False, "failed"), (503, False, "failed")])
def test_a_final_failure_ends_the_call_with_its_result(tracker, status, cancelled, result):
    dlg = call(tracker)
    tracker.response(dlg, 180, "Ringing", None, 101.0)
    if cancelled:
        tracker.cancel(dlg)
    tracker.response(dlg, status, "x", None, 105.0)
    assert dlg.state == TERMINATED and dlg.ended_by == BY_FINAL and dlg.status == status
    assert call_result(dlg) == result and dlg.duration == 0.0 and len(tracker) == 0


def test_forks_the_first_2xx_confirms_a_later_one_changes_nothing(tracker):
    dlg = call(tracker)
    tracker.response(dlg, 180, "Ringing", None, 101.0)
    tracker.response(dlg, 183, "Session Progress", None, 101.5)     # another branch
    tracker.response(dlg, 200, "OK", "b1", 102.0)
    tracker.response(dlg, 200, "OK", "b2", 102.1)
    assert dlg.state == CONFIRMED and dlg.to_tag == "b1" and dlg.answered == 102.0
    assert [s for _, s in tracker.seen].count(EARLY) == 1


def test_an_unanswered_call_ends_with_its_invite_transaction(tracker):
    dlg = call(tracker)
    tracker.transaction_ended(dlg, 140.0)
    assert dlg.state == TERMINATED and dlg.ended_by == BY_TIMEOUT
    assert call_result(dlg) == "missed"
    answered = call(tracker, "c2")
    tracker.response(answered, 200, "OK", "b", 101.0)
    tracker.transaction_ended(answered, 133.0)      # timer L after the 2xx: the call goes on
    assert answered.state == CONFIRMED


def test_a_call_whose_bye_is_lost_expires_after_max_lifetime(tracker):
    dlg = call(tracker, now=100.0)
    tracker.response(dlg, 200, "OK", "b", 101.0)
    assert tracker.expire(100.0 + 3599) == 0 and dlg.state == CONFIRMED
    assert tracker.expire(100.0 + 3600) == 1
    assert dlg.state == TERMINATED and dlg.ended_by == BY_EXPIRED and len(tracker) == 0


def test_the_table_is_bounded(tracker):
    for i in range(3):
        assert call(tracker, f"c{i}") is not None
    assert call(tracker, "c9") is None and tracker.refused == 1 and len(tracker) == 3


def test_a_second_invite_with_the_same_id_is_the_same_call(tracker):
    first = call(tracker)
    assert call(tracker) is first and len(tracker) == 1
    assert tracker.invite("", "a", "x", "y", 1.0) is None       # nothing to key it by


def test_active_lists_the_calls_with_their_state_and_age(tracker):
    dlg = call(tracker, now=100.0)
    tracker.response(dlg, 180, "Ringing", None, 104.0)
    rows = tracker.active(110.0)
    assert rows == [{"call_id": "c1", "caller": "sip:100@home", "callee": "sip:101@home",
                     "state": "early", "since": 6.0, "age": 10.0}]


def test_an_unsubscribed_listener_hears_nothing(tracker):
    heard = []
    listener = heard.append
    tracker.subscribe(lambda d, o: heard.append(d))
    tracker.listeners.pop()
    tracker.subscribe(listener)
    tracker.unsubscribe(listener)
    call(tracker)
    assert heard == []


def test_strings_from_the_network_are_bounded_per_dialog():
    # An account holder can keep 10 000 answered calls (max_dialogs) for 12 h by calling a
    # URI of its own that answers; each From/To/Call-ID/tag may be ~64 kB long: 10 000 x
    # 4 x 64 kB would be 2.5 GB on a 128 MB router.  Shown URIs are cut (as in the history),
    # an overlong Call-ID or tag is not tracked, a long To tag still matches the BYE.
    t = DialogTracker(max_lifetime=3600, max_dialogs=10)
    huge = "x" * 60000
    dlg = t.invite("c1", "a1", "sip:100@" + huge, "sip:101@" + huge, 1.0)
    assert len(dlg.caller) <= 200 and len(dlg.callee) <= 200
    t.response(dlg, 200, "OK", "b" + huge, 2.0)
    assert len(dlg.to_tag) <= 256
    assert t.in_dialog("c1", "a1", "b" + huge) is dlg
    assert t.in_dialog("c1", "b" + huge, "a1") is dlg
    assert t.invite(huge, "a2", "sip:1@h", "sip:2@h", 3.0) is None
    assert t.invite("c3", huge, "sip:1@h", "sip:2@h", 3.0) is None
    assert t.refused == 2 and len(t) == 1
