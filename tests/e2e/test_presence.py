"""The presence module end to end, in the shipped config (files/etc/ser/ser.cfg) with its
accounts: raw SIP phones on loopback publish (RFC 3903) and subscribe (RFC 6665), log in with
digest credentials, and answer the NOTIFYs serlite sends them.

- PUBLISH -> 200 with SIP-ETag; SUBSCRIBE -> 200 and a NOTIFY with the PIDF open; a
  modifying PUBLISH -> NOTIFY closed; an unknown SIP-If-Match -> 412; Expires: 0 -> the last
  NOTIFY, terminated; Event: foo -> 489 with Allow-Events;
- a 481 to a NOTIFY ends the subscription; kill -9 keeps publications and subscriptions;
- who may: a phone publishes for itself only, a stranger is challenged, a From of another
  domain is refused; a user nobody knows is closed like one who published nothing.
"""

import re
import secrets

from . import sipnet
from .sipnet import UdpPeer, barrier, is_final, is_request, status_of
from .test_auth import authorization, challenge_of
from .test_shipped_config import USERS, start

PIDF = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:{user}@{host}">'
        '<tuple id="{tuple}"><status><basic>{basic}</basic></status></tuple></presence>\n')


def header(msg, name):
    values = sipnet.header_values(msg, name)
    return values[0] if values else None


def body_of(msg):
    return msg.split(b"\r\n\r\n", 1)[1].decode()


class RawPhone:
    """One account's phone on its own UDP socket: requests with digest credentials (the 407
    answered once), dialogs kept by Call-ID, NOTIFYs collected and answered."""

    def __init__(self, server, user, password=None, domain=None):
        self.server = server
        self.user = user
        self.password = password if password is not None else USERS.get(user, "x")
        self.peer = UdpPeer()
        self.host = sipnet.hostport(*server.addr)
        self.domain = domain or self.host
        self.notifies = []
        self.nc = 0

    def close(self):
        self.peer.close()

    def uri(self, user):
        return f"sip:{user}@{self.host}"

    def _request(self, method, ruri, to, *, call_id, cseq, from_tag, to_tag=None,
                 headers=(), body=b"", credentials=None):
        lines = [f"{method} {ruri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.peer.host}:{self.peer.port};"
                 f"branch={sipnet.new_branch()};rport",
                 "Max-Forwards: 70",
                 f"From: <sip:{self.user}@{self.domain}>;tag={from_tag}",
                 f"To: <{to}>" + (f";tag={to_tag}" if to_tag else ""),
                 f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
                 f"Contact: <sip:{self.user}@{self.peer.host}:{self.peer.port}>",
                 *headers, *([credentials] if credentials else []),
                 f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, method, ruri, to, *, call_id=None, cseq=1, from_tag=None, to_tag=None,
             headers=(), body=b"", login=True):
        """The final answer (after a 407 with credentials when ``login``), and the request's
        CSeq used; NOTIFYs that arrive meanwhile are kept in ``notifies``."""
        call_id = call_id or secrets.token_hex(8) + "@presence-e2e"
        from_tag = from_tag or secrets.token_hex(4)
        data = self._request(method, ruri, to, call_id=call_id, cseq=cseq, from_tag=from_tag,
                             to_tag=to_tag, headers=headers, body=body)
        reply = self._exchange(data)
        if status_of(reply) == 407 and login:
            self.nc += 1
            ch = challenge_of(reply, "Proxy-Authenticate")
            cred = authorization(ch, self.user, self.password, method, ruri, nc=self.nc)
            cseq += 1
            data = self._request(method, ruri, to, call_id=call_id, cseq=cseq,
                                 from_tag=from_tag, to_tag=to_tag, headers=headers, body=body,
                                 credentials="Proxy-" + cred)
            reply = self._exchange(data)
        return reply, cseq, call_id, from_tag

    def _exchange(self, data):
        self.peer.send(data, self.server.addr)
        got = self.peer.recv_until(is_final, 3)
        finals = [m for m in got if is_final(m) and not is_request("NOTIFY")(m)]
        self._keep(m for m in got if is_request("NOTIFY")(m))
        assert finals, f"no final answer to:\n{data.decode()}"
        return finals[-1]

    def _keep(self, notifies, answer=200):
        for n in notifies:
            self.notifies.append(n)
            reason = {200: "OK", 481: "Subscription Does Not Exist"}[answer]
            self.peer.send(sipnet.response_to(n, answer, reason), self.server.addr)

    def wait_notify(self, timeout=3, answer=200):
        """The next NOTIFY (answered ``answer``)."""
        if self.notifies:
            return self.notifies.pop(0)
        got = self.peer.recv_until(is_request("NOTIFY"), timeout)
        notifies = [m for m in got if is_request("NOTIFY")(m)]
        assert notifies, f"no NOTIFY within {timeout} s (got {got!r})"
        self._keep(notifies[:1], answer)
        self._keep(notifies[1:])
        return self.notifies.pop(0)

    def pending(self):
        """The NOTIFYs that have come (use after a barrier): nothing is waited for."""
        got = self.peer.drain()
        self._keep(m for m in got if is_request("NOTIFY")(m))
        out, self.notifies = self.notifies, []
        return out

    def publish(self, basic, etag=None, expires=600, tuple_id="t1", body=True):
        headers = ["Event: presence", f"Expires: {expires}"]
        if etag:
            headers.append(f"SIP-If-Match: {etag}")
        data = b""
        if body:
            headers.append("Content-Type: application/pidf+xml")
            data = PIDF.format(user=self.user, host=self.host, tuple=tuple_id,
                               basic=basic).encode()
        reply, *_ = self.send("PUBLISH", self.uri(self.user), self.uri(self.user),
                              headers=headers, body=data)
        return reply

    def subscribe(self, user, event="presence", expires=600):
        """(reply, dialog) of an initial SUBSCRIBE to ``user``."""
        reply, cseq, call_id, from_tag = self.send(
            "SUBSCRIBE", self.uri(user), self.uri(user),
            headers=[f"Event: {event}", f"Expires: {expires}", "Accept: application/pidf+xml"])
        to_tag = re.search(r";tag=([^;>\s]+)", header(reply, "To") or "")
        return reply, {"user": user, "event": event, "cseq": cseq, "call_id": call_id,
                       "from_tag": from_tag, "to_tag": to_tag.group(1) if to_tag else None,
                       "target": (header(reply, "Contact") or "").strip("<>")}

    def resubscribe(self, dialog, expires):
        reply, cseq, *_ = self.send(
            "SUBSCRIBE", dialog["target"], self.uri(dialog["user"]),
            call_id=dialog["call_id"], cseq=dialog["cseq"] + 1, from_tag=dialog["from_tag"],
            to_tag=dialog["to_tag"], headers=[f"Event: {dialog['event']}",
                                              f"Expires: {expires}"])
        dialog["cseq"] = cseq
        return reply


def state_of(notify):
    return header(notify, "Subscription-State")


def basic_of(notify):
    found = re.findall(r"<basic>(\w+)</basic>", body_of(notify))
    assert found, body_of(notify)
    return found


def test_publish_subscribe_modify_412_unsubscribe_489(ser, tmp_path):
    server = start(ser, tmp_path)
    alice, bob = RawPhone(server, "alice"), RawPhone(server, "bob")
    try:
        reply = alice.publish("open")
        assert status_of(reply) == 200, reply
        etag = header(reply, "SIP-ETag")
        assert etag and header(reply, "Expires") == "600"

        reply, dialog = bob.subscribe("alice")
        assert status_of(reply) == 200 and dialog["to_tag"], reply
        notify = bob.wait_notify()
        assert state_of(notify).startswith("active;expires=")
        assert header(notify, "Event") == "presence"
        assert header(notify, "Content-Type") == "application/pidf+xml"
        assert basic_of(notify) == ["open"]
        # the NOTIFY belongs to the subscription's dialog (RFC 6665 4.1.2)
        assert dialog["call_id"] == header(notify, "Call-ID")
        assert f"tag={dialog['from_tag']}" in header(notify, "To")
        assert f"tag={dialog['to_tag']}" in header(notify, "From")

        reply = alice.publish("closed", etag=etag)
        assert status_of(reply) == 200 and header(reply, "SIP-ETag") not in (None, etag)
        notify = bob.wait_notify()
        assert basic_of(notify) == ["closed"]

        # the entity-tag was replaced: the old one is unknown now
        assert status_of(alice.publish("open", etag=etag)) == 412
        assert status_of(alice.publish("open", etag="no-such-tag")) == 412

        reply = bob.resubscribe(dialog, 0)
        assert status_of(reply) == 200, reply
        notify = bob.wait_notify()
        assert state_of(notify).startswith("terminated")

        reply, _ = bob.subscribe("alice", event="foo")
        assert status_of(reply) == 489 and header(reply, "Allow-Events") == "presence, dialog"
        # the unsubscribed dialog got nothing more
        alice.publish("open")
        barrier(server.addr)
        assert bob.pending() == []
    finally:
        alice.close()
        bob.close()


def test_a_481_to_a_notify_ends_the_subscription(ser, tmp_path):
    server = start(ser, tmp_path)
    alice, bob = RawPhone(server, "alice"), RawPhone(server, "bob")
    try:
        etag = header(alice.publish("open"), "SIP-ETag")
        bob.subscribe("alice")
        bob.wait_notify()
        reply = alice.publish("closed", etag=etag)
        etag = header(reply, "SIP-ETag")
        bob.wait_notify(answer=481)         # the phone forgot the subscription
        barrier(server.addr)
        alice.publish("open", etag=etag)
        barrier(server.addr)
        assert bob.pending() == []
    finally:
        alice.close()
        bob.close()


def test_state_survives_kill_9(ser, tmp_path):
    server = start(ser, tmp_path)
    alice, bob = RawPhone(server, "alice"), RawPhone(server, "bob")
    try:
        etag = header(alice.publish("open"), "SIP-ETag")
        _, dialog = bob.subscribe("alice")
        bob.wait_notify()
        server.kill9()
        server.start()
        # the publication (its entity-tag) and the subscription are both back
        reply = alice.publish("closed", etag=etag)
        assert status_of(reply) == 200, reply
        notify = bob.wait_notify()
        assert basic_of(notify) == ["closed"]
        assert header(notify, "Call-ID") == dialog["call_id"]
        assert status_of(bob.resubscribe(dialog, 600)) == 200
        assert basic_of(bob.wait_notify()) == ["closed"]
    finally:
        alice.close()
        bob.close()


def test_who_may_publish_and_subscribe(ser, tmp_path):
    server = start(ser, tmp_path)
    alice, bob = RawPhone(server, "alice"), RawPhone(server, "bob")
    stranger = RawPhone(server, "mallory", password="guess")
    foreign = RawPhone(server, "bob", domain="evil.example")
    try:
        # alice publishes for herself only
        reply, *_ = alice.send("PUBLISH", alice.uri("bob"), alice.uri("bob"),
                               headers=["Event: presence", "Content-Type: application/pidf+xml"],
                               body=PIDF.format(user="bob", host=alice.host, tuple="x",
                                                basic="open").encode())
        assert status_of(reply) == 403
        # no credentials: challenged; wrong ones: challenged again, never a NOTIFY
        reply, _ = stranger.subscribe("alice")
        assert status_of(reply) == 407
        reply, _ = RawPhone(server, "carol").subscribe("alice")
        assert status_of(reply) == 407
        # an account's credentials with a From of another domain: not one of the house
        reply, _ = foreign.subscribe("alice")
        assert status_of(reply) == 403
        # a user nobody knows looks like a user who published nothing: closed, no error
        reply, _ = bob.subscribe("nobody")
        assert status_of(reply) == 200
        unknown = bob.wait_notify()
        reply, _ = bob.subscribe("alice")
        assert status_of(reply) == 200
        known = bob.wait_notify()
        assert basic_of(unknown) == basic_of(known) == ["closed"]
        assert body_of(unknown).replace("nobody", "alice") == body_of(known)
        barrier(server.addr)
        assert stranger.pending() == [] and foreign.pending() == []
    finally:
        for phone in (alice, bob, stranger, foreign):
            phone.close()


def test_uci_presence_house_switch(ser, tmp_path):
    # the generated config: by default a phone watches any user of the house; with
    # option presence_house '0' only itself
    from .test_accounts import House
    (tmp_path / "on").mkdir()
    house = House(ser, tmp_path / "on")
    bob = RawPhone(house.server, "bob")
    try:
        reply, _ = bob.subscribe("alice")
        assert status_of(reply) == 200, reply
        assert basic_of(bob.wait_notify()) == ["closed"]
    finally:
        bob.close()
    (tmp_path / "off").mkdir()
    house = House(ser, tmp_path / "off", extra="\toption presence_house '0'\n")
    bob = RawPhone(house.server, "bob")
    try:
        reply, _ = bob.subscribe("alice")
        assert status_of(reply) == 403, reply
        reply, dialog = bob.subscribe("bob")
        assert status_of(reply) == 200, reply
        bob.wait_notify()
        # a refresh (To tag, Request-URI our Contact) is not taken for watching another
        assert status_of(bob.resubscribe(dialog, 0)) == 200
        assert state_of(bob.wait_notify()).startswith("terminated")
    finally:
        bob.close()


def test_ser_ctl_presence_shows_each_account_and_the_subscriptions(ser, tmp_path):
    import json
    import os
    import subprocess
    import sys
    server = start(ser, tmp_path)
    alice, bob = RawPhone(server, "alice"), RawPhone(server, "bob")

    def ctl(*args):
        env = dict(os.environ, SER_UNIX_SOCK=server.ctl_sock,
                   PYTHONPATH=str(sipnet.REPO))
        out = subprocess.run([sys.executable, "-m", "serlite.ctl", *args], env=env,
                             cwd=sipnet.REPO, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout

    try:
        alice.publish("open")
        bob.subscribe("alice")
        bob.wait_notify()
        bob.subscribe("alice", event="dialog")
        bob.wait_notify()
        shown = json.loads(ctl("presence", "--json"))
        rows = {p["user"]: p for p in shown["presentities"]}
        assert rows["alice"]["presence"] == "open" and rows["alice"]["watchers"] == 2
        assert rows["bob"]["presence"] == "unknown" and rows["bob"]["watchers"] == 0
        assert shown["subscriptions"] == 2
        text = ctl("presence")
        assert re.search(r"^alice\s+open\s+-\s+2$", text, re.M), text
        assert "subscriptions: 2" in text
    finally:
        alice.close()
        bob.close()
