"""The harness checked without serlite: the sipp scenarios against each other, the helpers.

The call scenarios run UAC straight to UAS here, so when they fail through serlite the
fault is serlite's. register.xml, query.xml and unregister.xml need a registrar: they are
only loaded here, and run for real in test_calls, test_sipsak and test_persistence.
"""

import time

import pytest

from . import sipnet
from .sipnet import FAMILIES, V4

TRANSPORTS = ["udp", "tcp"]


@pytest.fixture(autouse=True)
def _tools(tools):
    pass


@pytest.mark.parametrize("scenario", sorted(p.name for p in sipnet.SCENARIOS.glob("*.xml")))
def test_sipp_loads_scenario(scenario, tmp_path):
    # -m 0: sipp parses the scenario (an XML or keyword error is fatal) and exits at once.
    inf = sipnet.users_csv(tmp_path / "users.csv", [("bob", "sip:bob@127.0.0.1:5070", "udp", 60)])
    result = sipnet.run_sipp(["-sf", sipnet.SCENARIOS / scenario, "-inf", inf, "-m", 0,
                              "-i", "127.0.0.1", "-p", sipnet.free_port("udp"),
                              "127.0.0.1:9"], workdir=tmp_path, timeout=5)
    assert result.returncode == 0, result.describe()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_call_scenarios_uac_to_uas(tmp_path, transport, family):
    calls = 100
    uas = sipnet.start_uas(workdir=tmp_path, transport=transport, family=family, calls=calls)
    uac = sipnet.run_uac((uas.host, uas.port), workdir=tmp_path, transport=transport,
                         calls=calls, rate=200)
    uas_result = uas.wait()
    uac.assert_ok(calls)
    uas_result.assert_ok(calls)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_404_scenario_against_rejecting_uas(tmp_path, transport, family):
    calls = 10
    uas = sipnet.start_uas(workdir=tmp_path, transport=transport, family=family, calls=calls,
                           scenario="uas_reject.xml")
    uac = sipnet.run_uac((uas.host, uas.port), workdir=tmp_path, transport=transport,
                         service="nobody", calls=calls, rate=100, scenario="uac_invite_404.xml")
    uas_result = uas.wait()
    uac.assert_ok(calls)
    uas_result.assert_ok(calls)


def test_retransmission_scenario_is_seen_as_retransmission(tmp_path):
    # Straight to the UAS, the copy is not absorbed: the UAS sees every INVITE twice and
    # takes the copy for a retransmission (an unexpected message would fail its call).
    # Through serlite, test_calls expects one INVITE per call.
    calls = 3
    uas = sipnet.start_uas(workdir=tmp_path, calls=calls, delay_ms=300, trace_msg=True)
    uac = sipnet.run_uac((uas.host, uas.port), workdir=tmp_path, calls=calls, rate=20,
                         scenario="uac_retrans.xml", extra=["-nr"])
    uas_result = uas.wait()
    uac.assert_ok(calls)
    uas_result.assert_ok(calls)
    assert uas_result.received("INVITE") == 2 * calls


def test_uac_call_fails_without_peer(tmp_path):
    # The checks can fail: a UAC with nobody at the far end reports its call failed.
    port = sipnet.free_port("udp")
    uac = sipnet.run_uac(("127.0.0.1", port), workdir=tmp_path, calls=1, timeout=2)
    assert uac.returncode != 0 and not uac.ok(1)


def test_free_port_pair_is_free_for_udp_and_tcp():
    port = sipnet.free_port_pair(V4)
    assert sipnet._free_for_both(port, V4)
    low = sipnet.free_port_pair(V4, below=10000)
    assert 2000 <= low < 10000


def test_send_udp_silence_is_bounded():
    nobody = ("127.0.0.1", sipnet.free_port("udp"))
    started = time.monotonic()
    assert sipnet.send_udp(b"OPTIONS sip:x SIP/2.0\r\n\r\n", nobody, timeout=0.3) == []
    assert 0.3 <= time.monotonic() - started < 2


def test_udp_peer_returns_on_the_awaited_reply():
    with sipnet.UdpPeer() as a, sipnet.UdpPeer() as b:
        a.send(b"SIP/2.0 100 Trying\r\n\r\n", (b.host, b.port))
        a.send(b"SIP/2.0 200 OK\r\nContact: <sip:u@h:1>;expires=5, sip:v@h:2;q=1\r\n\r\n",
               (b.host, b.port))
        got = b.recv_until(sipnet.is_final, timeout=5)
    assert [sipnet.status_of(m) for m in got] == [100, 200]
    assert sipnet.contacts_of(got[-1]) == ["sip:u@h:1", "sip:v@h:2"]

