"""The presence module without a network: PUBLISH and SUBSCRIBE through handle_publish /
handle_subscribe on parsed requests, NOTIFYs caught where tm's t_uac would send them, a fake
clock; local_publish (pua_dialoginfo's way in); the files across a restart."""

import re

import pytest

from serlite.loop import Loop
from serlite.modules import presence as presence_module
from serlite.proxy.context import Context, Source
from serlite.sip.message import parse

PIDF_OPEN = ('<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" '
             'entity="sip:100@h"><tuple id="t1"><status><basic>open</basic></status></tuple>'
             '</presence>')
PIDF_CLOSED = PIDF_OPEN.replace("open", "closed")
DIALOG = ('<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
          'version="0" state="full" entity="sip:100@h"><dialog id="d1">'
          '<state>early</state></dialog></dialog-info>')


class Listener:
    name = "udp:192.0.2.1:5060"


class FakeTm:
    def __init__(self):
        self.replies = []
        self.sent = []          # (method, ruri, rest, hop, callback)

    def reply(self, ctx, status, reason, headers=()):
        self.replies.append((status, reason, dict(headers)))
        return True

    def t_uac(self, method, ruri, rest, hop, callback):
        self.sent.append((method, ruri, rest, hop, callback))
        return "b"


class FakeCore:
    def __init__(self):
        self.loop = Loop()
        self.clock = 100.0
        self.tm = FakeTm()
        self.modules = {"tm": self.tm}

    def now(self):
        return self.clock

    def wall(self):
        return 1_700_000_000.0 + self.clock

    def module(self, name):
        return self.modules.get(name)

    def local_to_tag(self, msg):
        return "srv" + msg.from_.tag

    def advance(self, seconds):
        self.clock += seconds
        self.loop.run_due(self.clock)


def make(core=None, **params):
    values = {n: p.default for n, p in presence_module.EXPORTS.params.items()}
    values.update(params)
    module = presence_module.Presence(values)
    core = core or FakeCore()
    core.modules["presence"] = module
    module.start(core)
    return module, core


def request(method, headers, body="", ruri="sip:100@h"):
    lines = [f"{method} {ruri} SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK1",
             "Max-Forwards: 70"] + headers
    if body:
        lines.append("Content-Type: " + ("application/pidf+xml" if "presence" in body
                                         else "application/dialog-info+xml"))
    lines.append(f"Content-Length: {len(body.encode())}")
    msg = parse(("\r\n".join(lines) + "\r\n\r\n" + body).encode())
    return Context(msg, Source("udp", "192.0.2.9", 5062, Listener()), None)


def publish(module, body="", if_match=None, expires=None, event="presence"):
    headers = ["From: <sip:100@h>;tag=p1", "To: <sip:100@h>", "Call-ID: pub1",
               "CSeq: 1 PUBLISH", f"Event: {event}"]
    if if_match:
        headers.append(f"SIP-If-Match: {if_match}")
    if expires is not None:
        headers.append(f"Expires: {expires}")
    module.handle_publish(request("PUBLISH", headers, body))
    return module.core.tm.replies[-1]


def subscribe(module, event="presence", expires=600, to_tag=None, cseq=1, call_id="sub1"):
    headers = ["From: <sip:101@h>;tag=w1",
               f"To: <sip:100@h>{';tag=' + to_tag if to_tag else ''}",
               f"Call-ID: {call_id}", f"CSeq: {cseq} SUBSCRIBE", f"Event: {event}",
               "Contact: <sip:101@192.0.2.9:5062>", f"Expires: {expires}"]
    module.handle_subscribe(request("SUBSCRIBE", headers))
    return module.core.tm.replies[-1]


def notifies(core):
    out = []
    for method, ruri, rest, hop, callback in core.tm.sent:
        head, _, body = rest.decode().partition("\r\n\r\n")
        state = re.search(r"Subscription-State: (\S+)", head).group(1)
        out.append((state, body, hop, callback, head))
    core.tm.sent.clear()
    return out


def test_publish_gives_an_etag_and_subscribe_notifies_open():
    module, core = make()
    status, _, headers = publish(module, PIDF_OPEN)
    assert status == 200 and headers["SIP-ETag"] and headers["Expires"] == "3600"
    status, _, headers = subscribe(module)
    assert status == 200 and headers["Expires"] == "600" and "192.0.2.1:5060" in \
        headers["Contact"]
    (state, body, hop, _, head), = notifies(core)
    assert state == "active;expires=600" and "<basic>open</basic>" in body
    assert hop == ("udp", "192.0.2.9", 5062)
    assert "To: <sip:101@h>;tag=w1" in head and "From: <sip:100@h>;tag=srvw1" in head
    assert "CSeq: 1 NOTIFY" in head


def test_modify_notifies_closed_refresh_does_not_unknown_etag_412():
    module, core = make()
    etag = publish(module, PIDF_OPEN)[2]["SIP-ETag"]
    subscribe(module)
    notifies(core)
    status, _, headers = publish(module, PIDF_CLOSED, if_match=etag)
    assert status == 200 and headers["SIP-ETag"] != etag
    (state, body, _, _, head), = notifies(core)
    assert "<basic>closed</basic>" in body and "CSeq: 2 NOTIFY" in head
    etag2 = headers["SIP-ETag"]
    status, _, headers = publish(module, if_match=etag2, expires=60)     # refresh
    assert status == 200 and headers["Expires"] == "60" and notifies(core) == []
    assert publish(module, PIDF_OPEN, if_match=etag)[0] == 412        # the old tag
    assert publish(module, if_match="nonsense")[0] == 412
    assert publish(module)[0] == 400                                    # nothing to say
    status, _, _ = publish(module, if_match=headers["SIP-ETag"], expires=0)
    assert status == 200
    (state, body, _, _, _), = notifies(core)
    assert "<basic>closed</basic>" in body and 'id="serlite"' in body


def test_two_publishers_merged():
    module, core = make()
    publish(module, PIDF_OPEN)
    publish(module, PIDF_CLOSED.replace('id="t1"', 'id="t2"'))
    subscribe(module)
    (_, body, _, _, _), = notifies(core)
    assert 'id="t1"' in body and 'id="t2"' in body and body.count("<presence") == 1
    assert module.status_of("100")["presence"] == "open"


def test_bad_event_489_with_allow_events_and_min_expires_423():
    module, core = make(min_expires=60)
    status, _, headers = subscribe(module, event="foo")
    assert status == 489 and headers["Allow-Events"] == "presence, dialog"
    assert publish(module, PIDF_OPEN, event="foo")[0] == 489
    status, _, headers = subscribe(module, expires=10)
    assert status == 423 and headers["Min-Expires"] == "60"
    assert publish(module, PIDF_OPEN, expires=10)[0] == 423
    assert subscribe(module, expires=99999)[2]["Expires"] == "3600"     # max_expires


def test_unknown_user_is_closed_not_an_error():
    module, core = make()
    headers = ["From: <sip:101@h>;tag=w9", "To: <sip:nobody@h>", "Call-ID: s9",
               "CSeq: 1 SUBSCRIBE", "Event: presence", "Contact: <sip:101@192.0.2.9:5062>"]
    module.handle_subscribe(request("SUBSCRIBE", headers, ruri="sip:nobody@h"))
    assert core.tm.replies[-1][0] == 200
    (_, body, _, _, _), = notifies(core)
    assert "<basic>closed</basic>" in body


def test_unsubscribe_refresh_timeout_and_481():
    module, core = make()
    subscribe(module)
    notifies(core)
    assert subscribe(module, to_tag="srvw1", cseq=2, expires=300)[0] == 200
    (state, _, _, _, _), = notifies(core)
    assert state == "active;expires=300"
    assert subscribe(module, to_tag="srvw1", cseq=2)[0] == 500           # CSeq not higher
    assert subscribe(module, to_tag="other", cseq=3)[0] == 481
    assert subscribe(module, to_tag="srvw1", cseq=3, expires=0)[0] == 200
    (state, _, _, _, _), = notifies(core)
    assert state.startswith("terminated")
    assert len(module.subscriptions) == 0
    # timeout
    subscribe(module, call_id="sub2", expires=100)
    notifies(core)
    core.advance(101)
    (state, _, _, _, _), = notifies(core)
    assert state == "terminated;reason=timeout" and len(module.subscriptions) == 0
    # a 481 to a NOTIFY ends it
    subscribe(module, call_id="sub3")
    (_, _, _, callback, _), = notifies(core)
    callback(481, None)
    assert len(module.subscriptions) == 0


def test_local_publish_notifies_dialog_watchers_with_their_version():
    module, core = make()
    subscribe(module, event="dialog")
    (_, body, _, _, _), = notifies(core)
    assert 'version="0"' in body and "<dialog " not in body             # idle, full state
    assert module.local_publish("sip:100@h", "dialog", DIALOG.encode(),
                                "application/dialog-info+xml", 60, "pua_dialoginfo")
    (_, body, _, _, _), = notifies(core)
    assert 'version="1"' in body and "<state>early</state>" in body
    assert module.status_of("100")["dialog"] == "early"
    confirmed = DIALOG.replace("early", "confirmed").encode()
    module.local_publish("sip:100@h", "dialog", confirmed, "application/dialog-info+xml", 60,
                         "pua_dialoginfo")
    (_, body, _, _, _), = notifies(core)
    assert 'version="2"' in body and "confirmed" in body
    assert module.publications.count == 1        # one source, one state: replaced
    assert module.local_publish("sip:100@h", "dialog", b"", "", 0, "pua_dialoginfo")
    (_, body, _, _, _), = notifies(core)
    assert "<dialog " not in body and 'version="3"' in body
    with pytest.raises(ValueError):
        module.local_publish("sip:100@h", "dialog", b"<x/>", "", 60, "pua_dialoginfo")
    # expiry of the local state notifies too
    module.local_publish("sip:100@h", "dialog", DIALOG.encode(), "", 30, "pua_dialoginfo")
    notifies(core)
    core.advance(31)
    (_, body, _, _, _), = notifies(core)
    assert "<dialog " not in body


def test_limits_per_user_and_in_all():
    module, core = make(max_subscriptions=3, max_subscriptions_per_user=2)
    assert subscribe(module, call_id="a")[0] == 200
    assert subscribe(module, call_id="b")[0] == 200
    assert subscribe(module, call_id="c")[0] == 403
    headers = ["From: <sip:102@h>;tag=x", "To: <sip:100@h>", "Call-ID: d",
               "CSeq: 1 SUBSCRIBE", "Event: presence", "Contact: <sip:102@192.0.2.8>"]
    module.handle_subscribe(request("SUBSCRIBE", headers))
    assert core.tm.replies[-1][0] == 200
    headers[0], headers[2] = "From: <sip:103@h>;tag=y", "Call-ID: e"
    module.handle_subscribe(request("SUBSCRIBE", headers))
    assert core.tm.replies[-1][0] == 503


def test_state_survives_a_restart(tmp_path):
    url = f"dbtext://{tmp_path}/presence"
    module, core = make(db_url=url)
    etag = publish(module, PIDF_OPEN)[2]["SIP-ETag"]
    subscribe(module)
    module.local_publish("sip:100@h", "dialog", DIALOG.encode(), "", 60, "pua_dialoginfo")
    notifies(core)
    # no stop(): as after kill -9
    again, core2 = make(db_url=url)
    # the PUBLISHed state is back; serlite's own (the calls) is not: no lamp comes back lit
    assert len(again.subscriptions) == 1 and again.publications.count == 1
    assert again.publications.get("100", "dialog") == []
    assert publish(again, PIDF_CLOSED, if_match=etag)[0] == 200
    (state, body, hop, _, head), = notifies(core2)
    assert "<basic>closed</basic>" in body and hop == ("udp", "192.0.2.9", 5062)
    cseq = int(re.search(r"CSeq: (\d+)", head).group(1))
    assert cseq > 1     # goes on above what the crash may have lost
    assert subscribe(again, to_tag="srvw1", cseq=2, expires=0)[0] == 200
    third, _ = make(db_url=url)
    assert len(third.subscriptions) == 0 and third.publications.count == 1
