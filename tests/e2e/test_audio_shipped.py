"""Calls you can hear with the shipped files/etc/ser/ser.cfg (issue 14): its route[relay_needed]
relays a call between the house (private addresses) and the outside through the built-in
relay, and keeps a call between two phones of the house direct.  The same namespaces, phones
and checks as tests/e2e/test_audio.py; the router runs the shipped config (every address of
the router namespace, the accounts written by serlite.uci) instead of the generated one."""

import pytest

from . import netns
from .test_attack import USER, RouterServer, generate
from .test_audio import PASSWORDS, assert_hear_each_other, call, net, phones  # noqa: F401
from .test_shipped_config import shipped_config


@pytest.fixture(scope="module")
def router(net, tmp_path_factory):      # noqa: F811 (test_audio's phones use this one)
    workdir = tmp_path_factory.mktemp("shipped")
    users = "".join(f"\nconfig user\n\toption name '{u}'\n\toption password '{p}'\n"
                    for u, p in PASSWORDS.items() if u != USER)
    generate(workdir, users)            # the accounts: workdir/run/db/subscriber
    server = RouterServer(net, workdir, shipped_config(workdir))
    server.start()
    yield server
    alive = server.running()
    server.stop()
    if not alive:
        pytest.fail("serlite exited during the audio tests:\n" + server.tail(), pytrace=False)


def test_shipped_config_keeps_a_house_call_direct(phones, router):
    """Two phones of the house: direct media, the router opens no socket for the call."""
    listeners = netns.udp_sockets(router.pid)
    caller, callee = phones("lan", "lan2")
    during = []
    call(caller, callee, during=lambda: during.extend(netns.udp_sockets(router.pid)))
    assert during == listeners
    assert_hear_each_other(caller, callee)


@pytest.mark.parametrize("caller,callee", [("lan", "wan"), ("home2", "lan")])
def test_shipped_config_relays_a_call_with_the_outside(phones, router, caller, callee):
    """A call between the house and the outside is heard both ways, through the relay (the
    router holds more sockets during the call than before it)."""
    listeners = netns.udp_sockets(router.pid)
    by_place = dict(zip((caller, callee), phones(caller, callee)))
    during = []
    call(by_place[caller], by_place[callee],
         during=lambda: during.extend(netns.udp_sockets(router.pid)))
    assert len(during) > len(listeners), during
    assert_hear_each_other(by_place[caller], by_place[callee])
    assert netns.udp_sockets(router.pid) == listeners      # BYE closed the relay's sockets
