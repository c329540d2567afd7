"""Calls you can hear over IPv6 (issue 14): the namespaces of tests/e2e/test_audio.py with
IPv6 beside IPv4 (``Net(phones=True, ipv6=True)``: the LAN 2001:db8:77::/64 on br-lan, the
WAN 2001:db8:2::/64, no NAT66), the router's firewall forwarding from the WAN only what answers
the LAN (as OpenWrt's firewall4 does for IPv6), and serlite on the UCI-generated config given
the interfaces' IPv6 addresses too (``-a lan=2001:db8:77::1/64``, as the init script passes
what netifd reports).

Without a NAT the LAN phone's SDP names an address the WAN phone can route to; the firewall,
though, forwards from the WAN only what answers something the LAN sent (conntrack): the WAN
phone's media reaches the LAN phone only after that phone sent to that very address and port,
from the port it receives on; not from a phone that sends from another port, nor when the WAN
phone speaks first.  With option relay 'auto' the generated config relays every call whose
callee is not named by an IPv4 address of the LAN (route[relay_needed]), IPv6 ones included:
these calls go through the relay, each leg on its side's address, whatever the phones do.
A phone on IPv4 calling a phone on IPv6 only is relayed the same way, the relay bridging the
families: the caller's leg on the router's IPv4 LAN address, the callee's on its IPv6 WAN
address (the SDP's o= line follows the family: serlite.media.sdp.relay_body)."""

import ipaddress
import os
import shutil

import pytest

from . import netns
from .netns import ROUTER_LAN6, ROUTER_WAN6
from .test_attack import USER, RouterServer, generate
from .test_audio import PASSWORDS, assert_hear_each_other, call, phones  # noqa: F401


@pytest.fixture(scope="module")
def net():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"):
        pytest.fail("the audio tests need root, ip and nft: run tests/run as root (CI does)")
    if shutil.which("baresip") is None:
        pytest.fail("baresip is not installed: run tests/run, which installs it")
    n = netns.Net(pool_size=0, phones=True, ipv6=True)
    yield n
    n.close()


@pytest.fixture(scope="module")
def router(net, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("router6")
    users = "".join(f"\nconfig user\n\toption name '{u}'\n\toption password '{p}'\n"
                    for u, p in PASSWORDS.items() if u != USER)
    config = generate(workdir, users, addresses=(f"lan={ROUTER_LAN6}/64",
                                                 f"wan={ROUTER_WAN6}/64"))
    assert f"listen=[{ROUTER_LAN6}]" in config and f"listen=[{ROUTER_WAN6}]" in config, config
    server = RouterServer(net, workdir, config)
    server.start()
    yield server
    alive = server.running()
    server.stop()
    if not alive:
        pytest.fail("serlite exited during the audio tests:\n" + server.tail(), pytrace=False)


def relay_sockets(sockets, listeners):
    """The relay's sockets among ``sockets`` (netns.udp_sockets' text; IPv6 as 32 hex digits
    in brackets), the listeners left out: (address, port) pairs."""
    out = []
    for text in sorted(set(sockets) - set(listeners)):
        ip, _, port = text.rpartition(":")
        if ip.startswith("["):
            ip = ipaddress.IPv6Address(int(ip[1:-1], 16))
        out.append((str(ipaddress.ip_address(ip)), int(port)))
    return out


def test_an_ipv6_call_between_two_phones_of_the_house_keeps_its_direct_media(phones, router):
    """Two LAN phones over IPv6: route[relay_needed] knows the LAN's /64, so the router opens
    no socket for the call (issue 14: LAN-to-LAN calls keep direct media), and they hear
    each other."""
    listeners = netns.udp_sockets(router.pid)
    caller, callee = phones("lan6", "lan2_6")
    during = []
    call(caller, callee, during=lambda: during.extend(netns.udp_sockets(router.pid)))
    assert during == listeners
    assert_hear_each_other(caller, callee)


@pytest.mark.parametrize("caller,callee", [("lan6", "wan6"), ("wan6", "lan6")])
def test_an_ipv6_call_through_the_firewall_is_heard_both_ways(net, phones, router, caller,
                                                              callee):
    """LAN(v6) <-> WAN(v6): relayed (every relay socket an IPv6 one: the LAN leg on
    2001:db8:77::1, the WAN leg on 2001:db8:2::1), heard both ways, sockets closed after."""
    listeners = netns.udp_sockets(router.pid)
    by_place = dict(zip((caller, callee), phones(caller, callee)))
    during = []
    call(by_place[caller], by_place[callee],
         during=lambda: during.extend(netns.udp_sockets(router.pid)))
    legs = relay_sockets(during, listeners)
    assert {ip for ip, _ in legs} == {ROUTER_WAN6, ROUTER_LAN6}, legs
    assert len(legs) == 4, legs
    assert_hear_each_other(by_place[caller], by_place[callee])
    assert netns.udp_sockets(router.pid) == listeners


def test_an_ipv4_phone_calls_an_ipv6_only_phone_through_the_relay(net, phones, router):
    """The LAN phone on IPv4 calls the WAN phone on IPv6 only: the relay bridges the
    families, its leg facing the caller on 192.168.77.1, the callee's on 2001:db8:2::1."""
    listeners = netns.udp_sockets(router.pid)
    caller, callee = phones("lan", "wan6")
    during = []
    call(caller, callee, during=lambda: during.extend(netns.udp_sockets(router.pid)))
    legs = relay_sockets(during, listeners)
    assert {ip for ip, _ in legs} == {ROUTER_WAN6, netns.ROUTER_LAN}, legs
    assert len(legs) == 4, legs
    assert_hear_each_other(caller, callee)
    assert netns.udp_sockets(router.pid) == listeners
