"""serlite.dns_client: the resolver inside the real loop against a DNS server the test runs
(dnsmasq), a name server that never answers, and a tiny server that truncates over UDP."""

import os
import socket
import time

import pytest

from serlite.dns import message as m
from serlite.dns.cache import FAILED, NODATA, NXDOMAIN
from serlite.dns_client import DnsClient
from serlite.loop import Loop

from .e2e.dnsmasq import Dnsmasq, SilentServer

D = "example.test"
RECORDS = [
    f"--naptr-record={D},10,50,s,SIP+D2U,,_sip._udp.{D}",
    f"--naptr-record={D},20,50,s,SIP+D2T,,_sip._tcp.{D}",
    f"--srv-host=_sip._udp.{D},second.{D},5070,20,0",
    f"--srv-host=_sip._udp.{D},first.{D},5080,10,0",
    f"--srv-host=_sip._tcp.{D},first.{D},5090,10,0",
    f"--host-record=first.{D},127.0.0.11",
    f"--host-record=second.{D},127.0.0.12,::12",
    f"--host-record=plain.{D},127.0.0.13",
]


class Run:
    """A loop with a DnsClient; ``wait`` runs it until the callbacks came (bounded), with a
    50 ms ticker whose largest gap says whether anything blocked the loop."""

    def __init__(self, tmp_path, resolv_conf, port, **kw):
        self.loop = Loop()
        hosts = tmp_path / "hosts"
        if not hosts.exists():
            hosts.write_text("127.0.0.1 localhost\n")
        self.client = DnsClient(self.loop, str(resolv_conf), str(hosts), port=port, **kw)
        self.results = []
        self.gaps = []

    def resolve(self, target):
        """The list its answer will be in (answers come in the order they complete)."""
        box = []

        def done(located):
            box.append(located)
            self.results.append(located)
        self.client.resolve(target, done)
        return box

    def wait(self, count=1, limit=10.0):
        start = time.monotonic()
        last = [start]

        def tick():
            now = time.monotonic()
            self.gaps.append(now - last[0])
            last[0] = now
            if len(self.results) >= count or now - start > limit:
                self.loop.stop()
            else:
                self.loop.call_later(0.05, tick)
        self.loop.call_later(0.05, tick)
        self.loop.run()
        assert len(self.results) >= count, f"no answer within {limit} s"
        return time.monotonic() - start

    def close(self):
        self.client.close()
        self.loop.close()


@pytest.fixture
def dnsmasq(tmp_path):
    with Dnsmasq(tmp_path, RECORDS) as dns:
        yield dns


def test_naptr_srv_priority_order_and_addresses(tmp_path, dnsmasq):
    run = Run(tmp_path, dnsmasq.resolv_conf, dnsmasq.port)
    alice = run.resolve(f"sip:alice@{D}")
    bob = run.resolve(f"sip:bob@{D};transport=tcp")
    carol = run.resolve(f"sip:carol@plain.{D}:5099")
    run.wait(3)
    assert alice[0].targets == [("udp", "127.0.0.11", 5080), ("udp", "127.0.0.12", 5070),
                                ("udp", "::12", 5070)], dnsmasq.log()
    assert bob[0].targets == [("tcp", "127.0.0.11", 5090)]
    assert carol[0].targets == [("udp", "127.0.0.13", 5099)]
    assert run.client.sockets() == 1                  # the UDP socket only
    # known now: the same answer from the cache, nothing sent
    before = run.client.resolver.counters["queries"]
    first = run.client.cached(f"sip:alice@{D}")
    assert first[0] == ("udp", "127.0.0.11", 5080)
    first.pop()                                       # the caller's copy: the memo unhurt
    assert run.client.cached(f"sip:alice@{D}") == alice[0].targets
    assert run.client.cached(f"sip:nobody@unknown.{D}") is None
    assert run.client.resolver.counters["queries"] == before
    run.close()


def test_unknown_name_is_an_error_at_once(tmp_path, dnsmasq):
    run = Run(tmp_path, dnsmasq.resolv_conf, dnsmasq.port)
    run.resolve(f"sip:x@nowhere.{D}")
    took = run.wait()
    (res,) = run.results
    assert res.targets == [] and res.error.kind == NXDOMAIN and took < 2
    run.close()


def test_callbacks_run_from_the_loop_even_when_known_at_once(tmp_path, dnsmasq):
    run = Run(tmp_path, dnsmasq.resolv_conf, dnsmasq.port)
    run.resolve("sip:192.0.2.1:5070;transport=tcp")
    assert run.results == []                          # not inside resolve()
    run.wait()
    assert run.results[0].targets == [("tcp", "192.0.2.1", 5070)]
    assert run.client.cached("192.0.2.1") == [("udp", "192.0.2.1", 5060)]
    run.close()


def test_first_server_silent_the_second_answers_after_one_timeout(tmp_path, dnsmasq):
    with SilentServer("127.0.0.2", dnsmasq.port) as silent:
        conf = tmp_path / "resolv.conf"
        conf.write_text(f"nameserver {silent.address}\nnameserver 127.0.0.1\n"
                        "options timeout:1 attempts:2\n")
        run = Run(tmp_path, conf, dnsmasq.port)
        run.resolve(f"plain.{D}")
        took = run.wait()
        assert run.results[0].targets == [("udp", "127.0.0.13", 5060)]
        assert 0.9 < took < 2.5
        assert max(run.gaps) < 0.25
        run.close()


def test_a_server_that_never_answers_fails_within_the_deadline_loop_free(tmp_path):
    with SilentServer("127.0.0.2") as silent:
        conf = tmp_path / "resolv.conf"
        conf.write_text(f"nameserver {silent.address}\noptions timeout:5 attempts:2\n")
        run = Run(tmp_path, conf, silent.port, deadline=2.0)
        dead = run.resolve("sip:provider.invalid-but-silent.test")
        other = run.resolve("sip:192.0.2.1")          # others are served meanwhile
        took = run.wait(2)
        assert other[0].targets == [("udp", "192.0.2.1", 5060)]
        assert run.results[0] is other[0]
        res = dead[0]
        assert res.targets == [] and res.error.kind == FAILED
        assert "no answer from 127.0.0.2" in res.error.reason
        assert 1.9 < took < 3.0
        assert max(run.gaps) < 0.25                   # the loop was never blocked
        assert not run.client.resolver.lookups and run.client.sockets() == 1
        run.close()


def test_truncated_answer_is_fetched_over_tcp(tmp_path):
    many = [f"--srv-host=_sip._udp.{D},host-with-a-long-name-{i:02d}.{D},{5000 + i},10,10"
            for i in range(30)]
    many += [f"--host-record=host-with-a-long-name-{i:02d}.{D},127.0.1.{i}" for i in range(30)]
    with Dnsmasq(tmp_path, many) as dns:
        run = Run(tmp_path, dns.resolv_conf, dns.port, families=(m.A,))
        run.resolve(f"sip:{D};transport=udp")
        run.wait(limit=10)
        res = run.results[0]
        assert len(res.targets) == 16, (res, dns.log())     # MAX_TARGETS of 30
        assert run.client.resolver.counters["tcp"] == 1
        assert run.client.sockets() == 1              # the TCP connection closed
        run.close()


def test_hosts_first_and_reread_when_it_changes(tmp_path, dnsmasq):
    hosts = tmp_path / "hosts"
    hosts.write_text(f"10.9.9.9 plain.{D}\n")
    run = Run(tmp_path, dnsmasq.resolv_conf, dnsmasq.port, check_files_every=0)
    run.resolve(f"sip:plain.{D}")
    run.wait()
    assert run.results[0].targets == [("udp", "10.9.9.9", 5060)]
    assert run.client.resolver.counters["queries"] == 0
    hosts.write_text(f"10.9.9.8 plain.{D}\n")
    os.utime(hosts, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
    run.resolve(f"sip:plain.{D}")
    run.wait(2)
    assert run.results[1].targets == [("udp", "10.9.9.8", 5060)]
    run.close()


def test_ipv6_name_server_and_the_udp_socket_renewed_between_bursts(tmp_path):
    with Dnsmasq(tmp_path, RECORDS, address="::1") as dns:
        run = Run(tmp_path, dns.resolv_conf, dns.port, families=(m.A,))
        ports = set()
        for i in range(3):
            boxes = [run.resolve(f"sip:u@n{i}-{j}.{D}:5060") for j in range(20)]
            run.wait(len(run.results) + 20)
            assert all(b and b[0].error.kind == NXDOMAIN for b in boxes), dns.log()
            ports.add(run.client._socks[socket.AF_INET6].getsockname()[1])
        assert len(ports) >= 2              # 20 queries a burst, a new port every 32
        run.close()


def test_a_callback_that_raises_is_logged_and_the_client_goes_on(tmp_path, dnsmasq):
    run = Run(tmp_path, dnsmasq.resolv_conf, dnsmasq.port)

    def bad(_located):
        raise RuntimeError("a waiter's bug")
    run.client.resolve(f"sip:first.{D}:5060", bad)
    good = run.resolve(f"sip:first.{D}:5060")
    run.wait()
    assert good[0].targets == [("udp", "127.0.0.11", 5060)]
    later = run.resolve(f"sip:second.{D}:5060")
    run.wait(2)
    assert later[0].targets[0] == ("udp", "127.0.0.12", 5060)
    assert run.client.resolver.next_deadline() is None and run.client._timer is None
    run.close()


def test_kamailio_core_parameters_map_to_the_client(tmp_path):
    from serlite.dns_client import options_from_globals
    kw = options_from_globals({"dns_retr_time": 1, "dns_retr_no": 3, "dns_servers_no": 1,
                               "dns_try_ipv6": 0, "dns_try_naptr": 0, "dns_srv_lb": 0,
                               "dns_cache_negative_ttl": 7, "dns_cache_max_ttl": 600})
    assert kw["families"] == (m.A,) and kw["naptr"] is False and kw["srv_lb"] is False
    assert kw["cache"].default_negative_ttl == 7 and kw["cache"].max_ttl == 600
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.2\nnameserver 127.0.0.3\noptions timeout:5\n")
    run = Run(tmp_path, conf, 53, **kw)
    c = run.client.resolver.conf
    assert c.nameservers == [("127.0.0.2", 53)] and c.timeout == 1.0 and c.attempts == 3
    assert options_from_globals({"use_dns_cache": 0})["cache"].max_entries == 0
    run.close()


class SlowServer:
    """A name server inside the test's own loop: every query answered NOERROR without records
    after ``delay`` s (a loop timer, no sleep)."""

    def __init__(self, loop, delay, address="127.0.0.3"):
        self.loop, self.delay = loop, delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.sock.setblocking(False)
        self.address, self.port = self.sock.getsockname()
        loop.add_reader(self.sock.fileno(), self._read)

    def _read(self):
        data, addr = self.sock.recvfrom(4096)
        query = m.decode(data)
        answer = m.encode_response(query.id, 0, query.questions)
        self.loop.call_later(self.delay, self.sock.sendto, answer, addr)

    def close(self):
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def test_a_selection_of_slow_steps_ends_by_the_locate_deadline(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.3\noptions timeout:2\n")
    run = Run(tmp_path, conf, 53, locate_deadline=1.5)
    slow = SlowServer(run.loop, 0.6)
    run.client.port = slow.port
    run.client._mtimes.clear()
    run.client._checked = None
    run.client._check_files(run.loop.time())
    # NAPTR, then SRV, then A/AAAA: 0.6 s each, 1.8 s in all: past the 1.5 s bound
    box = run.resolve(f"sip:slow.{D}")
    took = run.wait()
    assert box[0].targets == [] and box[0].error.kind == FAILED
    assert "not resolved within 1.5 s" in box[0].error.reason and 1.4 < took < 1.8
    late = run.resolve(f"sip:slow.{D}")         # the late answers were cached meanwhile
    run.wait(2, limit=3)
    assert late[0].error.kind == NODATA and "not resolved" not in late[0].error.reason
    assert max(run.gaps) < 0.25
    slow.close()
    run.close()


def test_a_dead_first_name_server_costs_one_timeout_per_selection(tmp_path, dnsmasq):
    with SilentServer("127.0.0.2", dnsmasq.port) as silent:
        conf = tmp_path / "resolv.conf"
        conf.write_text(f"nameserver {silent.address}\nnameserver 127.0.0.1\n"
                        "options timeout:1 attempts:2\n")
        run = Run(tmp_path, conf, dnsmasq.port)
        box = run.resolve(f"sip:alice@{D}")          # NAPTR, SRV, A and AAAA
        took = run.wait()
        assert box[0].targets[0] == ("udp", "127.0.0.11", 5080)
        assert 0.9 < took < 1.8                       # one timeout, not one per step
        run.close()
