"""The WAN and LAN cards say why no address is known, not a bare "unknown" (issue 13, item 6).

The kernel's side: the CGI runs as a process, as the web server runs it, inside a network
namespace this test makes (``unshare -n``, veth pairs from ``ip``), so the devices, addresses
and the default route are real and known.  ubus's side: dumps as OpenWrt's ubus prints them."""

import json
import shutil
import subprocess

import pytest

from serlite import webui
from serlite.control import page

from .conftest import CGI, HERE, cgi_env_base
from .pagetools import Page

NO_UBUS = "ubus is off (SER_WEBUI_UBUS), so the kernel was asked"


@pytest.fixture(scope="module")
def netns():
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("unshare (util-linux) and ip (iproute2) are needed")
    probe = subprocess.run(["unshare", "-n", "ip", "link", "add", "v0", "type", "veth",
                            "peer", "name", "v1"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        # the e2e tests (tests/e2e/netns.py) need namespaces too: a machine without them
        # fails those as well, so say why here rather than pass over it
        pytest.fail(f"cannot make a network namespace with a veth pair here: {probe.stderr}")


def page_in_netns(tmp_path, pybin, setup, **settings):
    """The CGI's GET page, run in a new network namespace after the shell commands ``setup``."""
    env = dict(cgi_env_base(pybin), REQUEST_METHOD="GET", SCRIPT_NAME="/cgi-bin/ser",
               HTTP_HOST="127.0.0.1", SER_WEBUI_CONF=str(tmp_path / "none.conf"),
               SER_UNIX_SOCK=str(tmp_path / "nobody.sock"), SER_WEBUI_UBUS="")
    env.update(settings)
    script = "set -e\n" + "\n".join(setup) + f'\nexec "{CGI}"\n'
    run = subprocess.run(["unshare", "-n", "sh", "-c", script], env=env, capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith(b"Status: 200 OK"), run.stderr
    return Page(run.stdout.partition(b"\r\n\r\n")[2].decode())


def card(p, ident):
    return [li.text for li in p.root.by_id(ident).find_all("li")]


VETH = ["ip link add v0 type veth peer name v1", "ip link set lo up", "ip link set v0 up",
        "ip link set v1 up"]
V0_ADDRESS = VETH + ["ip addr add 10.9.0.1/24 dev v0"]
DEFAULT_VIA_V0 = V0_ADDRESS + ["ip route add default via 10.9.0.2 dev v0"]


@pytest.mark.parametrize("setup, settings, wan, lan", [
    ([], {},
     "unknown: no device is named wan, wan6 (SER_WEBUI_WAN) and there is no default route",
     "unknown: there is no network device but loopback"),
    (VETH, {},
     "unknown: no device is named wan, wan6 (SER_WEBUI_WAN) and there is no default route",
     "unknown: v0, v1 have no address"),
    (DEFAULT_VIA_V0, {}, "10.9.0.1/24 v0", "unknown: v1 has no address"),
    (V0_ADDRESS, {}, "unknown: no device is named wan, wan6 (SER_WEBUI_WAN) and there is no "
                     "default route", "10.9.0.1/24 v0"),
    (V0_ADDRESS, {"SER_WEBUI_WAN": "v1"}, "unknown: v1 has no address", "10.9.0.1/24 v0"),
    (DEFAULT_VIA_V0, {"SER_WEBUI_LAN": "v0"},
     "unknown: the default route's device v0 is the LAN (SER_WEBUI_LAN)", "10.9.0.1/24 v0"),
], ids=["nothing", "no-address", "default-route", "no-default-route", "named-wan-down",
        "default-route-on-the-lan"])
def test_the_kernel_says_why(netns, tmp_path, pybin, setup, settings, wan, lan):
    p = page_in_netns(tmp_path, pybin, setup, **settings)
    got_wan, got_lan = card(p, "wan"), card(p, "lan")
    assert got_wan[0] == (f"{wan}; {NO_UBUS}" if wan.startswith("unknown") else wan), got_wan
    assert got_lan[0] == (f"{lan}; {NO_UBUS}" if lan.startswith("unknown") else lan), got_lan


def ubus_reasons(tmp_path, dump):
    tool = tmp_path / "ubus"
    (tmp_path / "dump.json").write_text(json.dumps(dump))
    tool.write_text(f"#!/bin/sh\nexec cat {tmp_path / 'dump.json'}\n")
    tool.chmod(0o755)
    found, why = webui.addresses_and_reasons(dict(webui.DEFAULTS, SER_WEBUI_UBUS=str(tool)))
    return {a.role for a in found}, why


def stock_dump():
    return json.loads((HERE / "data" / "ubus-dump.json").read_text())


def test_ubus_wan_down_or_missing_and_lan_down(tmp_path):
    dump = stock_dump()
    assert ubus_reasons(tmp_path, dump) == ({"lan", "wan"}, {})
    for iface in dump["interface"]:
        if iface["interface"] in ("wan", "wan6"):
            iface["up"] = False
    assert ubus_reasons(tmp_path, dump)[1] == {"wan": "wan is down; wan6 is down (ubus)"}
    dump["interface"] = [i for i in dump["interface"] if i["interface"] not in ("wan", "wan6")]
    assert ubus_reasons(tmp_path, dump)[1] == {
        "wan": "ubus has no interface wan, wan6 (SER_WEBUI_WAN); it has guest, lan, loopback"}
    for iface in dump["interface"]:
        if iface["interface"] == "lan":
            iface["ipv4-address"], iface["ipv6-prefix-assignment"] = [], []
    assert ubus_reasons(tmp_path, dump)[1]["lan"] == \
        "lan is up without an address; guest is down (ubus)"
    dump["interface"] = [i for i in dump["interface"] if i["interface"] == "loopback"]
    assert ubus_reasons(tmp_path, dump)[1]["lan"] == \
        "ubus has no interface but the WAN and loopback"


def test_a_failing_ubus_is_named_and_the_kernel_answers(netns, tmp_path, pybin):
    p = page_in_netns(tmp_path, pybin, [], SER_WEBUI_UBUS="/bin/false")
    assert card(p, "wan") == ["unknown: no device is named wan, wan6 (SER_WEBUI_WAN) and there "
                              "is no default route; /bin/false gave no interface dump, so the "
                              "kernel was asked"]


def test_the_reason_is_escaped():
    st = page.Status()
    st.nets_unknown = {"wan": "<b>x</b>"}
    html = page.render(st, lambda t: (2026, 1, 1, 0, 0, 0, 0, 0, 0))
    assert 'id="wan-why">unknown: &lt;b&gt;x&lt;/b&gt;</li>' in html
    assert '<li class="muted">unknown</li>' in html          # no reason given: the bare word
