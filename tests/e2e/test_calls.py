"""Calls through serlite running the SER seed config, with sipp at both ends.

bob is a sipp UAS that registers first (a short sipp register.xml run whose Contact is the
UAS's port), then a sipp UAC calls sip:bob@serlite. The seed config record-routes, so ACK
and BYE also go through serlite.
"""

import pytest

from . import sipnet
from .sipnet import FAMILIES, V4

SEED = sipnet.SEED_CFG.read_text()
TRANSPORTS = ["udp", "tcp"]


def call_bob(ser_server, workdir, *, transport="udp", family=V4, calls=100, rate=50):
    target = ser_server.address(family)
    with sipnet.start_uas(workdir=workdir, transport=transport, family=family,
                          calls=calls) as uas:
        sipnet.register(target, "bob", uas.host, uas.port, transport, 3600,
                        workdir=workdir).assert_ok(1)
        uac = sipnet.run_uac(target, workdir=workdir, service="bob", transport=transport,
                             calls=calls, rate=rate)
        uas_result = uas.wait(timeout=grace(uac, calls))
    uac.assert_ok(calls)
    uas_result.assert_ok(calls)


def grace(uac, calls):
    # The UAS ends by itself after its last BYE. If calls were lost it would wait for its
    # -timeout; once the UAC has failed, it gets a few seconds only.
    return None if uac.ok(calls) else 5


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_100_calls(ser, tmp_path, transport, family):
    server = ser(SEED, ipv6=family != V4)
    call_bob(server, tmp_path, transport=transport, family=family)


def test_calls_on_python3_light(ser, tmp_path):
    # The router has only python3-light: the same calls with the modules it lacks refused.
    server = ser(SEED, python=sipnet.PYTHON3_LIGHT)
    call_bob(server, tmp_path, calls=20)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_user_gets_404(ser, tmp_path, transport):
    server = ser(SEED)
    uac = sipnet.run_uac(server.addr, workdir=tmp_path, service="nobody", transport=transport,
                         calls=10, rate=50, scenario="uac_invite_404.xml")
    uac.assert_ok(10)


def test_retransmitted_invite_reaches_uas_once(ser, tmp_path):
    # uac_retrans.xml sends each INVITE twice (same branch, same bytes); the UAS waits 300 ms
    # before its 180, so the copy meets serlite's transaction in Proceeding. serlite must
    # absorb it: the UAS gets one INVITE per call. (test_harness shows that the UAS does
    # count both when nothing absorbs the copy.)
    server = ser(SEED)
    calls = 5
    with sipnet.start_uas(workdir=tmp_path, calls=calls, delay_ms=300, trace_msg=True) as uas:
        sipnet.register(server.addr, "bob", uas.host, uas.port, workdir=tmp_path).assert_ok(1)
        uac = sipnet.run_uac(server.addr, workdir=tmp_path, service="bob", calls=calls,
                             rate=10, scenario="uac_retrans.xml", extra=["-nr"])
        uas_result = uas.wait(timeout=grace(uac, calls))
    uac.assert_ok(calls)
    uas_result.assert_ok(calls)
    assert uas_result.received("INVITE") == calls, uas_result.describe()
