"""Outbound registration (RFC 3261 10.2, Kamailio uac's ``uacreg``): one record's state machine.

Pure: no socket, no clock.  The caller (serlite/modules/uac_reg.py) hands in the time and the
responses, sends the REGISTERs it is given, and calls ``timer(now)`` at ``due``.

States (``state``, shown by ``uac.reg_dump`` and the status page):

* ``waiting``      not sent yet (``reg_delay``), or waiting to try again after a failure
                   that may pass (timeout, 5xx, unresolvable name: ``retry_in`` s, doubled per
                   failure from ``retry_interval`` up to ``RETRY_MAX``);
* ``registering``  a REGISTER is out (``auth`` True: the one with credentials);
* ``registered``   200 with our Contact: refreshed before it expires (``refresh_at``);
* ``failed``       the provider refused us (403, 404, a second 401/407 to our credentials,
                   a challenge we cannot answer): nothing is sent again unless
                   ``retry_interval`` asks for it (Kamailio's ``reg_retry_interval``, 0 by
                   default: never), so a wrong password does not hammer the provider;
* ``disabled``     the record's ``flags`` has bit 1.

423 Interval Too Brief: sent again at once with the Min-Expires (RFC 3261 10.2.8).
``address_changed(now)``: the WAN address changed, register again at once.
"""

from ..sip import digest
from ..sip.errors import ParseError

RETRY_FIRST = 30.0      # seconds before the first retry after a timeout (no retry_interval)
RETRY_MAX = 1800.0      # back-off cap
FLAG_DISABLED = 1

WAITING, REGISTERING, REGISTERED, FAILED, DISABLED = (
    "waiting", "registering", "registered", "failed", "disabled")


class Record:
    """A row of the uacreg table (Kamailio 5.6's columns, version 5)."""

    __slots__ = ("id", "l_uuid", "l_username", "l_domain", "r_username", "r_domain", "realm",
                 "auth_username", "auth_password", "auth_ha1", "auth_proxy", "expires", "flags",
                 "reg_delay", "contact_addr", "socket")

    COLUMNS = __slots__

    def __init__(self, **fields):
        for name in self.__slots__:
            value = fields.get(name)
            if name in ("id", "expires", "flags", "reg_delay"):
                value = int(value or 0)
            else:
                value = "" if value is None else str(value)
            setattr(self, name, value)

    def check(self):
        """What makes the record unusable, or None."""
        for name in ("l_uuid", "r_username", "r_domain", "auth_username"):
            if not getattr(self, name):
                return f"{name} is empty"
        if not self.auth_password and not self.auth_ha1:
            return "neither auth_password nor auth_ha1 is set"
        return None


class Registration:
    """One record's registration.  ``send`` (the actions' only kind) gives the REGISTER to
    send as (request URI, header bytes without Via, expires asked)."""

    def __init__(self, record, call_id, from_tag, contact_addr, now, retry_interval=0,
                 timer_interval=90, cnonce=lambda: "0a4f113b"):
        self.record = record
        self.call_id = call_id
        self.from_tag = from_tag
        self.contact_addr = contact_addr        # host:port of our Contact
        self.retry_interval = float(retry_interval)
        self.timer_interval = float(timer_interval)
        self._cnonce = cnonce                   # a source of fresh random hex (the caller's)
        self.cseq = 0
        self.expires = record.expires or 3600   # asked for (a 423 raises it)
        self.state = DISABLED if record.flags & FLAG_DISABLED else WAITING
        self.due = None if self.state == DISABLED else now + record.reg_delay
        self.auth = False           # the REGISTER out carries credentials
        self.registered_until = None
        self.refresh_at = None
        self.retry_in = 0.0         # the current back-off
        self.last_status = 0
        self.last_reason = ""
        self.sent = 0               # REGISTERs sent, all told
        self.failures = 0           # in a row

    # -- what the caller asks --------------------------------------------------------------
    @property
    def registered(self):
        return self.state == REGISTERED or (self.registered_until is not None
                                            and self.state == REGISTERING)

    def timer(self, now):
        """``due`` has come: the actions."""
        if self.due is None or now < self.due:
            return []
        self.due = None
        if self.state == REGISTERING:       # no final answer in time (the caller's timeout
            return self.timeout(now)        # should have come first: belt and braces)
        if self.state in (WAITING, REGISTERED, FAILED):
            return self._register(now, None)
        return []

    def address_changed(self, now, contact_addr):
        """Our address changed (WAN address): register again at once with the new one (a
        REGISTER out with the old one is superseded: the caller drops its answer, by CSeq)."""
        self.contact_addr = contact_addr
        if self.state == DISABLED or (self.state == FAILED and not self.retry_interval):
            return []
        return self._register(now, None)

    def timeout(self, now):
        """No response to the REGISTER (408 made up by tm, or no socket / no address)."""
        return self._retry_later(now, 408, "Request Timeout")

    def response(self, now, status, reason, msg=None):
        """A response to the REGISTER out (``msg`` the parsed Response; None for a status tm
        made up).  Provisional responses change nothing."""
        if self.state != REGISTERING or status < 200:
            return []
        self.last_status, self.last_reason = status, reason
        if 200 <= status < 300:
            return self._ok(now, msg)
        if status in (401, 407):
            return self._challenged(now, status, msg)
        if status == 423:
            return self._too_brief(now, msg)
        if status in (408, 478, 480, 500, 503, 504) or status >= 600 and status != 603:
            return self._retry_later(now, status, reason)
        return self._fail(now, status, reason)

    # -- the steps -------------------------------------------------------------------------
    def _ok(self, now, msg):
        granted = self._granted(msg)
        if granted is None or granted <= 0:
            # the 200 does not list our Contact: the binding is not there
            self.registered_until = None
            return self._fail(now, self.last_status,
                              "200 without our Contact (the provider kept no binding)")
        self.state = REGISTERED
        self.failures = 0
        self.retry_in = 0.0
        self.registered_until = now + granted
        # Kamailio refreshes when less than reg_timer_interval is left; at half the
        # interval at the latest, so a short one is not refreshed in a busy loop
        self.refresh_at = now + max(granted / 2.0, granted - self.timer_interval)
        self.due = self.refresh_at
        return []

    def _granted(self, msg):
        """The expires the registrar gave our Contact (RFC 3261 10.2.4), None if absent."""
        if msg is None:
            return None
        mine = f"@{self.contact_addr}".lower()
        try:
            contacts = msg.contacts
            default = msg.expires
        except ParseError:
            return None
        for c in contacts or ():
            if mine in c.uri_text.lower() and c.uri_text.lower().startswith(
                    f"sip:{self.record.l_uuid.lower()}@"):
                e = c.expires
                if e is None:
                    e = default if default is not None else self.expires
                return int(e)
        return None

    def _challenged(self, now, status, msg):
        header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        values = msg.get_all(header) if msg is not None else []
        challenge = None
        why = f"{status} without a {header}"
        for value in values:
            try:
                challenge = digest.parse_challenge(value)
                break
            except (ParseError, digest.ChallengeError) as exc:
                why = f"cannot answer the challenge: {exc}"
        if challenge is None:
            return self._fail(now, status, why)
        if self.auth and not challenge["stale"]:
            return self._fail(now, status, "credentials refused (wrong user or password?)")
        rec = self.record
        realm = rec.realm or challenge["realm"]
        if rec.realm and rec.realm != challenge["realm"]:
            return self._fail(now, status, f"challenged for realm {challenge['realm']!r}, "
                                           f"the record's realm is {rec.realm!r}")
        ha1 = rec.auth_ha1 or digest.ha1(rec.auth_username, realm, rec.auth_password)
        ruri = self.request_uri()
        value = digest.authorization(challenge, "REGISTER", ruri, rec.auth_username, ha1,
                                     self._cnonce())
        answer = "Authorization" if status == 401 else "Proxy-Authorization"
        return self._register(now, (answer, value))

    def _too_brief(self, now, msg):
        try:
            least = int(msg.get("Min-Expires")) if msg is not None else None
        except (TypeError, ValueError):
            least = None
        if least is None or least <= self.expires or least > 86400:
            return self._fail(now, 423, "423 without a usable Min-Expires")
        self.expires = least
        return self._register(now, None)

    def _retry_later(self, now, status, reason):
        self.last_status, self.last_reason = status, reason
        self.failures += 1
        self.auth = False
        first = self.retry_interval or RETRY_FIRST
        self.retry_in = min(RETRY_MAX, first if not self.retry_in else self.retry_in * 2)
        if self.registered_until is not None and now >= self.registered_until:
            self.registered_until = None
        self.state = WAITING
        self.due = now + self.retry_in
        return []

    def _fail(self, now, status, reason):
        self.last_status, self.last_reason = status, reason
        self.failures += 1
        self.auth = False
        self.state = FAILED
        self.registered_until = None
        if self.retry_interval:
            self.retry_in = min(RETRY_MAX * 2, self.retry_interval if not self.retry_in
                                else self.retry_in * 2)
            self.due = now + self.retry_in
        else:
            self.due = None
        return []

    def _register(self, now, credentials):
        self.cseq += 1
        self.sent += 1
        self.auth = credentials is not None
        self.state = REGISTERING
        # the caller reports the end (response or timeout); this is the last resort
        self.due = now + 64 * 0.5 + 1
        rec = self.record
        aor = f"sip:{rec.r_username}@{rec.r_domain}"
        lines = [f"To: <{aor}>",
                 f"From: <{aor}>;tag={self.from_tag}",
                 f"Call-ID: {self.call_id}",
                 f"CSeq: {self.cseq} REGISTER",
                 "Max-Forwards: 70",
                 f"Contact: <sip:{rec.l_uuid}@{self.contact_addr}>",
                 f"Expires: {self.expires}"]
        if credentials is not None:
            lines.append(f"{credentials[0]}: {credentials[1]}")
        lines += ["User-Agent: serlite", "Content-Length: 0"]
        rest = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return [("send", self.request_uri(), rest)]

    def request_uri(self):
        return f"sip:{self.record.r_domain}"

    def row(self, now):
        """What ``uac.reg_dump`` shows of it (never a password or HA1)."""
        rec = self.record
        left = (int(self.registered_until - now) if self.registered_until is not None
                and self.registered_until > now else 0)
        return {"l_uuid": rec.l_uuid, "l_username": rec.l_username, "l_domain": rec.l_domain,
                "r_username": rec.r_username, "r_domain": rec.r_domain, "realm": rec.realm,
                "auth_username": rec.auth_username, "auth_proxy": rec.auth_proxy,
                "expires": self.expires, "state": self.state, "registered": self.registered,
                "expires_in": left, "last_status": self.last_status,
                "last_reason": self.last_reason, "sent": self.sent,
                "next_in": None if self.due is None else max(0, round(self.due - now, 1)),
                "contact": f"sip:{rec.l_uuid}@{self.contact_addr}"}
