"""files/etc/init.d/ser, run the way the router's ash runs it (busybox sh, and dash), with
procd_harness.sh standing in for /etc/rc.common and procd: what start declares (command line,
respawn, log to syslog, triggers), when reload sends SIGHUP and when it restarts, and what it
logs.  This tests our script, not procd."""

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from serlite import uci

from .pkgtools import REPO

INIT = REPO / "files" / "etc" / "init.d" / "ser"
HARNESS = REPO / "tests" / "packaging" / "procd_harness.sh"
SHELLS = [pytest.param(["busybox", "sh"], id="busybox-ash"), pytest.param(["dash"], id="dash")]

UCI_LAN = """
config ser 'main'
	option enabled '1'
	list interface 'lan'
	option port '5060'
	option wan_open '0'

config user
	option name '100'
	option password 'pw'
"""

UCI_WAN = """
config ser 'main'
	option enabled '1'
	list interface 'lan'
	option wan_open '1'
	option wan 'wan'
	option colour 'blue'

config user
	option name '100'
	option password 'pw'
"""

NETWORK_SH = """
network_get_subnets() { eval "$1=\\"\\${ADDR4_$2}\\""; }
network_get_subnets6() { eval "$1=\\"\\${ADDR6_$2}\\""; }
"""


def uci_sh(text):
    """What config_load leaves behind: CONFIG_<section>_<option>=value (lists space-joined)."""
    out, names = [], []
    for i, section in enumerate(uci.parse(text)):
        name = section.name or f"cfg{i:02x}"     # uci's name for an unnamed section
        names.append(name)
        out.append(f"CONFIG_{name}_TYPE={section.type}")
        for option, value in section.options.items():
            value = " ".join(value) if isinstance(value, list) else value
            out.append(f"CONFIG_{name}_{option}={shlex.quote(value)}")
    out.append(f"CONFIG_SECTIONS={shlex.quote(' '.join(names))}")
    return "\n".join(out) + "\n"


class Router:
    """A scratch place to run the init script in: UCI file, addresses, the RAM directory."""

    def __init__(self, tmp_path, shell, uci_text, **addresses):
        if shutil.which(shell[0]) is None:
            pytest.fail(f"{shell[0]} is not installed (tests/run installs it)")
        self.shell = shell
        self.tmp = tmp_path
        self.run_dir = tmp_path / "var-etc-ser"
        self.record = tmp_path / "record"
        (tmp_path / "root" / "lib" / "functions").mkdir(parents=True)
        (tmp_path / "root" / "lib" / "functions" / "network.sh").write_text(NETWORK_SH)
        self.set_uci(uci_text)
        self.addresses = addresses

    def set_uci(self, text):
        (self.tmp / "ser").write_text(text)
        (self.tmp / "uci.sh").write_text(uci_sh(text))

    def run(self, *actions, ser_bin=None, bin_dir=None):
        """Run the actions in one shell; return the recorded calls [(name, [args])].
        ``bin_dir``: a directory of stand-in commands first on PATH (fw4)."""
        self.record.write_text("")
        env = dict(os.environ, RECORD=str(self.record), UCI_SH=str(self.tmp / "uci.sh"),
                   IPKG_INSTROOT=str(self.tmp / "root"), HARNESS_PYTHON=sys.executable,
                   HARNESS_PYTHONPATH=str(REPO), HARNESS_SER_RUN=str(self.run_dir),
                   HARNESS_SER_UCI=str(self.tmp / "ser"))
        if ser_bin:
            env["HARNESS_SER_BIN"] = str(ser_bin)
        if bin_dir:
            env["PATH"] = f"{bin_dir}:{env['PATH']}"
        for iface, addrs in self.addresses.items():
            env[f"ADDR4_{iface}"] = " ".join(a for a in addrs if ":" not in a)
            env[f"ADDR6_{iface}"] = " ".join(a for a in addrs if ":" in a)
        script = f". {shlex.quote(str(HARNESS))}; harness {shlex.quote(str(INIT))} " + \
            " ".join(actions)
        run = subprocess.run([*self.shell, "-c", script], env=env, capture_output=True,
                             text=True, timeout=60)
        self.returncode, self.stdout, self.stderr = run.returncode, run.stdout, run.stderr
        if not actions or actions[-1] != "check":
            assert run.returncode == 0, run.stderr
        calls = []
        for line in self.record.read_text().splitlines():
            name, _, rest = line.partition(" ")
            calls.append((name, re.findall(r"\[([^\]]*)\]", rest)))
        return calls


def params(calls, name):
    return [args[1:] for call, args in calls if call == "procd_set_param" and args[0] == name]


def signature(calls):
    """The signature of the instance's data (procd restarts the instance when it changes)."""
    return [args[1] for call, args in calls if call == "json_add_string" and
            args[0] == "signature"]


def firewall(calls):
    """The rules of the instance's data's firewall array, as dicts; None: no such array."""
    rules, rule, inside = [], None, False
    for call, args in calls:
        if call == "json_add_array" and args == ["firewall"]:
            inside = True
        elif not inside:
            continue
        elif call == "json_add_object":
            rule = {}
        elif call == "json_add_string" and rule is not None:
            rule[args[0]] = args[1]
        elif call == "json_close_object":
            rules.append(rule)
            rule = None
        elif call == "json_close_array":
            return rules
    return None


@pytest.mark.parametrize("shell", SHELLS)
def test_start_declares_the_instance(tmp_path, shell):
    router = Router(tmp_path, shell, UCI_LAN, lan=["192.168.1.1/24", "fd00::1/64"],
                    wan=["203.0.113.5/24"])
    calls = router.run("start")
    names = [c for c, _ in calls]
    assert names.index("procd_open_instance") < names.index("procd_close_instance")
    cfg = router.run_dir / "ser.cfg"
    assert params(calls, "command") == [["/usr/bin/ser", "-D", "-E", "-f", str(cfg)]]
    assert params(calls, "respawn") == [[]]          # procd's defaults from system.@service
    assert params(calls, "stdout") == [["1"]] and params(calls, "stderr") == [["1"]]
    (sig,) = signature(calls)
    assert "listen=192.168.1.1" in sig
    # the generated config: in the RAM directory, the LAN's addresses only
    text = cfg.read_text()
    assert "listen=192.168.1.1\nlisten=[fd00::1]\n" in text and "203.0.113.5" not in text
    check = subprocess.run([sys.executable, "-m", "serlite", "-c", "-f", str(cfg)], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    # triggers: UCI changes reload; so does any event of a listened interface
    assert ("procd_add_reload_trigger", ["ser"]) in calls
    assert [a for c, a in calls if c == "procd_add_interface_trigger"] == [
        ["interface.*", "lan", "/etc/init.d/ser", "reload"]]
    assert not [c for c, _ in calls if c == "logger"]


@pytest.mark.parametrize("shell", SHELLS)
def test_wan_open_listens_and_triggers_on_the_wan_and_logs_what_it_ignored(tmp_path, shell):
    router = Router(tmp_path, shell, UCI_WAN, lan=["192.168.1.1/24"], wan=["203.0.113.5/24"])
    calls = router.run("start")
    assert [a[1] for c, a in calls if c == "procd_add_interface_trigger"] == ["lan", "wan"]
    text = (router.run_dir / "ser.cfg").read_text()
    assert "listen=203.0.113.5" in text and "www_authorize" in text
    assert (router.run_dir / "db" / "subscriber").exists()
    (log,) = [a for c, a in calls if c == "logger"]
    assert log[:4] == ["-t", "ser", "-p", "daemon.notice"]
    assert "'colour'" in log[4] and "not understood" in log[4]


@pytest.mark.parametrize("shell", SHELLS)
def test_reload_sends_sighup_when_the_sockets_stay(tmp_path, shell):
    router = Router(tmp_path, shell, UCI_WAN, lan=["192.168.1.1/24"], wan=["203.0.113.5/24"])
    router.run("start")
    router.set_uci(UCI_WAN.replace("option wan_open '1'", "option wan_open '1'\n"
                                   "\toption log_level '4'"))
    calls = router.run("reload")
    assert ("procd_send_signal", ["ser", "*", "HUP"]) in calls
    assert "debug=4" in (router.run_dir / "ser.cfg").read_text()


@pytest.mark.parametrize("shell", SHELLS)
def test_reload_restarts_when_the_wan_address_changes(tmp_path, shell):
    router = Router(tmp_path, shell, UCI_WAN, lan=["192.168.1.1/24"], wan=["203.0.113.5/24"])
    first = signature(router.run("start"))
    router.addresses["wan"] = ["198.51.100.20/24"]       # the WAN came up with a new address
    calls = router.run("reload")
    # no SIGHUP: start declares a new signature, and procd restarts the instance to bind again
    assert not [c for c, _ in calls if c == "procd_send_signal"]
    assert signature(calls) != first
    assert "listen=198.51.100.20" in (router.run_dir / "ser.cfg").read_text()


@pytest.mark.parametrize("shell", SHELLS)
def test_disabled_declares_no_instance_but_keeps_its_triggers(tmp_path, shell):
    router = Router(tmp_path, shell, UCI_LAN.replace("enabled '1'", "enabled '0'"),
                    lan=["192.168.1.1/24"])
    calls = router.run("start")
    assert "procd_open_instance" not in [c for c, _ in calls]
    assert ("procd_add_reload_trigger", ["ser"]) in calls
    assert any("disabled" in a[-1] for c, a in calls if c == "logger")
    # enabling it then reloading starts it, without a SIGHUP to an instance that was not there
    router.set_uci(UCI_LAN)
    calls = router.run("reload")
    assert "procd_open_instance" in [c for c, _ in calls]
    assert "procd_send_signal" not in [c for c, _ in calls]


@pytest.mark.parametrize("shell", SHELLS)
def test_no_address_yet_waits_for_the_interface(tmp_path, shell):
    router = Router(tmp_path, shell, UCI_LAN, lan=[])
    calls = router.run("start")
    assert "procd_open_instance" not in [c for c, _ in calls]
    assert [a[1] for c, a in calls if c == "procd_add_interface_trigger"] == ["lan"]
    (log,) = [a for c, a in calls if c == "logger"]
    assert log[3] == "daemon.notice" and "no address to listen on yet" in log[4]


@pytest.mark.parametrize("shell", SHELLS[:1])
def test_a_bad_value_is_logged_as_an_error(tmp_path, shell):
    router = Router(tmp_path, shell, UCI_LAN.replace("'5060'", "'70000'"), lan=["10.0.0.1/8"])
    calls = router.run("start")
    assert "procd_open_instance" not in [c for c, _ in calls]
    (log,) = [a for c, a in calls if c == "logger"]
    assert log[3] == "daemon.err" and "option port: '70000' is not a number" in log[4]


@pytest.mark.parametrize("shell", SHELLS[:1])
def test_the_wan_is_triggered_on_once_and_only_when_open(tmp_path, shell):
    text = UCI_WAN.replace("list interface 'lan'", "list interface 'lan'\n\tlist interface 'wan'")
    router = Router(tmp_path, shell, text, lan=["192.168.1.1/24"], wan=["203.0.113.5/24"])
    calls = router.run("start")
    assert [a[1] for c, a in calls if c == "procd_add_interface_trigger"] == ["lan", "wan"]
    router.set_uci(text.replace("wan_open '1'", "wan_open '0'"))
    calls = router.run("start")
    assert [a[1] for c, a in calls if c == "procd_add_interface_trigger"] == ["lan"]
    (sig,) = signature(calls)
    assert "203.0.113.5" not in sig


@pytest.mark.parametrize("shell", SHELLS[:1])
def test_expert_config(tmp_path, shell):
    expert = REPO / "files" / "etc" / "ser" / "ser.cfg"
    router = Router(tmp_path, shell, UCI_LAN.replace(
        "option wan_open '0'", f"option wan_open '0'\n\toption config '{expert}'"),
        lan=["192.168.1.1/24"])
    calls = router.run("start")
    assert params(calls, "command") == [["/usr/bin/ser", "-D", "-E", "-f", str(expert)]]
    assert not (router.run_dir / "ser.cfg").exists()
    # the accounts the shipped ser.cfg reads are written all the same
    assert (router.run_dir / "db" / "subscriber").read_text().startswith(
        "username(str) domain(str) ha1(str) ha1b(str)\n100:serlite:")


@pytest.mark.parametrize("shell", SHELLS[:1])
def test_check_shows_the_notes_and_runs_ser_c(tmp_path, shell):
    ser = tmp_path / "ser-bin"
    ser.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} "
                   f"{REPO}/files/usr/bin/ser \"$@\"\n")
    ser.chmod(0o755)
    router = Router(tmp_path, shell, UCI_WAN, lan=["192.168.1.1/24"], wan=["203.0.113.5/24"])
    router.run("check", ser_bin=ser)
    assert router.returncode == 0, router.stderr
    assert "'colour'" in router.stderr
    assert f"{router.run_dir / 'ser.cfg'}: ok" in router.stderr


RTP_RULE = {"type": "rule", "name": "Allow-SIP-RTP", "src": "wan", "proto": "udp",
            "dest_port": "16384-16483", "target": "ACCEPT"}
SIP_RULE = {"type": "rule", "name": "Allow-SIP", "src": "wan", "proto": "udp tcp",
            "dest_port": "5060", "target": "ACCEPT"}


@pytest.mark.parametrize("shell", SHELLS)
def test_wan_open_opens_the_sip_port_and_the_relays_rtp_ports_on_the_wan(tmp_path, shell):
    router = Router(tmp_path, shell, UCI_WAN, lan=["192.168.1.1/24"], wan=["203.0.113.5/24"])
    calls = router.run("start")
    assert firewall(calls) == [SIP_RULE, RTP_RULE]
    names = [c for c, _ in calls]
    # in the instance's one data object, and the firewall told to read it again
    assert names.index("procd_open_instance") < names.index("procd_open_data") \
        < names.index("procd_close_data") < names.index("procd_close_instance")
    assert names.count("procd_open_data") == 1 and not params(calls, "data")
    assert calls[-1] == ("procd_set_config_changed", ["firewall"])
    # the range is the UCI rtp_ports; a change of it restarts (no SIGHUP: the relay's
    # sockets keep their ports until a restart)
    router.set_uci(UCI_WAN.replace("option wan_open '1'",
                                   "option wan_open '1'\n\toption rtp_ports '20000-20099'"))
    calls = router.run("reload")
    assert firewall(calls) == [SIP_RULE, dict(RTP_RULE, dest_port="20000-20099")]
    assert "procd_send_signal" not in [c for c, _ in calls]
    # stopping the service drops the rule too
    calls = router.run("stop")
    assert ("procd_set_config_changed", ["firewall"]) in calls


@pytest.mark.parametrize("shell", SHELLS[:1])
@pytest.mark.parametrize("change", [("option wan_open '1'", "option wan_open '0'"),
                                    ("option wan_open '1'",
                                     "option wan_open '1'\n\toption relay 'off'")],
                         ids=["wan-closed", "relay-off"])
def test_no_rtp_port_is_opened_when_the_wan_is_closed_or_nothing_is_relayed(tmp_path, shell,
                                                                            change):
    router = Router(tmp_path, shell, UCI_WAN.replace(*change), lan=["192.168.1.1/24"],
                    wan=["203.0.113.5/24"])
    calls = router.run("start")
    assert "procd_open_instance" in [c for c, _ in calls]
    # the SIP port only when the WAN is open; the RTP ports only when something is relayed
    assert firewall(calls) == ([SIP_RULE] if "relay" in change[1] else [])


@pytest.mark.parametrize("shell", SHELLS[:1])
def test_the_rule_names_the_wan_networks_firewall_zone(tmp_path, shell):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fw4 = bin_dir / "fw4"
    fw4.write_text('#!/bin/sh\n[ "$*" = "-q network wan" ] && echo internet\n')
    fw4.chmod(0o755)
    router = Router(tmp_path, shell, UCI_WAN, lan=["192.168.1.1/24"], wan=["203.0.113.5/24"])
    assert firewall(router.run("start", bin_dir=bin_dir)) == [dict(SIP_RULE, src="internet"),
                                                          dict(RTP_RULE, src="internet")]


# --- a provider (config provider): the WAN for its addresses only; the WAN's ifup hook ------

UCI_PROVIDER = UCI_LAN + """
config provider 'sipco'
	option server '198.51.100.7:5080'
	option user 'house'
	option password 'pw'
	list address '198.51.100.64/26'
"""


@pytest.mark.parametrize("shell", SHELLS)
def test_a_provider_listens_on_the_wan_and_opens_sip_to_its_addresses_only(tmp_path, shell):
    router = Router(tmp_path, shell, UCI_PROVIDER, lan=["192.168.1.1/24"],
                    wan=["203.0.113.5/24"])
    calls = router.run("start")
    text = (router.run_dir / "ser.cfg").read_text()
    assert "listen=203.0.113.5" in text and "option wan_open 0" in text
    assert [a[1] for c, a in calls if c == "procd_add_interface_trigger"] == ["lan", "wan"]
    provider = dict(SIP_RULE, name="Allow-SIP-Provider")
    assert firewall(calls) == [dict(provider, src_ip="198.51.100.7"),
                               dict(provider, src_ip="198.51.100.64/26"), RTP_RULE]
    assert (router.run_dir / "db" / "uacreg").stat().st_mode & 0o777 == 0o600
    # disabled: as without it
    router.set_uci(UCI_PROVIDER + "\toption enabled '0'\n")
    calls = router.run("start")
    assert firewall(calls) == []
    assert "203.0.113.5" not in (router.run_dir / "ser.cfg").read_text()


HOTPLUG = REPO / "files" / "etc" / "hotplug.d" / "iface" / "40-ser"


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("uci_text,action,iface,refreshed", [
    (UCI_PROVIDER, "ifup", "wan", True),
    (UCI_PROVIDER, "ifupdate", "wan", True),
    (UCI_PROVIDER, "ifdown", "wan", False),
    (UCI_PROVIDER, "ifup", "lan", False),
    (UCI_LAN, "ifup", "wan", False),
], ids=["ifup", "ifupdate", "ifdown", "lan", "no-provider"])
def test_the_wans_ifup_registers_at_the_provider_again(tmp_path, shell, uci_text, action, iface,
                                                       refreshed):
    """hotplug-call sources 40-ser with ACTION and INTERFACE: on the WAN's ifup (ifupdate: a
    new address kept by the same link) with a provider, ``ser-ctl reg_refresh``."""
    router = Router(tmp_path, shell, uci_text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "ser-ctl"
    stub.write_text('#!/bin/sh\necho "ser-ctl $*" >>"$RECORD"\n')
    stub.chmod(0o755)
    router.record.write_text("")
    env = dict(os.environ, RECORD=str(router.record), UCI_SH=str(tmp_path / "uci.sh"),
               PATH=f"{bin_dir}:{os.environ['PATH']}", ACTION=action, INTERFACE=iface)
    script = f". {shlex.quote(str(HARNESS))}; ( . {shlex.quote(str(HOTPLUG))} )"
    run = subprocess.run([*shell, "-c", script], env=env, capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr
    lines = router.record.read_text().splitlines()
    assert ("ser-ctl reg_refresh" in lines) == refreshed, lines
    assert any(line.startswith("logger") and "registering at the provider again" in line
               for line in lines) == refreshed, lines
