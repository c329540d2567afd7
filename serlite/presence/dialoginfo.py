"""Busy lamps, pure: which calls each local party's watchers see, as RFC 4235 dialog-info
documents (pua_dialoginfo's part; the presence module sends them to the watchers).

``DialogInfo`` is told of the calls the script marked (``mark``, from ``dialoginfo_set()``
on an initial INVITE) and of the dialog tracker's changes (``changed``, serlite.dialog), and
answers with the documents to publish: one per local party (presentity) a change concerns,
holding every call of that party in progress (RFC 4235 4.1: ``state="full"``, each call one
``<dialog>``; for a forked call the one dialog the tracker follows: the first ringing
branch's tag while it rings, the answering branch's once answered, as Kamailio's).  The
caller's side goes ``trying`` -> ``early`` -> ``confirmed`` -> ``terminated``, the callee's
``early`` -> ``confirmed`` -> ``terminated`` (Kamailio's ``callee_trying`` adds its
``trying``); its ``<remote>`` names the caller, so a phone can offer to pick the call up.
``terminated`` says why where RFC 4235 3.7.1 has a word for it: ``cancelled``,
``rejected`` with the final response's ``code``, ``local-bye``/``remote-bye`` (from the
party's side), ``timeout``.  A call whose INVITE is never relayed (the script answered it
itself) is forgotten ``PENDING_TTL`` seconds after its mark.

Pure: no I/O, no clock (``now`` is handed in); XML written by hand (python3-light has no
``xml``), every value escaped and stripped of the characters XML 1.0 cannot carry.
"""

import re
from zlib import crc32

from ..dialog.tracker import (BY_BYE, BY_EXPIRED, BY_SILENCE, BY_TIMEOUT, CONFIRMED, EARLY,
                              TERMINATED, TRYING)

NAMESPACE = "urn:ietf:params:xml:ns:dialog-info"
CONTENT_TYPE = "application/dialog-info+xml"
CALLER, CALLEE = "A", "B"       # OpenSIPS's dialoginfo_set() sides: the caller, the callee
TERMINATED_EXPIRES = 10         # seconds a document whose calls all ended is kept (Kamailio)
PENDING_TTL = 64.0              # a mark whose INVITE was not relayed is forgotten after it
TEXT_MAX = 200                  # characters of a name or URI written (as the tracker keeps)


class Publication:
    """A document to publish for ``presentity`` (``expires`` 0 never happens here: an ended
    call's document is kept ``TERMINATED_EXPIRES`` s, then presence lets it expire)."""

    __slots__ = ("presentity", "body", "expires")

    def __init__(self, presentity, body, expires):
        self.presentity = presentity
        self.body = body
        self.expires = expires

    def __repr__(self):
        return f"Publication({self.presentity!r}, {self.expires})"


class Call:
    """One marked call: what the INVITE said of both parties, and which of them are local
    (``caller_aor``/``callee_aor``: the presentity, None when not ours or not asked for).
    ``dialog`` is the tracker's Dialog once the INVITE was relayed."""

    __slots__ = ("call_id", "from_tag", "caller", "caller_name", "caller_target", "callee",
                 "callee_name", "caller_aor", "callee_aor", "marked", "dialog", "id")

    def __init__(self, call_id, from_tag, caller, callee, *, caller_name="", callee_name="",
                 caller_target="", caller_aor=None, callee_aor=None, marked=0.0):
        self.call_id = call_id
        self.from_tag = from_tag
        self.caller = caller[:TEXT_MAX]
        self.caller_name = caller_name[:TEXT_MAX]
        self.caller_target = caller_target[:TEXT_MAX]
        self.callee = callee[:TEXT_MAX]
        self.callee_name = callee_name[:TEXT_MAX]
        self.caller_aor = caller_aor
        self.callee_aor = callee_aor
        self.marked = marked
        self.dialog = None
        # the <dialog id>: unique in a document (a party calling itself shows the call
        # twice: + "i"/"r") and stable for the call's life (RFC 4235 4.1.2)
        self.id = _crc(call_id + ";" + from_tag)


class DialogInfo:
    """The marked calls and, per local party, the calls its document shows."""

    def __init__(self, *, include_callid=True, include_tags=True, include_localremote=True,
                 caller_confirmed=False, callee_trying=False, lifetime=43200,
                 max_calls=10000):
        self.include_callid = include_callid
        self.include_tags = include_tags
        self.include_localremote = include_localremote
        self.caller_confirmed = caller_confirmed
        self.callee_trying = callee_trying
        self.lifetime = int(lifetime)
        self.max_calls = int(max_calls)
        self.pending = {}       # (call_id, from_tag) -> Call: marked, INVITE not relayed yet
        self.calls = {}         # (call_id, from_tag) -> Call: followed by the tracker
        self.parties = {}       # presentity -> [(Call, side)], oldest call first
        self._swept = 0.0

    def __len__(self):
        return len(self.calls)

    def adopt(self, old):
        """Take over the calls of ``old`` (a reload: its options may have changed)."""
        self.pending, self.calls, self.parties = old.pending, old.calls, old.parties

    # -- events ------------------------------------------------------------------------------
    def mark(self, call, now):
        """``dialoginfo_set()`` on the call's initial INVITE.  False when there is no room."""
        key = (call.call_id, call.from_tag)
        if key in self.calls or (call.caller_aor is None and call.callee_aor is None):
            return True
        if now - self._swept >= PENDING_TTL or len(self.pending) >= self.max_calls:
            self.sweep(now)
            if len(self.pending) >= self.max_calls:
                return False
        call.marked = now
        self.pending[key] = call
        return True

    def sweep(self, now):
        """Forget the marks whose INVITE was never relayed."""
        self._swept = now
        old = [k for k, c in self.pending.items() if now - c.marked >= PENDING_TTL]
        for key in old:
            del self.pending[key]
        return len(old)

    def changed(self, dlg, old):
        """A tracker listener's event (``dlg`` changed from state ``old``, None: new):
        the publications it makes, in order."""
        key = (dlg.call_id, dlg.from_tag)
        if old is None:
            call = self.pending.pop(key, None)
            if call is None or key in self.calls:
                return []
            call.dialog = dlg
            self.calls[key] = call
            for aor, side in ((call.caller_aor, CALLER), (call.callee_aor, CALLEE)):
                if aor is not None:
                    self.parties.setdefault(aor, []).append((call, side))
        else:
            call = self.calls.get(key)
            if call is None or call.dialog is not dlg:
                return []
        out = []
        state = dlg.state
        if call.caller_aor is not None:
            out.append(self._publication(call.caller_aor))
        if call.callee_aor is not None and (state != TRYING or self.callee_trying) \
                and call.callee_aor != call.caller_aor:
            out.append(self._publication(call.callee_aor))
        if state == TERMINATED:
            del self.calls[key]
            for aor in {call.caller_aor, call.callee_aor} - {None}:
                left = [e for e in self.parties.get(aor, ()) if e[0] is not call]
                if left:
                    self.parties[aor] = left
                else:
                    self.parties.pop(aor, None)
        return out

    # -- documents ----------------------------------------------------------------------------
    def _publication(self, aor):
        entries = self.parties.get(aor, ())
        shown = [(c, s) for c, s in entries if self.shown_state(c, s) is not None]
        active = any(c.dialog.state != TERMINATED for c, _ in shown)
        return Publication(aor, self.document(aor, shown),
                           self.lifetime if active else TERMINATED_EXPIRES)

    def shown_state(self, call, side):
        """The state ``side``'s watchers see (None: nothing to show yet)."""
        state = call.dialog.state
        if state == TRYING and side == CALLEE and not self.callee_trying:
            return None
        if state == EARLY and side == CALLER and self.caller_confirmed:
            return CONFIRMED        # Kamailio's caller_confirmed: no blinking lamp for a caller
        return state

    def document(self, entity, entries, version=0):
        """The dialog-info document (bytes) of ``entity`` showing ``entries`` ((Call, side)).
        ``version`` 0: the presence module numbers each watcher's NOTIFYs (RFC 4235 4.1)."""
        parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<dialog-info xmlns="{NAMESPACE}" '
                 f'version="{int(version)}" state="full" entity="{_attr(entity)}">\n']
        for call, side in entries:
            parts.append(self._element(call, side))
        parts.append("</dialog-info>\n")
        return "".join(parts).encode("utf-8")

    def _element(self, call, side):
        dlg = call.dialog
        caller = side == CALLER
        attrs = [f'id="{call.id}{"i" if caller else "r"}"']
        if self.include_callid:
            attrs.append(f'call-id="{_attr(call.call_id)}"')
        remote_tag = dlg.to_tag if caller else call.from_tag
        local_tag = call.from_tag if caller else dlg.to_tag
        if self.include_tags:
            if local_tag:
                attrs.append(f'local-tag="{_attr(local_tag)}"')
            if remote_tag:
                attrs.append(f'remote-tag="{_attr(remote_tag)}"')
        attrs.append('direction="initiator"' if caller else 'direction="recipient"')
        state = self.shown_state(call, side)
        event, code = termination(dlg, caller) if state == TERMINATED else (None, None)
        state_attrs = (f' event="{event}"' if event else "") + (f' code="{code}"' if code else "")
        out = [f'  <dialog {" ".join(attrs)}>\n    <state{state_attrs}>{state}</state>\n']
        if self.include_localremote:
            me = (call.caller, call.caller_name, call.caller_target) if caller else \
                (call.callee, call.callee_name, "")
            peer = (call.callee, call.callee_name, "") if caller else \
                (call.caller, call.caller_name, call.caller_target)
            out.append(_party("local", *me))
            out.append(_party("remote", *peer))
        out.append("  </dialog>\n")
        return "".join(out)


def termination(dlg, caller):
    """RFC 4235 3.7.1's event (and code) of an ended dialog, seen from the caller's side or
    the callee's."""
    if dlg.cancelled:
        return "cancelled", None
    by = dlg.ended_by
    if by == BY_BYE:
        local = dlg.bye_by_callee != caller     # the party itself sent the BYE
        return ("local-bye" if local else "remote-bye"), None
    if by in (BY_TIMEOUT, BY_EXPIRED, BY_SILENCE) or dlg.status == 408:
        return "timeout", dlg.status if dlg.status == 408 else None
    if dlg.status >= 300:
        return "rejected", dlg.status
    return None, None


def _party(tag, uri, name, target):
    display = f' display="{_attr(name)}"' if name else ""
    return (f"    <{tag}>\n      <identity{display}>{_text(uri)}</identity>\n"
            f'      <target uri="{_attr(target or uri)}"/>\n    </{tag}>\n')


def _crc(text):
    return f"{crc32(text.encode('utf-8', 'replace')):08x}"


# XML 1.0 (2.2) forbids the C0 controls other than tab, CR and LF even as references
_DROP = {c: None for c in range(0x20) if c not in (0x09,)}
_DROP.update({0xFFFE: None, 0xFFFF: None})
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


_PLAIN = re.compile(r'[^&<>"\x00-\x08\x0a-\x1f\ufffe\uffff]*\Z')


def _text(value):
    value = str(value)
    if _PLAIN.match(value):
        return value            # the usual case: nothing to escape (one regex match)
    return value.translate(_DROP).translate(_ESCAPES)


def _attr(value):
    return _text(value)


def display_name(display):
    """A From/To display name as written (quoted or tokens) -> the name, unquoted."""
    if not display:
        return ""
    d = display.strip()
    if len(d) >= 2 and d[0] == '"' and d[-1] == '"':
        out, escaped = [], False
        for ch in d[1:-1]:
            if escaped or ch != "\\":
                out.append(ch)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return d


def aor(uri):
    """The presentity of a parsed SIP URI: ``sip:user@host`` (scheme, user and host; the
    host in lower case; no port or parameters: how a phone subscribes to a colleague)."""
    user = uri.user
    host = uri.host.lower()
    return f"sip:{user}@{host}" if user else f"sip:{host}"
