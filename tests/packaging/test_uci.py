"""serlite.uci: /etc/config/ser -> the ser.cfg the router runs, for LAN only, LAN+WAN and the
expert's own file; every one accepted by `ser -c`."""

import hashlib
import subprocess
import sys

import pytest

from serlite import uci

from .pkgtools import REPO

LAN = {"lan": ["192.168.1.1/24", "fd00:1::1/64", "fe80::1/64"]}
LAN_WAN = dict(LAN, wan=["203.0.113.7/24", "fe80::2/64"])

LAN_ONLY_UCI = """
config ser 'main'
	option enabled '1'
	list interface 'lan'
	option port '5060'
	option wan_open '0'

config user
	option name '100'
	option password 'pw'
"""

LAN_WAN_UCI = """
config ser 'main'
	option enabled '1'
	list interface 'lan'
	option port '5070'
	option domain 'home.example'
	option wan_open '1'
	option log_level '3'

config user
	option name '100'
	option password 'secret:with colon'

config user 'alice'
	option password "p@ss"
"""

EXPERT_UCI = f"""
config ser 'main'
	option enabled '1'
	option port '5080'
	option config '{REPO}/files/etc/ser/ser.cfg'
"""


def ser_check(path):
    """`ser -c -f path` with this tree."""
    return subprocess.run([sys.executable, "-m", "serlite", "-c", "-f", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def run_uci(tmp_path, text, *addresses):
    (tmp_path / "ser").write_text(text)
    args = [a for iface, addrs in addresses for addr in addrs for a in ("-a", f"{iface}={addr}")]
    return subprocess.run([sys.executable, "-m", "serlite.uci", "-c", str(tmp_path / "ser"),
                           "-o", str(tmp_path / "run"), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)


# --- the UCI file syntax --------------------------------------------------------------------

def test_parse_options_lists_quotes_and_comments():
    sections = uci.parse("package ser\n"
                         "config ser 'main'   # the one\n"
                         "\toption domain \"home.lan\"\n"
                         "\tlist interface lan\n"
                         "\tlist interface 'guest'\n"
                         "\toption empty ''\n"
                         "config user\n"
                         "\toption password 'a b#c'\n")
    assert [(s.type, s.name) for s in sections] == [("ser", "main"), ("user", None)]
    assert sections[0].options == {"domain": "home.lan", "interface": ["lan", "guest"],
                                   "empty": ""}
    assert sections[1].options == {"password": "a b#c"}


@pytest.mark.parametrize("text, message", [
    ("option port '1'\n", "f:1: option before any config line"),
    ("config ser 'main'\n\toption port\n", "f:2: write option NAME 'VALUE'"),
    ("config ser 'main'\n\toption port '1\n", "f:2: No closing quotation"),
    ("config\n", "f:1: write config TYPE ['NAME']"),
    ("config ser main\n\tpotion port 1\n", "f:2: unknown keyword 'potion'"),
])
def test_parse_errors_say_where(text, message):
    with pytest.raises(uci.UciError) as exc:
        uci.parse(text, "f")
    assert str(exc.value).startswith(message)


def test_the_shipped_uci_file_parses_with_one_note_no_accounts_yet():
    notes = []
    s = uci.settings(uci.parse((REPO / "files/etc/config/ser").read_text()), notes)
    assert [n.split(":")[0] for n in notes] == ["no accounts yet"], notes
    assert (s.enabled, s.interfaces, s.port, s.wan_open, s.trust_lan, s.config) == (
        True, ["lan"], 5060, False, False, "")


# --- settings: defaults, errors, what is reported -----------------------------------------

def test_unknown_options_and_sections_are_reported_not_dropped():
    notes = []
    uci.settings(uci.parse("config ser 'main'\n\toption prot '5060'\n"
                           "config phone 'x'\n\toption a 'b'\n"
                           "config user\n\toption name 'u'\n\toption password 'p'\n"
                           "\toption pin '1'\n"), notes)
    assert any("'prot'" in n and "not understood" in n for n in notes), notes
    assert any("phone 'x'" in n and "unknown type" in n for n in notes), notes
    assert any("'pin'" in n for n in notes), notes
    assert not any("no accounts" in n for n in notes), notes


@pytest.mark.parametrize("option, value, message", [
    ("port", "70000", "option port: '70000' is not a number from 1 to 65535"),
    ("wan_open", "maybe", "option wan_open: 'maybe' is not a boolean"),
    ("trust_lan", "2", "option trust_lan: '2' is not a boolean"),
    ("log_level", "9", "option log_level"),
    ("domain", "home lan", "option domain: 'home lan' is not a domain name"),
    ("location_db", "mysql://x", "option location_db: 'mysql://x' is neither"),
    ("interface", "lan;rm", "option interface: 'lan;rm' is not an interface name"),
])
def test_bad_values_are_errors(option, value, message):
    with pytest.raises(uci.UciError) as exc:
        uci.settings(uci.parse(f"config ser 'main'\n\toption {option} '{value}'\n"))
    assert str(exc.value).startswith(message)


def test_a_user_needs_a_name_and_a_password():
    with pytest.raises(uci.UciError, match="password is missing"):
        uci.settings(uci.parse("config user\n\toption name '100'\n"))
    with pytest.raises(uci.UciError, match="one SIP user name"):
        uci.settings(uci.parse("config user\n\toption name 'a:b'\n\toption password 'x'\n"))


# --- every phone logs in ------------------------------------------------------------------------

def assert_every_phone_logs_in(text, realm):
    """REGISTER challenged (401), every other new request but ACK/CANCEL (407), from any
    source; only in-dialog requests follow loose_route; a pre-loaded Route is dropped."""
    lines = [line.strip() for line in text.splitlines()]
    for call in (f'www_authorize("{realm}", "subscriber")', f'www_challenge("{realm}", "1")',
                 f'proxy_authorize("{realm}", "subscriber")', f'proxy_challenge("{realm}", "1")',
                 "check_to()", "consume_credentials();", "pike_check_req()",
                 'nat_uac_test("19")'):
        assert call in text, call
    assert 'if (method != "ACK" && method != "CANCEL") {' in lines
    assert "route(from_lan)) {    # trust_lan" not in text
    # loose_route only inside "if (has_totag())", before any authentication
    assert lines.index("if (has_totag()) {") + 1 == lines.index("if (loose_route()) {")
    assert lines.index('remove_hf("Route");') > lines.index(
        f'if (!proxy_authorize("{realm}", "subscriber")) {{')
    assert 'modparam("auth", "secret_file", "/etc/ser/auth_secret")' in lines


def test_trust_lan_exempts_the_lan_only(tmp_path):
    notes = []
    text = uci.generate(uci.parse(LAN_ONLY_UCI.replace("option wan_open '0'",
                                                       "option trust_lan '1'")),
                        LAN, notes=notes)
    assert any(n.startswith("trust_lan is set") for n in notes), notes
    lines = [line.strip() for line in text.splitlines()]
    assert "if (!route(from_lan)) {    # trust_lan: the LAN needs no password" in lines
    assert 'if (!route(from_lan) && method != "ACK" && method != "CANCEL") {' in lines
    (tmp_path / "trust.cfg").write_text(text)
    check = ser_check(tmp_path / "trust.cfg")
    assert check.returncode == 0, check.stderr + text


# --- LAN only ---------------------------------------------------------------------------------

def test_lan_only(tmp_path):
    notes = []
    text = uci.generate(uci.parse(LAN_ONLY_UCI), LAN_WAN, notes=notes)
    assert notes == []
    lines = text.splitlines()
    # the LAN's addresses only; no link-local address, nothing of the WAN
    assert [line for line in lines if line.startswith("listen=")] == [
        "listen=192.168.1.1", "listen=[fd00:1::1]"]
    assert "port=5060" in lines and "debug=2" in lines
    for absent in ("203.0.113.7", "alias="):
        assert absent not in text
    assert 'modparam("usrloc", "db_url", "dbtext:///etc/ser/usrloc")' in lines
    # the LAN logs in too: the checks are not skipped for route(from_lan)
    assert_every_phone_logs_in(text, "serlite")
    (tmp_path / "lan.cfg").write_text(text)
    check = ser_check(tmp_path / "lan.cfg")
    assert check.returncode == 0, check.stderr + text


def test_lan_only_command_writes_to_the_run_dir(tmp_path):
    run = run_uci(tmp_path, LAN_ONLY_UCI, ("lan", LAN["lan"]))
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"{tmp_path / 'run' / 'ser.cfg'}\n"
    assert (tmp_path / "run" / "ser.cfg").read_text() == uci.generate(uci.parse(LAN_ONLY_UCI),
                                                                       LAN, run_dir=tmp_path / "run")
    # the accounts, for the generated config (and the shipped one): HA1 only, 0600
    table = tmp_path / "run" / "db" / "subscriber"
    assert table.stat().st_mode & 0o777 == 0o600
    assert table.read_text().splitlines()[1].startswith(
        f"100:serlite:{hashlib.md5(b'100:serlite:pw').hexdigest()}:")


def test_no_address_yet_is_an_error_the_init_script_logs(tmp_path):
    run = run_uci(tmp_path, LAN_ONLY_UCI, ("wan", ["203.0.113.7/24"]))
    assert run.returncode == 2
    assert "interface 'lan' has no address now" in run.stderr
    assert "note: no address to listen on yet" in run.stderr
    assert run.stdout == ""


# --- LAN + WAN --------------------------------------------------------------------------------

def test_lan_wan(tmp_path):
    notes = []
    text = uci.generate(uci.parse(LAN_WAN_UCI), LAN_WAN, run_dir=str(tmp_path), notes=notes)
    assert notes == []
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("listen=")] == [
        "listen=192.168.1.1", "listen=[fd00:1::1]", "listen=203.0.113.7"]
    assert 'alias="home.example"' in lines and "port=5070" in lines and "debug=3" in lines
    # the LAN (and the router itself) is trusted; link-local and the WAN's network are not
    assert "    if (src_ip == 192.168.1.0/24) return(1);" in lines
    assert "    if (src_ip == fd00:1::/64) return(1);" in lines
    assert "    if (src_ip == 127.0.0.0/8) return(1);" in lines
    assert "fe80" not in text and "203.0.113.0" not in text
    assert_every_phone_logs_in(text, "home.example")
    # digest auth from anywhere: REGISTER, then every other new request
    for call in ('www_authorize("home.example", "subscriber")',
                 'www_challenge("home.example", "1")', "check_to()", "consume_credentials()",
                 'proxy_authorize("home.example", "subscriber")',
                 'proxy_challenge("home.example", "1")', "pike_check_req()",
                 'nat_uac_test("19")', "fix_nated_register()", "fix_nated_contact()"):
        assert call in text, call
    assert f'modparam("auth_db", "db_url", "dbtext://{tmp_path}/db")' in lines
    assert 'modparam("auth", "secret_file", "/etc/ser/auth_secret")' in lines
    assert 'modparam("nathelper", "natping_interval", 30)' in lines
    (tmp_path / "wan.cfg").write_text(text)
    check = ser_check(tmp_path / "wan.cfg")
    assert check.returncode == 0, check.stderr + text


def test_lan_wan_writes_the_subscribers(tmp_path):
    run = run_uci(tmp_path, LAN_WAN_UCI, ("lan", LAN["lan"]), ("wan", LAN_WAN["wan"]))
    assert run.returncode == 0, run.stderr
    table = tmp_path / "run" / "db" / "subscriber"
    assert table.stat().st_mode & 0o777 == 0o600
    lines = table.read_text().splitlines()
    assert lines[0] == "username(str) domain(str) ha1(str) ha1b(str)"
    ha1 = hashlib.md5(b"100:home.example:secret:with colon").hexdigest()
    ha1b = hashlib.md5(b"100@home.example:home.example:secret:with colon").hexdigest()
    assert lines[1] == f"100:home.example:{ha1}:{ha1b}"
    assert lines[2].startswith("alice:home.example:")
    assert "secret" not in table.read_text(), "no clear password in the table"
    from serlite.store import dbtext
    rows = dbtext.read_table(str(table))[0].rows
    assert [r["username"] for r in rows] == ["100", "alice"] and rows[0]["ha1"] == ha1


def test_wan_open_notes(tmp_path):
    notes = []
    uci.generate(uci.parse("config ser 'main'\n\toption wan_open '1'\n"), LAN_WAN, notes=notes)
    assert any("no accounts yet" in n for n in notes)
    assert any("realm is 'serlite'" in n for n in notes)


def test_a_user_db_pointer_replaces_the_user_sections():
    notes = []
    text = uci.generate(uci.parse(LAN_WAN_UCI.replace("option log_level '3'",
                                                      "option user_db '/etc/ser/db'")),
                        LAN_WAN, notes=notes)
    assert 'modparam("auth_db", "db_url", "dbtext:///etc/ser/db")' in text
    assert any("user sections are ignored" in n for n in notes), notes


def test_wan_listed_but_closed_is_not_listened_on():
    notes = []
    text = uci.generate(uci.parse("config ser 'main'\n\tlist interface 'lan'\n"
                                  "\tlist interface 'wan'\n"), LAN_WAN, notes=notes)
    assert "203.0.113.7" not in text
    assert any("wan_open is 0" in n for n in notes)


# --- the expert's own config ------------------------------------------------------------------

def test_expert_config_runs_as_it_is(tmp_path):
    run = run_uci(tmp_path, EXPERT_UCI, ("lan", LAN["lan"]))
    assert run.returncode == 0, run.stderr
    path = run.stdout.strip()
    assert path == f"{REPO}/files/etc/ser/ser.cfg"
    assert "option port ignored" in run.stderr
    assert not (tmp_path / "run" / "ser.cfg").exists(), "no config generated"
    # but the accounts, which the shipped ser.cfg reads: none here
    assert (tmp_path / "run" / "db" / "subscriber").read_text() == \
        "username(str) domain(str) ha1(str) ha1b(str)\n"
    check = ser_check(path)
    assert check.returncode == 0, check.stderr


def test_expert_config_must_exist(tmp_path):
    run = run_uci(tmp_path, EXPERT_UCI.replace("ser.cfg", "nope.cfg"), ("lan", LAN["lan"]))
    assert run.returncode == 1 and "is not a file" in run.stderr


# --- bans (secfilter) ---------------------------------------------------------------------------

BANS_UCI = """
config ser 'main'
	list interface 'lan'
	option wan_open '1'
	option ban_failures '3'
	option ban_window '300'
	option ban_time '600'
	option ban_time_max '7200'
	list trusted '192.168.1.10'
	list trusted '198.51.100.0/28'
	list scanner_agents 'friendly-scanner'
	list scanner_agents 'EvilDialer'
"""


def test_ban_options_become_secfilters_modparams(tmp_path):
    text = uci.generate(uci.parse(BANS_UCI), LAN_WAN)
    lines = [line.strip() for line in text.splitlines()]
    for line in ('loadmodule "/usr/lib/ser/modules/secfilter.so"',
                 'modparam("secfilter", "ban_failures", 3)',
                 'modparam("secfilter", "ban_window", 300)',
                 'modparam("secfilter", "ban_time", 600)',
                 'modparam("secfilter", "ban_time_max", 7200)',
                 'modparam("secfilter", "ban_file", "/etc/ser/bans")',
                 'modparam("secfilter", "trusted", "192.168.1.10,198.51.100.0/28")',
                 'modparam("secfilter", "scanner_agents", "friendly-scanner,EvilDialer")'):
        assert line in lines, line
    # the scanners are dropped before anything answers (the 483 of maxfwd included)
    assert lines.index("if (!secf_check_ua()) {") < lines.index(
        'if (!mf_process_maxfwd_header("10")) {')
    (tmp_path / "bans.cfg").write_text(text)
    check = ser_check(tmp_path / "bans.cfg")
    assert check.returncode == 0, check.stderr + text
    from serlite.script.compiler import compile_config
    sec = compile_config(text, "bans.cfg").modules["secfilter"]
    assert sec.table.limit == 3 and sec.agents == ("friendly-scanner", "evildialer")


def test_ban_defaults_the_module_default_agents_and_nothing_trusted():
    text = uci.generate(uci.parse(LAN_ONLY_UCI), LAN)
    assert 'modparam("secfilter", "ban_failures", 5)' in text
    assert 'modparam("secfilter", "ban_time_max", 86400)' in text
    assert '"trusted"' not in text and '"scanner_agents"' not in text


@pytest.mark.parametrize("option, value, message", [
    ("ban_failures", "0", "option ban_failures: '0' is not a number from 1 to 1000"),
    ("ban_window", "ten", "option ban_window: 'ten' is not a number"),
    ("ban_time", "-5", "option ban_time: '-5' is not a number"),
    ("ban_time_max", "60", "option ban_time_max: 60 is shorter than ban_time (900)"),
    ("trusted", "192.168.1.5/24", "option trusted: '192.168.1.5/24' is not an address or "
                                  "network"),
    ("trusted", "provider.example", "option trusted: 'provider.example' is not an address"),
    ("scanner_agents", "a,b", "option scanner_agents: 'a,b': give one user agent part"),
    ("scanner_agents", 'x"y', "option scanner_agents: 'x\"y' may not hold quotes"),
])
def test_bad_ban_options_are_errors(option, value, message):
    with pytest.raises(uci.UciError) as exc:
        uci.settings(uci.parse(f"config ser 'main'\n\tlist {option} '{value}'\n"
                               if option in ("trusted", "scanner_agents") else
                               f"config ser 'main'\n\toption {option} '{value}'\n"))
    assert str(exc.value).startswith(message), str(exc.value)


def test_mhomed_when_listening_on_more_than_one_address():
    """SER's mhomed=1 once there is a choice: a request to the Internet leaves by the WAN
    address (the masquerade would rewrite one from the LAN socket); one address, no choice."""
    one = uci.generate(uci.parse(LAN_ONLY_UCI), {"lan": ["192.168.1.1/24"]})
    assert "mhomed=1" not in one.splitlines()
    both = uci.generate(uci.parse(LAN_WAN_UCI), LAN_WAN).splitlines()
    assert "mhomed=1" in both and both.index("mhomed=1") > both.index("listen=192.168.1.1")


# --- the media relay (option relay, rtp_ports) -------------------------------------------------

def _relay_lines(relay, addresses=LAN_WAN):
    text = uci.generate(uci.parse(LAN_WAN_UCI.replace(
        "option log_level '3'", f"option log_level '3'\n\toption relay '{relay}'\n"
                                f"\toption rtp_ports '20000-20099'")), addresses)
    return text, [line.strip() for line in text.splitlines()]


def test_relay_auto_is_the_default_and_relays_calls_between_the_lan_and_elsewhere(tmp_path):
    """Kamailio's NATMANAGE places: the initial INVITE after lookup, requests inside a call,
    every reply; a call between two LAN addresses (the source and $rd on the LAN, no $du of a
    NATed phone) keeps its direct media."""
    default = uci.generate(uci.parse(LAN_WAN_UCI), LAN_WAN)
    text, lines = _relay_lines("auto")
    assert text.replace("20000", "16384").replace("20099", "16483") == default
    assert 'loadmodule "/usr/lib/ser/modules/rtpproxy.so"' in lines
    assert 'modparam("rtpproxy", "rtp_port_min", 20000)' in lines
    assert 'modparam("rtpproxy", "rtp_port_max", 20099)' in lines
    route = lines[lines.index("route[relay_needed] {"):]
    route = route[:route.index("}")]
    assert route[1:] == [
        "if (!route(from_lan)) return(1);     # the caller is outside",
        "# lookup found a phone registered from behind a NAT outside: its received address",
        "if ($du != null) return(1);",
        r'if ($rd =~ "^192\.168\.1\.[0-9]+$") return(-1);',
        r'if ($rd =~ "^127\.[0-9]+\.[0-9]+\.[0-9]+$") return(-1);',
        # the LAN's IPv6 /64 (a ULA here): RFC 5952 text, bracketed or not
        r'if ($rd =~ "^\[?(fd00:1:0:0:|fd00:1::0(:[0-9a-f]{1,4}){4}\]?$|'
        r'fd00:1::([0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,3})?\]?$|'
        r'fd00:1:0::([0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,3})?\]?$)") return(-1);',
        "return(1);"]
    # initial INVITEs after lookup; inside a call after loose_route; every reply
    after_lookup = lines.index('if (!lookup("location")) {')
    invite = lines.index('if (method == "INVITE") {', after_lookup)
    assert lines[invite + 1:invite + 3] == ["if (route(relay_needed)) {", "rtpproxy_manage();"]
    assert lines.index("t_relay();", invite) == invite + 5
    loose = lines.index("if (loose_route()) {")
    assert "if (route(relay_needed)) {" in lines[loose:loose + 3]
    reply = lines[lines.index("onreply_route {"):]
    assert "rtpproxy_manage();" in reply
    (tmp_path / "auto.cfg").write_text(text)
    check = ser_check(tmp_path / "auto.cfg")
    assert check.returncode == 0, check.stderr + text


def test_relay_on_relays_every_call_and_off_loads_no_relay(tmp_path):
    on, on_lines = _relay_lines("on")
    assert "route[relay_needed] {" not in on_lines and on.count("rtpproxy_manage();") == 3
    off, off_lines = _relay_lines("off")
    assert "rtpproxy" not in off and "relay_needed" not in off
    for name, text in (("on", on), ("off", off)):
        (tmp_path / f"{name}.cfg").write_text(text)
        check = ser_check(tmp_path / f"{name}.cfg")
        assert check.returncode == 0, check.stderr + text


def test_relay_sock_sends_the_relayed_calls_to_an_external_relay_with_their_way(tmp_path):
    """option relay_sock: rtpproxy_sock, and each SDP's direction (i the house, e outside)
    from its sender to its receiver; the answer's in the onreply_route its INVITE armed."""
    text = uci.generate(uci.parse(LAN_WAN_UCI.replace(
        "option log_level '3'", "option log_level '3'\n\toption relay_sock "
                                "'udp:127.0.0.1:2223'")), LAN_WAN)
    lines = [line.strip() for line in text.splitlines()]
    assert 'modparam("rtpproxy", "rtpproxy_sock", "udp:127.0.0.1:2223")' in lines
    assert "rtp_port_min" not in text          # the relay's ports are its own
    ext = lines[lines.index("route[relay_ext] {"):]
    assert ext[1:8] == [
        "if (route(from_lan)) {",
        'if (method == "INVITE") { t_on_reply("relay_from_lan"); }',
        'if (route(to_lan)) { rtpproxy_manage("ii"); } else { rtpproxy_manage("ie"); }',
        "} else {",
        'if (method == "INVITE") { t_on_reply("relay_from_out"); }',
        'if (route(to_lan)) { rtpproxy_manage("ei"); } else { rtpproxy_manage("ee"); }',
        "}"]
    reply = lines[lines.index("onreply_route[relay_from_out] {"):]
    assert reply[1] == ('if (route(from_lan)) { rtpproxy_manage("ie"); } '
                        'else { rtpproxy_manage("ee"); }')
    plain = lines[lines.index("onreply_route {"):]
    assert "rtpproxy_manage();" not in plain and text.count("route(relay_ext);") == 2
    (tmp_path / "ext.cfg").write_text(text)
    check = ser_check(tmp_path / "ext.cfg")
    assert check.returncode == 0, check.stderr + text
    with pytest.raises(uci.UciError, match="option relay_sock: .*unix sockets"):
        uci.settings(uci.parse("config ser 'main'\n\toption relay_sock 'unix:/run/r.sock'\n"))


@pytest.mark.parametrize("net, matches, misses", [
    ("192.168.1.0/24", ["192.168.1.0", "192.168.1.255"], ["192.168.10.1", "192.168.2.1"]),
    ("10.16.0.0/12", ["10.16.0.1", "10.31.255.255"], ["10.15.0.1", "10.32.0.1", "110.16.0.1"]),
    ("192.168.1.4/30", ["192.168.1.4", "192.168.1.7"], ["192.168.1.8", "192.168.1.44"]),
    ("192.168.1.9/32", ["192.168.1.9"], ["192.168.1.90"]),
])
def test_the_destination_pattern_matches_exactly_the_networks_addresses(net, matches, misses):
    import ipaddress
    import re
    pattern = re.compile(uci._ipv4_regex(ipaddress.ip_network(net)))
    assert all(pattern.search(a) for a in matches), pattern
    assert not any(pattern.search(a) for a in misses), pattern


@pytest.mark.parametrize("net, matches, misses", [
    ("2001:db8:77::/64", ["2001:db8:77::2", "[2001:db8:77::2]", "2001:db8:77:0:1::2",
                          "2001:db8:77::", "2001:db8:77:0:a:b:c:d"],
     ["2001:db8:77:1::2", "2001:db8:770::2", "2001:db8::77:0:0:2", "2001:db8:7::2",
      "192.168.1.2", "2001:db8:77::1:2:3:4:5"]),
    ("2001:0:0:77::/64", ["2001:0:0:77::1", "2001::77:1:2:3:4", "2001:0:0:77:1:2:3:4"],
     ["2001::77:1", "2001::77", "2001:0:0:78::1"]),
    ("fd00::/48", ["fd00::1", "fd00:0:0:5::1", "fd00::5:0:0:1"], ["fd00:1::1", "fd0::1"]),
])
def test_the_ipv6_destination_pattern_matches_exactly_the_networks_addresses(net, matches,
                                                                              misses):
    """$rd as a phone's Contact writes an IPv6 address (RFC 5952 text, in brackets or not):
    a LAN /64's are matched, so a call between two phones of the house over IPv6 keeps its
    direct media; every other address is not (its calls are relayed)."""
    import ipaddress
    import re
    pattern = re.compile(uci._ipv6_regex(ipaddress.ip_network(net)))
    assert [a for a in matches if not pattern.search(a)] == [], pattern
    assert [a for a in misses if pattern.search(a)] == [], pattern
    assert uci._ipv6_regex(ipaddress.ip_network("2001:db8::/60")) is None


@pytest.mark.parametrize("option, value, message", [
    ("relay", "sometimes", "option relay: 'sometimes' is not auto, on or off"),
    ("rtp_ports", "16384", "option rtp_ports: '16384' is not a port range FIRST-LAST"),
    ("rtp_ports", "a-b", "option rtp_ports: 'a-b' is not a port range"),
    ("rtp_ports", "80-1000", "option rtp_ports: '80-1000': the ports must be from 1024"),
    ("rtp_ports", "20000-10000", "option rtp_ports: '20000-10000': the ports must be"),
    ("rtp_ports", "20000-20002", "option rtp_ports: '20000-20002' holds 3 ports: a call needs 4"),
    ("rtp_ports", "20001-20004", "option rtp_ports: '20001-20004' holds 1 RTP/RTCP pair (an "
                                 "even port and the next): a call needs 2, 4 ports from an even "
                                 "one (20002-20005)"),
    ("rtp_ports", "5000-5999", "option rtp_ports: 5000-5999 holds the SIP port 5060 (option "
                               "port): the relay's ports must be others"),
])
def test_bad_relay_options_are_errors(option, value, message):
    with pytest.raises(uci.UciError) as exc:
        uci.settings(uci.parse(f"config ser 'main'\n\toption {option} '{value}'\n"))
    assert str(exc.value).startswith(message), str(exc.value)


# --- SIP over TLS (option tls_cert, tls_key, tls_port, tls_ca) -------------------------------

def test_tls_options_add_tls_listeners_and_the_tls_module(tmp_path):
    import shutil
    assert shutil.which("openssl"), "tests/run installs openssl"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem", "-out",
                    "cert.pem", "-days", "1", "-subj", "/CN=router.lan"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=30)
    notes = []
    text = uci.generate(uci.parse(LAN_ONLY_UCI.replace(
        "option wan_open '0'", f"option wan_open '0'\n\toption tls_cert '{tmp_path}/cert.pem'\n"
                               f"\toption tls_key '{tmp_path}/key.pem'\n\toption tls_port '5071'\n"
                               f"\toption tls_ca '{tmp_path}/cert.pem'")), LAN_WAN, notes=notes)
    assert notes == []
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("listen=tls")] == [
        "listen=tls:192.168.1.1:5071", "listen=tls:[fd00:1::1]:5071"]
    assert 'loadmodule "/usr/lib/ser/modules/tls.so"' in lines
    assert f'modparam("tls", "certificate", "{tmp_path}/cert.pem")' in lines
    assert f'modparam("tls", "private_key", "{tmp_path}/key.pem")' in lines
    assert f'modparam("tls", "ca_list", "{tmp_path}/cert.pem")' in lines
    (tmp_path / "tls.cfg").write_text(text)
    check = ser_check(tmp_path / "tls.cfg")
    assert check.returncode == 0, check.stderr + text
    # without a certificate the other options do nothing, and say so
    notes = []
    text = uci.generate(uci.parse(LAN_ONLY_UCI.replace(
        "option wan_open '0'", "option wan_open '0'\n\toption tls_port '5071'")), LAN,
        notes=notes)
    assert "tls" not in text.replace("tls_port", "")
    assert notes == ["option tls_cert is not set: no SIP over TLS (option tls_port ignored)"]
    with pytest.raises(uci.UciError, match="option tls_cert: 'cert.pem' is not an absolute"):
        uci.settings(uci.parse(LAN_ONLY_UCI.replace(
            "option wan_open '0'", "option wan_open '0'\n\toption tls_cert 'cert.pem'")), [])


def test_presence_routes_and_the_house_switch(tmp_path):
    text = uci.generate(uci.parse(LAN_ONLY_UCI), LAN)
    assert 'loadmodule "/usr/lib/ser/modules/presence.so"' in text
    assert 'modparam("presence", "db_url", "dbtext:///etc/ser/presence")' in text
    assert "route(presence);" in text and "handle_subscribe();" in text
    assert "watch yourself only" not in text
    off = uci.generate(uci.parse(LAN_ONLY_UCI.replace(
        "option wan_open '0'", "option wan_open '0'\n\toption presence_house '0'")), LAN)
    assert "watch yourself only" in off
    for name, cfg in (("on.cfg", text), ("off.cfg", off)):
        (tmp_path / name).write_text(cfg)
        out = ser_check(tmp_path / name)
        assert out.returncode == 0, out.stderr
    with pytest.raises(uci.UciError):
        uci.generate(uci.parse(LAN_ONLY_UCI.replace(
            "option wan_open '0'", "option wan_open '0'\n\toption presence_house 'maybe'")), LAN)
