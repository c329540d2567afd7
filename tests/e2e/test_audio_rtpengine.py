"""Calls you can hear with an external relay (issue 14): test_audio.py's topology and phones,
with a real rtpengine (tests/e2e/rtpengine.py) running in the router's namespace and serlite's
config naming it (``rtpproxy_sock``) instead of relaying by itself.

rtpengine has two interfaces, ``internal/192.168.77.1`` (the LAN) and ``external/192.0.2.1``
(the WAN); the script's flags say which way each SDP goes (Kamailio's ``i``/``e``, the
rtpproxy protocol's ``I``/``E``): from the LAN to outside ``ie``, the other way ``ei``,
between two phones outside ``ee``.  The config is the UCI-generated one with ``option
relay_sock`` (and relay 'auto'), which flags its ``rtpproxy_manage()`` calls so.  LAN<->WAN,
the house to the phone behind the second home's NAT, and that phone to the WAN phone: each
phone hears the other's tone for most of the call; after BYE rtpengine holds no session and
no socket but its own.  Needs root, ip, nft, baresip and rtpengine."""

import re
import shutil

import pytest

from . import netns
from .netns import ROUTER_LAN, ROUTER_WAN
from .rtpengine import RtpEngine
from .test_attack import RouterServer, generate
from .test_audio import PASSWORDS, USER, assert_hear_each_other, call
from .test_audio import net, phones  # noqa: F401  (fixtures: the namespaces, the phones)

RTP_LOW, RTP_HIGH = 30000, 30099


@pytest.fixture(scope="module")
def rtpengine(net, tmp_path_factory):  # noqa: F811
    if shutil.which("rtpengine") is None:
        pytest.fail("rtpengine is not installed: run tests/run, which installs "
                    "rtpengine-daemon")
    engine = RtpEngine(tmp_path_factory.mktemp("rtpengine"), internal=ROUTER_LAN,
                       external=ROUTER_WAN, port_min=RTP_LOW, port_max=RTP_HIGH,
                       prefix=net.exec_args(net.router),
                       inside=lambda: net.inside(net.router)).start()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def router(net, rtpengine, tmp_path_factory):  # noqa: F811
    workdir = tmp_path_factory.mktemp("router")
    users = "".join(f"\nconfig user\n\toption name '{u}'\n\toption password '{p}'\n"
                    for u, p in PASSWORDS.items() if u != USER)
    config = generate(workdir, f"\toption relay_sock '{rtpengine.sock}'\n" + users)
    assert f'"rtpproxy_sock", "{rtpengine.sock}"' in config, config
    server = RouterServer(net, workdir, config)
    server.start()
    yield server
    alive = server.running()
    server.stop()
    if not alive:
        pytest.fail("serlite exited during the audio tests:\n" + server.tail(), pytrace=False)


@pytest.mark.parametrize("caller,callee", [("lan", "wan"), ("wan", "lan"), ("lan", "home2"),
                                           ("home2", "wan")])
def test_a_call_through_rtpengine_is_heard_both_ways(phones, router, rtpengine,  # noqa: F811
                                                     caller, callee):
    engine_sockets = netns.udp_sockets(rtpengine.proc.pid)
    by_place = dict(zip((caller, callee), phones(caller, callee)))
    during = {}

    def look():
        during["sessions"] = rtpengine.sessions()
        during["sockets"] = netns.udp_sockets(rtpengine.proc.pid)
        during["serlite"] = netns.udp_sockets(router.pid)
    call(by_place[caller], by_place[callee], during=look)
    assert_hear_each_other(by_place[caller], by_place[callee])
    # the call's media went through rtpengine, on the address facing each phone (both on the
    # WAN for a call between two phones outside: "ee"); serlite opened no media socket
    assert during["sessions"] == 1, during
    media = set(during["sockets"]) - set(engine_sockets)
    facing = {ROUTER_LAN if "lan" in (caller, callee) else ROUTER_WAN, ROUTER_WAN}
    assert {re.sub(r":\d+$", "", s) for s in media} == facing, during
    assert all(RTP_LOW <= int(s.rsplit(":", 1)[1]) <= RTP_HIGH for s in media), during
    own = [s for s in during["serlite"] if not s.startswith("127.0.0.1:")]   # but its control
    assert own == sorted([f"{ROUTER_LAN}:5060", f"{ROUTER_WAN}:5060"]), during
    assert router.ctl("stats")["counters"]["rtpp_unrelayed"] == 0
    # after BYE: no session, no socket but its own
    assert rtpengine.sessions() == 0
    assert netns.udp_sockets(rtpengine.proc.pid) == engine_sockets
