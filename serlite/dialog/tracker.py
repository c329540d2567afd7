"""One dialog tracker for the whole server (Kamailio's ``dialog`` module plays this role):
the state of every call the proxy relays, from the INVITE transaction as seen by the proxy.

Pure: no I/O, no clock; every event carries ``now`` (the loop's monotonic seconds).  A call
is keyed by Call-ID and the caller's From tag (RFC 3261 12: the dialog ID, whose To tag comes
with the answer); the To tag of the 2xx that answered it is kept, so that a BYE from either
side (From/To swapped when the callee hangs up) finds it.

States (RFC 3261 12.1, 13.2.2.4; Kamailio's dlg states 1-5 folded to four):
``trying`` (INVITE relayed) -> ``early`` (a provisional above 100 went up) ->
``confirmed`` (a 2xx went up) -> ``terminated`` (BYE, or a final non-2xx, or the INVITE
transaction ended unanswered, or the dialog outlived ``max_lifetime``: a lost BYE, or the
media relay heard neither phone for its timeout: ``silence``).
Forks: every branch's provisional goes up, the first 2xx confirms, a later 2xx of another
branch is left to its UAC (which ACKs and BYEs it, RFC 3261 13.2.2.4) and changes nothing.

Listeners are called as ``listener(dialog, old_state)`` after each change; a terminated
dialog is no longer in the table when they see it.  Bounded: ``max_dialogs`` at once (a new
INVITE past it is not tracked, and ``refused`` counts it), and no dialog lives longer than
``max_lifetime``.  A dialog costs about 0.5 kB (its strings included): the strings come from
the network, each could be 64 kB, so caller and callee are cut at ``SHOWN_MAX`` characters (as
the call history keeps them), tags at ``ID_MAX``, and an INVITE whose Call-ID or From tag is
longer than ``ID_MAX`` is not tracked (``refused``).
"""

SHOWN_MAX = 200     # characters kept of the caller's and callee's URIs (store/calls.FIELD_MAX)
ID_MAX = 256        # characters of a Call-ID or tag tracked at most (real ones are < 100)

TRYING, EARLY, CONFIRMED, TERMINATED = "trying", "early", "confirmed", "terminated"
STATES = (TRYING, EARLY, CONFIRMED, TERMINATED)

# why a dialog ended (Dialog.ended_by)
BY_BYE, BY_FINAL, BY_TIMEOUT, BY_EXPIRED = "bye", "final", "timeout", "expired"
BY_SILENCE = "silence"      # the media relay heard neither phone for its rtp_timeout


class Dialog:
    """One call.  Times are the loop's monotonic seconds (``None``: not yet)."""

    __slots__ = ("call_id", "from_tag", "to_tag", "caller", "callee", "state", "created",
                 "early_at", "answered", "ended", "status", "reason", "cancelled", "ended_by",
                 "bye_by_callee")

    def __init__(self, call_id, from_tag, caller, callee, now):
        self.call_id = call_id
        self.from_tag = from_tag
        self.to_tag = None          # the tag of the 2xx that answered
        self.caller = caller[:SHOWN_MAX]        # the From URI
        self.callee = callee[:SHOWN_MAX]        # the To URI (what the caller dialled)
        self.state = TRYING
        self.created = now
        self.early_at = None
        self.answered = None
        self.ended = None
        self.status = 0             # the final status of the INVITE (0: none yet)
        self.reason = ""
        self.cancelled = False      # the caller sent CANCEL
        self.ended_by = None        # BY_BYE, BY_FINAL, BY_TIMEOUT, BY_EXPIRED
        self.bye_by_callee = False  # BY_BYE: the callee hung up (RFC 4235's remote-bye)

    @property
    def duration(self):
        """Seconds from the answer to the end; 0 if unanswered or not ended."""
        if self.answered is None or self.ended is None:
            return 0.0
        return max(0.0, self.ended - self.answered)

    def as_dict(self, now):
        """Plain data for the control socket: ``since`` is the seconds in this state."""
        since = {TRYING: self.created, EARLY: self.early_at, CONFIRMED: self.answered,
                 TERMINATED: self.ended}.get(self.state) or self.created
        return {"call_id": self.call_id, "caller": self.caller, "callee": self.callee,
                "state": self.state, "since": round(max(0.0, now - since), 3),
                "age": round(max(0.0, now - self.created), 3)}

    def __repr__(self):
        return f"Dialog({self.call_id!r}, {self.from_tag!r}, {self.state})"


class DialogTracker:
    """The table of calls and its listeners; see the module's docstring."""

    def __init__(self, max_lifetime=43200.0, max_dialogs=10000):
        self.max_lifetime = float(max_lifetime)
        self.max_dialogs = int(max_dialogs)
        self.dialogs = {}           # (call_id, from_tag) -> Dialog
        self.listeners = []
        self.refused = 0            # INVITEs not tracked: the table was full

    def __len__(self):
        return len(self.dialogs)

    # -- listeners ---------------------------------------------------------------------------
    def subscribe(self, listener):
        if listener not in self.listeners:
            self.listeners.append(listener)

    def unsubscribe(self, listener):
        if listener in self.listeners:
            self.listeners.remove(listener)

    def _change(self, dlg, state, now):
        old, dlg.state = dlg.state, state
        if state == TERMINATED:
            dlg.ended = now
            self.dialogs.pop((dlg.call_id, dlg.from_tag), None)
        for listener in tuple(self.listeners):
            listener(dlg, old)

    # -- finding ----------------------------------------------------------------------------
    def find(self, call_id, from_tag):
        """The call the caller's Call-ID and From tag name, or None."""
        return self.dialogs.get((call_id, from_tag))

    def in_dialog(self, call_id, from_tag, to_tag):
        """The confirmed call a request with these tags belongs to, sent by either side (the
        callee's requests have From and To swapped), or None."""
        dlg = self.dialogs.get((call_id, from_tag))
        if dlg is not None and dlg.state == CONFIRMED and _cut(to_tag) == dlg.to_tag:
            return dlg
        dlg = self.dialogs.get((call_id, to_tag))
        if dlg is not None and dlg.state == CONFIRMED and _cut(from_tag) == dlg.to_tag:
            return dlg
        return None

    # -- events ------------------------------------------------------------------------------
    def invite(self, call_id, from_tag, caller, callee, now):
        """An initial INVITE (no To tag) was relayed: a new call, or the one already under
        way with this key (a second INVITE of the same dialog ID changes nothing).  None when
        the table is full or the INVITE has no Call-ID / From tag to key it by."""
        if not call_id or not from_tag:
            return None
        if len(call_id) > ID_MAX or len(from_tag) > ID_MAX:
            self.refused += 1           # see the module's docstring: memory per dialog
            return None
        key = (call_id, from_tag)
        dlg = self.dialogs.get(key)
        if dlg is not None:
            return dlg
        if len(self.dialogs) >= self.max_dialogs:
            self.refused += 1
            return None
        dlg = self.dialogs[key] = Dialog(call_id, from_tag, caller, callee, now)
        for listener in tuple(self.listeners):
            listener(dlg, None)
        return dlg

    def response(self, dlg, status, reason, to_tag, now):
        """A response to the call's INVITE went upstream (to the caller)."""
        state = dlg.state
        if state == CONFIRMED or state == TERMINATED or status <= 100:
            return
        to_tag = _cut(to_tag)
        if status < 200:
            if state == TRYING:     # RFC 3261 12.1: early, the first ringing branch's tag
                dlg.to_tag = to_tag
                dlg.early_at = now
                self._change(dlg, EARLY, now)
        elif status < 300:
            dlg.to_tag = to_tag
            dlg.answered = now
            dlg.status, dlg.reason = status, reason
            self._change(dlg, CONFIRMED, now)
        else:
            dlg.status, dlg.reason = status, reason
            dlg.ended_by = BY_FINAL
            self._change(dlg, TERMINATED, now)

    def cancel(self, dlg):
        """The caller's CANCEL passed: its final (487) ends the call."""
        if dlg.state in (TRYING, EARLY):
            dlg.cancelled = True

    def bye(self, dlg, now, by_callee=False):
        """A BYE of either side passed: the call is over (RFC 3261 15)."""
        if dlg.state == CONFIRMED:
            dlg.ended_by = BY_BYE
            dlg.bye_by_callee = by_callee
            self._change(dlg, TERMINATED, now)

    def silence(self, dlg, now):
        """The media relay heard nothing from either phone of an answered call for its
        timeout: both are gone and no BYE will come (RFC 3261 12.3 leaves ending such a
        dialog to the proxy's policy; rtpengine and Kamailio's dialog module do the same)."""
        if dlg.state == CONFIRMED:
            dlg.ended_by = BY_SILENCE
            self._change(dlg, TERMINATED, now)

    def transaction_ended(self, dlg, now):
        """The INVITE's server transaction ended: a call still unanswered ends with it
        (an early dialog lives no longer than its INVITE transaction)."""
        if dlg.state in (TRYING, EARLY):
            dlg.ended_by = BY_TIMEOUT
            if not dlg.status:
                dlg.status, dlg.reason = 408, "Request Timeout"
            self._change(dlg, TERMINATED, now)

    def expire(self, now):
        """End every dialog older than ``max_lifetime`` (a BYE lost or never sent); returns
        how many.  O(n): called every minute or so, n is a home's calls."""
        old = [d for d in self.dialogs.values() if now - d.created >= self.max_lifetime]
        for dlg in old:
            dlg.ended_by = BY_EXPIRED
            if not dlg.status:
                dlg.status, dlg.reason = 408, "Request Timeout"
            self._change(dlg, TERMINATED, now)
        return len(old)

    def active(self, now):
        """The calls going on, oldest first, as plain data."""
        return [d.as_dict(now) for d in sorted(self.dialogs.values(), key=lambda d: d.created)]


def _cut(tag):
    return tag[:ID_MAX] if tag is not None and len(tag) > ID_MAX else tag


_BUSY = frozenset((486, 600, 603))          # busy here/everywhere, declined
_NO_ANSWER = frozenset((408, 480, 487))     # timed out, unavailable, cancelled (RFC 3261 21.4)


def call_result(dlg):
    """What the call was to the person called: ``answered`` (a 2xx), ``missed`` (the caller
    gave up, or no answer: 487, 408, 480, or the INVITE ended unanswered), ``busy`` (486, 600,
    603) or ``failed`` (any other final)."""
    if dlg.answered is not None:
        return "answered"
    status = dlg.status
    if dlg.cancelled or status in _NO_ANSWER or dlg.ended_by == BY_TIMEOUT:
        return "missed"
    if status in _BUSY:
        return "busy"
    return "failed"
