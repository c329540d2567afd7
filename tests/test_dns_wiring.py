"""tm and the core with names (RFC 3263) in process: a real Core, tm and DnsClient in the real
loop against dnsmasq (tests/e2e/dnsmasq.py), a transport that records what it would send, and
``socket.getaddrinfo`` made to raise: nothing may look a name up blocking once the server
runs.  What goes where: the SRV targets in order, failover to the next on 503 and on timeout
(a new branch; the failure not relayed), CANCEL and ACK to the branch's current target; a
stateless forward() to the first target; an unresolvable name answered 478."""

import re
import socket
import time
from pathlib import Path

import pytest

from serlite.control.stats import Stats
from serlite.dns_client import DnsClient
from serlite.loop import Loop
from serlite.proxy.context import Source
from serlite.proxy.core import Core
from serlite.script.compiler import compile_config
from serlite.sip.uri import URI

from .e2e.dnsmasq import Dnsmasq

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ["--srv-host=_sip._udp.provider.test,a.provider.test,5071,10,0",
           "--srv-host=_sip._udp.provider.test,b.provider.test,5072,20,0",
           "--host-record=a.provider.test,127.0.0.11",
           "--host-record=b.provider.test,127.0.0.12"]
CONFIG = """
loadmodule "sl.so"
loadmodule "tm.so"
modparam("tm", "fr_timer", 1000)
route {
    if (method == "ACK" || method == "CANCEL") { t_relay(); exit; }
    if (uri =~ "^sip:stateless") { rewriteuri("sip:bob@provider.test"); forward(); exit; }
    if (uri =~ "^sip:unres") { rewriteuri("sip:bob@nowhere.test"); t_relay(); exit; }
    if (uri =~ "^sip:lit") { rewriteuri("sip:bob@127.0.0.13:5075"); t_relay(); exit; }
    rewriteuri("sip:bob@provider.test");
    t_relay();
}
"""


class Listener:
    proto, family, ip, host, port = "udp", socket.AF_INET, "127.0.0.1", "127.0.0.1", 5060
    name = "udp:127.0.0.1:5060"
    backlog = 0.0


class Transport:
    def __init__(self):
        self.sent = []              # (ip, port, data)
        self.listeners = [Listener()]
        self.connections = {}

    def send(self, proto, ip, port, data, local=None, conn=None, server_name=None):
        socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)   # no name
        self.sent.append((ip, port, data))
        return True

    def listener_for(self, proto, family, ip=None):
        return self.listeners[0] if family == socket.AF_INET else None

    def lines(self):
        return [(ip, port, d.split(b"\r\n", 1)[0].decode()) for ip, port, d in self.sent]


def _no_getaddrinfo(*args, **kw):
    raise AssertionError(f"getaddrinfo{args} called: a blocking lookup in the loop")


@pytest.fixture
def proxy(tmp_path, monkeypatch):
    with Dnsmasq(tmp_path, RECORDS, domain="test") as dns:
        monkeypatch.setattr(socket, "getaddrinfo", _no_getaddrinfo)
        monkeypatch.setattr(socket, "gethostbyname", _no_getaddrinfo)
        loop = Loop()
        tr = Transport()
        core = Core(loop, tr, Stats(0))
        core.set_identity(tr.listeners, [])
        hosts = tmp_path / "hosts"
        hosts.write_text("127.0.0.1 localhost\n")
        core.dns = DnsClient(loop, str(dns.resolv_conf), str(hosts), port=dns.port,
                             protos=("udp",), families=(1,))
        script = compile_config(CONFIG, "dns.cfg")
        core.use_script(script)
        for m in script.modules.values():
            m.start(core, None)
        yield Proxy(loop, tr, core)
        core.dns.close()
        loop.close()


class Proxy:
    def __init__(self, loop, tr, core):
        self.loop, self.tr, self.core = loop, tr, core
        self.src = Source("udp", "127.0.0.1", 6001, tr.listeners[0])

    def receive(self, data):
        self.core.receive(data, self.src)

    def run_until(self, check, limit=5.0):
        """Run the loop until ``check()`` (bounded: ``limit`` s)."""
        start = time.monotonic()

        def tick():
            if check() or time.monotonic() - start > limit:
                self.loop.stop()
            else:
                self.loop.call_later(0.01, tick)
        self.loop.call_later(0, tick)
        self.loop.run()
        assert check(), f"not within {limit} s: {self.tr.lines()}"

    def sent_to(self, ip, port, what):
        return [d for i, p, d in self.tr.sent if (i, p) == (ip, port) and d.startswith(what)]


def request(method, user, *, branch="i1", call_id="c1", cseq=1):
    lines = [f"{method} sip:{user}@127.0.0.1:5060 SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-{branch}",
             "Max-Forwards: 70", "From: <sip:alice@127.0.0.1>;tag=a1",
             f"To: <sip:{user}@127.0.0.1>", f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
             "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def reply_to(data, status, reason, tag="b1"):
    head = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
    keep = [h for h in head if h.split(":")[0].lower() in ("via", "from", "call-id", "cseq")]
    to = [h for h in head if h.lower().startswith("to:")][0] + f";tag={tag}"
    return ("\r\n".join([f"SIP/2.0 {status} {reason}", *keep, to, "Content-Length: 0"])
            + "\r\n\r\n").encode()


A, B = ("127.0.0.11", 5071), ("127.0.0.12", 5072)


def test_503_from_the_first_target_fails_over_to_the_second(proxy):
    proxy.receive(request("INVITE", "bob"))
    proxy.run_until(lambda: proxy.sent_to(*A, b"INVITE"))
    first = proxy.sent_to(*A, b"INVITE")[0]
    assert first.startswith(b"INVITE sip:bob@provider.test SIP/2.0")
    assert not proxy.sent_to(*B, b"INVITE")
    proxy.core.receive(reply_to(first, 503, "Service Unavailable"),
                       Source("udp", *A, proxy.tr.listeners[0]))
    second = proxy.sent_to(*B, b"INVITE")
    assert len(second) == 1
    via = [h for h in second[0].split(b"\r\n") if h.startswith(b"Via:")][0]
    assert via not in first                             # a new branch (client transaction)
    assert proxy.sent_to(*A, b"ACK")                    # the 503 ACKed where it came from
    upstream = [line for ip, port, line in proxy.tr.lines() if port == 6001]
    assert upstream == ["SIP/2.0 100 Trying"]           # the 503 was not relayed
    assert proxy.core.stats.counters["dns_failover"] == 1
    # a CANCEL goes to the branch's current target, once it answered 180
    proxy.core.receive(reply_to(second[0], 180, "Ringing"),
                       Source("udp", *B, proxy.tr.listeners[0]))
    proxy.receive(request("CANCEL", "bob"))
    assert proxy.sent_to(*B, b"CANCEL") and not proxy.sent_to(*A, b"CANCEL")


def test_a_silent_first_target_fails_over_at_fr_timer(proxy):
    proxy.receive(request("INVITE", "bob"))
    started = time.monotonic()
    proxy.run_until(lambda: proxy.sent_to(*B, b"INVITE"), limit=5)
    took = time.monotonic() - started
    assert 0.9 < took < 3, took                         # fr_timer 1 s
    assert proxy.sent_to(*A, b"INVITE")
    upstream = [line for ip, port, line in proxy.tr.lines() if port == 6001]
    assert upstream == ["SIP/2.0 100 Trying"]           # no 408 relayed


def test_no_failover_after_a_provisional(proxy):
    proxy.receive(request("INVITE", "bob"))
    proxy.run_until(lambda: proxy.sent_to(*A, b"INVITE"))
    first = proxy.sent_to(*A, b"INVITE")[0]
    src = Source("udp", *A, proxy.tr.listeners[0])
    proxy.core.receive(reply_to(first, 180, "Ringing"), src)
    proxy.core.receive(reply_to(first, 503, "Service Unavailable"), src)
    assert not proxy.sent_to(*B, b"INVITE")
    upstream = [line for ip, port, line in proxy.tr.lines() if port == 6001]
    assert upstream[-1] == "SIP/2.0 500 Server Internal Error"     # 16.7 step 6


def test_stateless_forward_to_the_first_target(proxy):
    proxy.receive(request("MESSAGE", "stateless"))
    proxy.run_until(lambda: proxy.sent_to(*A, b"MESSAGE"))
    assert not proxy.sent_to(*B, b"MESSAGE")


def test_an_unresolvable_name_is_answered_478(proxy):
    proxy.receive(request("INVITE", "unres"))
    proxy.run_until(lambda: any(line.startswith("SIP/2.0 478")
                                for _, _, line in proxy.tr.lines()))


def test_literal_addresses_take_no_lookup(proxy):
    """The fast path: a next hop that is an address is sent to at once, nothing asked."""
    before = dict(proxy.core.dns.resolver.counters)
    proxy.receive(request("INVITE", "lit"))
    assert proxy.sent_to("127.0.0.13", 5075, b"INVITE sip:bob@127.0.0.13:5075 ")
    assert proxy.core.dns.resolver.counters == before


def test_the_source_has_no_blocking_lookup():
    """No getaddrinfo/gethostbyname in the server's code but rtpproxy_sock's, which takes
    an address only (AI_NUMERICHOST: no resolver asked, at start or SIGHUP)."""
    allowed = {"serlite/extrelay.py"}
    found = []
    for path in sorted((ROOT / "serlite").rglob("*.py")):
        calls = re.findall(r"\b(getaddrinfo|gethostbyname\w*|create_connection|getfqdn)\(",
                           path.read_text())
        if calls and str(path.relative_to(ROOT)) not in allowed:
            found.append((str(path.relative_to(ROOT)), calls))
    assert found == []


def test_kamailios_dns_parameters_reach_the_client():
    from serlite.dns import message as m
    from serlite.dns_client import options_from_globals
    script = compile_config('dns_retr_time=1\ndns_retr_no=3\ndns_try_ipv6=no\n'
                            'dns_try_naptr=off\nuse_dns_cache=no\ndns_port=5353\n'
                            'dns_resolv_conf="/tmp/r.conf"\nroute { }\n', "dns.cfg")
    g = script.globals
    kw = options_from_globals(g)
    assert (kw["retr_time"], kw["retr_no"], kw["families"], kw["naptr"]) == (1, 3, (m.A,),
                                                                             False)
    assert kw["cache"].max_entries == 0
    assert (g["dns_port"], g["dns_resolv_conf"]) == (5353, "/tmp/r.conf")
    with pytest.raises(Exception, match="dns_port"):
        compile_config("dns_port=0\nroute { }\n", "dns.cfg")


REST = (b"To: <sip:house@provider.test>\r\nFrom: <sip:house@provider.test>;tag=1\r\n"
        b"Call-ID: r1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")


def test_t_uac_locates_a_uri_and_fails_over_on_503_and_on_timeout(proxy):
    """uac's REGISTER to a provider named by SRV: the first target's 503 and, for the next
    request, its silence move it to the second; the callback hears only the answer."""
    got = []
    proxy.core.tm.t_uac("REGISTER", "sip:provider.test", REST,
                        URI.parse("sip:provider.test"), lambda st, msg: got.append(st))
    proxy.run_until(lambda: proxy.sent_to(*A, b"REGISTER"))
    first = proxy.sent_to(*A, b"REGISTER")[0]
    proxy.core.receive(reply_to(first, 503, "Service Unavailable"),
                       Source("udp", *A, proxy.tr.listeners[0]))
    second = proxy.sent_to(*B, b"REGISTER")
    assert len(second) == 1 and got == []
    proxy.core.receive(reply_to(second[0], 200, "OK"), Source("udp", *B, proxy.tr.listeners[0]))
    assert got == [200]
    proxy.tr.sent.clear()
    proxy.core.tm.t_uac("REGISTER", "sip:provider.test", REST,
                        URI.parse("sip:provider.test"), lambda st, msg: got.append(st))
    assert proxy.sent_to(*A, b"REGISTER")          # cached now: sent at once
    proxy.run_until(lambda: proxy.sent_to(*B, b"REGISTER"), limit=5)   # fr_timer 1 s
    assert got == [200]


def test_t_uac_over_tcp_whose_connection_fails_hears_503_once(proxy):
    """A refused TCP connection of a request of serlite's own (uac's REGISTER to a TCP
    provider): its callback hears 503 at once (the branch has no response context)."""
    got = []
    proxy.core.tm.t_uac("REGISTER", "sip:x", REST, ("tcp", "127.0.0.21", 5090),
                        lambda st, msg: got.append(st))
    assert proxy.tr.sent[-1][:2] == ("127.0.0.21", 5090)
    proxy.core.tm._connect_failed("tcp", "127.0.0.21", 5090, "refused")
    assert got == [503]
    proxy.core.tm._connect_failed("tcp", "127.0.0.21", 5090, "refused")
    assert got == [503]
