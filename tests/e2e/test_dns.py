"""Names resolved inside the loop (RFC 3263), end to end: serlite with a DNS server the test
runs itself (dnsmasq on loopback, tests/e2e/dnsmasq.py) and a resolv.conf and hosts file of
the test's own (the serlite-only globals dns_resolv_conf, dns_hosts_file, dns_port).

* a call to ``sip:bob@provider.test`` goes to the ``_sip._udp`` SRV targets in priority
  order; the second target gets it when the first is silent (fr_timer) or answers 503
  (RFC 3263 4.3);
* a name server that never answers stalls nobody: other phones' requests are answered at
  once meanwhile, and the request to the name gets its final answer within 10 s;
* a name that does not exist: 478 at once;
* uac registers at a provider found by SRV (Kamailio, tests/e2e/provider.py).
"""

import re
import socket
import subprocess
import sys
import time

import pytest

from . import sipnet
from .dnsmasq import Dnsmasq, SilentServer
from .provider import Provider
from .sipnet import UdpPeer, is_final, make_request, status_of

LOCAL = "127.0.0.1"


def config(dns, hosts, *, fr_timer=1000, extra="", first=""):
    """Calls to bob go to provider.test, to unres to nowhere.test; OPTIONS and REGISTER
    are answered at once (the probes)."""
    return f"""\
debug=3
dns_resolv_conf="{dns.resolv_conf}"
dns_hosts_file="{hosts}"
dns_port={dns.port}
loadmodule "sl.so"
loadmodule "tm.so"
modparam("tm", "fr_timer", {fr_timer})
{extra}

route {{
{first}
    if (method == "OPTIONS" || method == "REGISTER") {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (method == "ACK" || method == "BYE") {{
        t_relay();
        exit;
    }}
    if (uri =~ "^sip:unres") {{
        rewriteuri("sip:unres@nowhere.test");
    }} else {{
        rewriteuri("sip:bob@provider.test");
    }}
    t_relay();
}}
"""


def provider_dns(tmp_path, *targets):
    """dnsmasq answering for *.test, with the SRV records of ``srv_records``."""
    return Dnsmasq(tmp_path, srv_records(*targets), domain="test")


def srv_records(*targets):
    """dnsmasq options: _sip._udp.provider.test SRV records to (name, port, priority),
    each name an A record of 127.0.0.1."""
    out = []
    for name, port, priority in targets:
        out += [f"--srv-host=_sip._udp.provider.test,{name},{port},{priority},0",
                f"--host-record={name},{LOCAL}"]
    return out


@pytest.fixture
def hosts(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n")
    return path


def test_srv_targets_in_priority_order(ser, tmp_path, hosts, tools):
    first = sipnet.start_uas(workdir=tmp_path, name="first")
    second = sipnet.start_uas(workdir=tmp_path, name="second")
    # listed second-priority first: the order is the records', not the answer's
    with first, second, provider_dns(tmp_path, ("b.provider.test", second.port, 20),
                                     ("a.provider.test", first.port, 10)) as dns:
        server = ser(config(dns, hosts))
        call = sipnet.run_uac(server.addr, workdir=tmp_path, service="bob")
        call.assert_ok(1)
        res = first.wait()
        assert res.ok(1), res.describe()
        other = second.kill()
    assert other.received("INVITE") == 0, other.describe()
    assert "_sip._udp.provider.test" in dns.log()


def test_failover_to_the_second_target_when_the_first_is_silent(ser, tmp_path, hosts, tools):
    second = sipnet.start_uas(workdir=tmp_path, name="second")
    with SilentServer(LOCAL) as silent, second, \
            provider_dns(tmp_path, ("a.provider.test", silent.port, 10),
                         ("b.provider.test", second.port, 20)) as dns:
        server = ser(config(dns, hosts, fr_timer=1000))
        started = time.monotonic()
        call = sipnet.run_uac(server.addr, workdir=tmp_path, service="bob")
        took = time.monotonic() - started
        call.assert_ok(1)
        res = second.wait()
        assert res.ok(1), res.describe()
        # the silent target got the INVITE first (it is still queued on its socket)
        silent_got = silent.sock.recv(65535, socket.MSG_DONTWAIT)
    print(f"call answered by the second target after {took:.2f} s (fr_timer 1 s)")
    assert took < 6
    assert silent_got.startswith(b"INVITE sip:bob@provider.test ")


def test_failover_to_the_second_target_on_503(ser, tmp_path, hosts, tools):
    first = sipnet.start_uas(workdir=tmp_path, name="first", scenario="uas_503.xml")
    second = sipnet.start_uas(workdir=tmp_path, name="second")
    with first, second, provider_dns(tmp_path, ("a.provider.test", first.port, 10),
                                     ("b.provider.test", second.port, 20)) as dns:
        server = ser(config(dns, hosts))
        call = sipnet.run_uac(server.addr, workdir=tmp_path, service="bob", trace_msg=True,
                              name="caller")
        call.assert_ok(1)           # the caller never saw the 503: its call was answered
        assert first.wait().ok(1)   # 503 sent, ACKed by serlite
        assert second.wait().ok(1)
    caller = (tmp_path / "caller.messages.log").read_text(errors="replace")
    assert "SIP/2.0 503" not in caller and "SIP/2.0 500" not in caller
    stats = subprocess.run([sys.executable, "-m", "serlite.ctl", "-s", server.ctl_sock,
                            "stats"], capture_output=True, text=True, timeout=10,
                           cwd=sipnet.REPO).stdout
    assert re.search(r"dns_failover\s+1\b", stats), stats
    assert re.search(r"dns_queries\s+[1-9]", stats), stats


def _probe(server, peer, n):
    """An OPTIONS and a REGISTER from ``peer``: the time each took to be answered."""
    times = []
    for method in ("OPTIONS", "REGISTER"):
        uri = f"sip:probe{n}@{LOCAL}:{server.port}"
        req = make_request(method, uri, via=(peer.host, peer.port), to=uri)
        sent = time.monotonic()
        peer.send(req, server.addr)
        got = peer.recv_until(is_final, 2.0)
        assert got and status_of(got[-1]) == 200, got
        times.append(time.monotonic() - sent)
    return times


def test_a_silent_name_server_stalls_nobody(ser, tmp_path, hosts, tools):
    with SilentServer(LOCAL) as silent:
        resolv = tmp_path / "resolv.conf"
        resolv.write_text(f"nameserver {LOCAL}\n")

        class Conf:
            resolv_conf, port = resolv, silent.port
        server = ser(config(Conf, hosts))
        with UdpPeer() as caller, UdpPeer() as phone:
            uri = f"sip:bob@{LOCAL}:{server.port}"
            invite = make_request("INVITE", uri, via=(caller.host, caller.port), to=uri)
            started = time.monotonic()
            caller.send(invite, server.addr)
            assert status_of(caller.recv_until(lambda m: status_of(m) == 100, 2)[-1]) == 100
            probes = []
            final = []
            for n in range(60):                         # at most 60 rounds (~12 s)
                probes += _probe(server, phone, n)
                final = [m for m in caller.drain() if is_final(m)]
                if final or time.monotonic() - started > 12:
                    break
                time.sleep(0.1)     # a phone's pace, not a synchronisation
            took = time.monotonic() - started
    worst = max(probes)
    line = final[0].split(b"\r\n")[0].decode() if final else None
    print(f"{len(probes)} probes while the name server was silent: worst {worst * 1000:.1f} "
          f"ms, median {sorted(probes)[len(probes) // 2] * 1000:.1f} ms; the INVITE's final "
          f"answer after {took:.2f} s: {line}")
    assert final and status_of(final[0]) == 503, final
    assert took < 10
    assert worst < 0.25
    assert len(probes) >= 10        # the probes ran while the lookup was waiting


def test_a_name_that_does_not_exist_is_answered_478(ser, tmp_path, hosts, tools):
    with provider_dns(tmp_path, ("a.provider.test", 5060, 10)) as dns:
        server = ser(config(dns, hosts))
        with UdpPeer() as caller:
            uri = f"sip:unres@{LOCAL}:{server.port}"
            invite = make_request("INVITE", uri, via=(caller.host, caller.port), to=uri)
            started = time.monotonic()
            caller.send(invite, server.addr)
            got = caller.recv_until(is_final, 10)
            took = time.monotonic() - started
    assert got and status_of(got[-1]) == 478, got
    print(f"478 after {took * 1000:.0f} ms")
    assert took < 10


def test_uac_registers_at_a_provider_found_by_srv(ser, tmp_path, hosts, tools):
    kam = Provider(tmp_path / "provider", LOCAL, domain="provider.test",
                   accounts={"house": "secret"})
    kam.start()
    try:
        db = tmp_path / "db"
        db.mkdir()
        (db / "version").write_text("table_name(str) table_version(int)\nuacreg:5\n")
        (db / "uacreg").write_text(
            "id(int,auto) l_uuid(string) l_username(string) l_domain(string) "
            "r_username(string) r_domain(string) realm(string) auth_username(string) "
            "auth_password(string,null) auth_ha1(string,null) auth_proxy(string) "
            "expires(int) flags(int) reg_delay(int) contact_addr(string,null) "
            "socket(string,null)\n"
            "1:house1:100:home.lan:house:provider.test:provider.test:house:secret:::"
            "60:0:0::\n")
        with provider_dns(tmp_path, ("sip.provider.test", kam.port, 10)) as dns:
            server = ser(config(dns, hosts, extra=f"""\
loadmodule "uac.so"
modparam("uac", "reg_db_url", "dbtext://{db}")
modparam("uac", "reg_timer_interval", 5)""", first="""\
    if (method == "MESSAGE") {
        if (uac_reg_from_provider()) { sl_send_reply("200", "From the provider"); }
        else { sl_send_reply("403", "Not the provider"); }
        exit;
    }"""))
            sipnet.wait_log(server, r"uac: house@provider.test registered", timeout=10)
            assert kam.contacts("house") == [f"sip:house1@{LOCAL}:{server.port}"]
            assert "_sip._udp.provider.test" in dns.log()
            # the provider is known by the address its name resolved to (no list of them)
            for host, status in ((LOCAL, 200), ("127.0.0.2", 403)):
                with UdpPeer(host=host) as peer:
                    uri = f"sip:house1@{LOCAL}:{server.port}"
                    peer.send(make_request("MESSAGE", uri, via=(peer.host, peer.port),
                                           to=uri), server.addr)
                    got = peer.recv_until(is_final, 3)
                    assert got and status_of(got[-1]) == status, (host, got)
    finally:
        kam.stop()
