"""A phone behind NAT, against the real server: nathelper's nat_uac_test, fix_nated_register
and fix_nated_contact on its REGISTER, an INVITE that reaches it where its packets really come
from, the keepalive OPTIONS it gets, and its binding going away once it stops answering.

The "phone" is a raw UDP socket on 127.0.0.1:P that writes the address a phone behind a home
NAT box knows, 192.168.1.50:5060, into its Via and Contact; serlite sees its packets come from
127.0.0.1:P, as it would see the NAT box's public address.
"""

import secrets
import select
import time

import pytest

from . import sipnet
from .sipnet import (UdpPeer, has_status, is_final, make_request, query_bindings,
                     request_line, response_to, status_of)

PRIVATE = ("192.168.1.50", 5060)


def config(*, fix_contact=True, method="OPTIONS", timeout=3):
    fix = " fix_nated_contact();" if fix_contact else ""
    return f"""
debug=2
loadmodule "sl"
loadmodule "tm"
loadmodule "usrloc"
loadmodule "registrar"
loadmodule "nathelper"
modparam("usrloc", "db_mode", 0)
modparam("nathelper", "natping_interval", 1)
modparam("nathelper", "natping_method", "{method}")
modparam("nathelper", "natping_timeout", {timeout})
route {{
    if (method == "REGISTER") {{
        if (nat_uac_test("19")) {{ fix_nated_register();{fix} }}
        save("location");
        exit;
    }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    t_relay();
}}
"""


class Phone:
    """The NATed phone: registers, answers keepalive pings while `answering`, and collects
    what it receives (with the address it came from)."""

    def __init__(self, server):
        self.server = server
        self.peer = UdpPeer()
        self.contact = f"sip:bob@{PRIVATE[0]}:{PRIVATE[1]}"
        self.answering = True
        self.pings = []         # (time, data, source address)

    def close(self):
        self.peer.close()

    def register(self):
        aor = f"sip:bob@{sipnet.hostport(*self.server.addr)}"
        req = make_request("REGISTER", f"sip:{sipnet.hostport(*self.server.addr)}",
                           via=PRIVATE, to=aor, call_id=secrets.token_hex(8) + "@phone",
                           headers=[f"Contact: <{self.contact}>", "Expires: 3600"])
        self.peer.send(req, self.server.addr)
        reply = self.wait(is_final, 3)
        assert reply is not None and status_of(reply[0]) == 200, reply
        return reply[0]

    def wait(self, until, timeout):
        """Receive (answering pings) until a message satisfies `until`: (data, address), or
        None after `timeout` s."""
        deadline = time.monotonic() + timeout
        sock = self.peer.sock
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not select.select([sock], [], [], left)[0]:
                continue
            data, addr = sock.recvfrom(65535)
            line = request_line(data)
            if line is not None and line[0] == "OPTIONS" or data == b"\r\n\r\n":
                self.pings.append((time.monotonic(), data, addr))
                if self.answering and data != b"\r\n\r\n":
                    sock.sendto(response_to(data, 200, "OK", to_tag="phone"), addr)
            if until(data):
                return data, addr


def is_invite(data):
    return (request_line(data) or (None,))[0] == "INVITE"


@pytest.mark.parametrize("fix_contact", [True, False],
                         ids=["fix_nated_contact", "fix_nated_register-only"])
def test_invite_reaches_the_nated_phone_at_its_real_address(ser, fix_contact):
    server = ser(config(fix_contact=fix_contact))
    phone = Phone(server)
    try:
        ok = phone.register()
        real = f"sip:bob@127.0.0.1:{phone.peer.port}"
        # the 200 lists the binding: rewritten to the real address, or as the phone wrote it
        assert sipnet.contacts_of(ok) == [real if fix_contact else phone.contact]
        with UdpPeer() as caller:
            uri = f"sip:bob@{sipnet.hostport(*server.addr)}"
            invite = make_request("INVITE", uri, via=(caller.host, caller.port), to=uri,
                                  from_="sip:alice@home.lan",
                                  headers=[f"Contact: <sip:alice@{caller.host}:{caller.port}>"])
            caller.send(invite, server.addr)
            got = phone.wait(is_invite, 5)
            assert got is not None, "the INVITE did not reach the phone's real address"
            data, addr = got
            assert addr == server.addr
            assert request_line(data) == ("INVITE", real if fix_contact else phone.contact)
            phone.peer.sock.sendto(response_to(data, 486, "Busy Here", to_tag="bob"), addr)
            replies = caller.recv_until(has_status(486), 5)
            assert any(status_of(r) == 486 for r in replies), replies
    finally:
        phone.close()


def test_keepalive_pings_and_the_binding_goes_when_they_stop_being_answered(ser):
    server = ser(config(timeout=3))
    phone = Phone(server)
    try:
        phone.register()
        real = f"sip:bob@127.0.0.1:{phone.peer.port}"
        # answered pings keep the binding well past natping_timeout
        phone.wait(lambda data: False, 4.5)
        assert len(phone.pings) >= 3, phone.pings
        for _, data, addr in phone.pings:
            assert addr == server.addr                  # from the socket it registered on
            assert request_line(data) == ("OPTIONS", real)
            assert b";branch=z9hG4bKnp" in data
        assert query_bindings(server.addr, "bob") == [real]
        # silence: gone after natping_timeout (3 s; pings every 1 s: 3 to 4 s after the last
        # answer, which came less than a second before the phone fell silent), not before
        phone.answering = False
        stopped = time.monotonic()
        deadline = stopped + 10
        while query_bindings(server.addr, "bob"):
            assert time.monotonic() < deadline, "the silent binding was not removed"
            phone.wait(lambda data: False, 0.2)
        gone = time.monotonic() - stopped
        print(f"\nnathelper: {len(phone.pings)} pings answered; the binding went {gone:.2f} s "
              f"after the phone stopped answering (natping_timeout 3 s, interval 1 s)")
        assert 1.5 <= gone <= 7.0, gone
        sipnet.wait_log(server, rf"nathelper: {real} of bob answered no ping for 3 s: "
                                "binding removed")
        # and no more pings for it
        phone.pings.clear()
        phone.wait(lambda data: False, 1.5)
        assert phone.pings == []
    finally:
        phone.close()


@pytest.mark.parametrize("python", [None, sipnet.PYTHON3_LIGHT],
                         ids=["python3", "python3-light"])
def test_null_ping_method_sends_crlf_crlf(ser, python):
    server = ser(config(method="NULL", timeout=0), python=python)
    phone = Phone(server)
    try:
        phone.register()
        got = phone.wait(lambda data: data == b"\r\n\r\n", 3)
        assert got == (b"\r\n\r\n", server.addr)
    finally:
        phone.close()
