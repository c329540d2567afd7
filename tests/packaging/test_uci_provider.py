"""serlite.uci with a ``config provider`` section (serlite/uci_provider.py): the uacreg table
(0600, the only place the password is), the routes (numbers out through the provider from
the LAN only, the provider's calls from its addresses only), the options' checks; every
generated config accepted by ``ser -c``."""

import re

import pytest

from serlite import uci
from serlite.modules._uac_reg import read_records

from .pkgtools import REPO
from .test_uci import LAN, LAN_WAN, run_uci, ser_check

BASE = """
config ser 'main'
	option enabled '1'
	list interface 'lan'
	option wan_open '{wan_open}'

config user
	option name '100'
	option password 'pw'

config user
	option name '101'
	option password 'pw1'
"""

PROVIDER = """
config provider 'sipco'
	option server '203.0.113.50:5080'
	option user '4930123'
	option auth_user 'auth4930123'
	option password 'pr0v:ider-"secret\\'
	option number '0301234567'
	list ring '101'
	list ring '100'
	option dial '{dial}'
	list address '198.51.100.0/28'
"""


def text(wan_open=0, dial="all", extra=""):
    return BASE.format(wan_open=wan_open) + PROVIDER.format(dial=dial) + extra


def test_the_table_holds_the_account_and_the_config_never_the_password(tmp_path):
    run = run_uci(tmp_path, text(), *LAN_WAN.items())
    assert run.returncode == 0, run.stderr
    cfg = (tmp_path / "run" / "ser.cfg").read_text()
    assert "pr0v" not in cfg
    table = tmp_path / "run" / "db" / "uacreg"
    assert table.stat().st_mode & 0o777 == 0o600
    records, warnings = read_records(f"dbtext://{tmp_path / 'run' / 'db'}")
    assert warnings == []
    (rec,) = records
    assert (rec.l_uuid, rec.l_username, rec.r_username, rec.r_domain, rec.auth_username,
            rec.auth_password, rec.auth_proxy, rec.expires) == (
        "sipco", "101", "4930123", "203.0.113.50", "auth4930123", 'pr0v:ider-"secret\\',
        "sip:203.0.113.50:5080", 600)
    assert f'modparam("uac", "reg_db_url", "dbtext://{tmp_path / "run" / "db"}")' in cfg
    assert ser_check(tmp_path / "run" / "ser.cfg").returncode == 0
    # the section removed: the table goes with it
    run = run_uci(tmp_path, BASE.format(wan_open=0), *LAN_WAN.items())
    assert run.returncode == 0 and not table.exists()


def test_the_wan_is_listened_on_for_the_provider_only_when_closed():
    cfg = uci.generate(uci.parse(text()), LAN_WAN)
    assert "listen=203.0.113.7" in cfg
    assert "route[from_provider] {" in cfg
    assert "    if (src_ip == 203.0.113.50) return(1);" in cfg
    assert "    if (src_ip == 198.51.100.0/28) return(1);" in cfg
    # a server by name: the addresses it resolved to for the REGISTER (tests/e2e/test_dns.py)
    assert "    if (uac_reg_from_provider()) return(1);" in cfg
    assert "        drop;       # option wan_open 0: the WAN is open to the provider only" in cfg
    assert "open to the provider only" not in uci.generate(uci.parse(text(wan_open=1)),
                                                           LAN_WAN)


def test_numbers_go_out_from_the_lan_only_and_never_an_extension():
    cfg = uci.generate(uci.parse(text()), LAN_WAN)
    out = cfg[cfg.index("route[provider_out] {"):]
    out = out[:out.index("\n}\n")]
    assert r'if ($rU !~ "^\+?[0-9]+$") return(-1);' in out
    assert 'if ($rU =~ "^(100|101)$") return(-1);' in out
    assert out.index("if (!route(from_lan))") < out.index("t_relay();")
    assert 'uac_replace_from("sip:4930123@203.0.113.50");' in out
    assert '$du = "sip:203.0.113.50:5080";' in out
    assert "rtpproxy_manage();" in out
    assert 't_on_failure("provider_auth");' in out and "uac_auth()" in cfg
    # the route is reached only after the password checks, for a URI no phone registered
    main = cfg[cfg.index("\nroute {"):]
    assert main.index("proxy_authorize") < main.index("route(provider_out);")


def test_a_dial_prefix_is_required_and_stripped():
    cfg = uci.generate(uci.parse(text(dial="0")), LAN_WAN)
    assert r'if ($rU !~ "^0\+?[0-9]+$") return(-1);' in cfg
    assert "    strip(1);" in cfg
    kept = uci.generate(uci.parse(text(dial="0").replace(
        "option dial '0'", "option dial '0'\n\toption strip '0'")), LAN_WAN)
    assert "strip(1)" not in kept


def test_the_providers_calls_ring_the_chosen_extensions_in_order():
    cfg = uci.generate(uci.parse(text()), LAN_WAN)
    inbound = cfg[cfg.index("route[provider_in] {"):]
    inbound = inbound[:inbound.index("\n}\n")]
    assert ('uac_reg_lookup("$rU", "$ru") || $rU == "0301234567" || $tU == "0301234567"'
            in inbound)
    assert re.search(r'\$ru = "sip:101@serlite";\s+if \(lookup\("location"\)\) \{\s+'
                     r'lookup_to_dset\("location", "sip:100@serlite"\);', inbound), inbound
    assert 'sl_send_reply("480", "Temporarily Unavailable");' in inbound
    # the provider's requests are taken before the password checks, and go nowhere else
    main = cfg[cfg.index("\nroute {"):]
    assert main.index("route(provider_in);") < main.index("www_authorize")


@pytest.mark.parametrize("extra,message", [
    ("\toption colour 'x'\n", None),
    ("\tlist ring '102'\n", "'102' is no account"),
    ("\toption transport 'sctp'\n", "not udp, tcp or tls"),
    ("\toption expires '5'\n", "not a number from 60 to 86400"),
    ("\toption dial 'abc'\n", "neither 'all' nor a prefix"),
    ("\toption number '03x'\n", "is not a number"),
    ("\tlist address 'example.net'\n", "not an address or network"),
])
def test_bad_provider_options(extra, message):
    notes = []
    sections = uci.parse(text(extra=extra))
    if message is None:
        uci.settings(sections, notes)
        assert any("'colour'" in n for n in notes), notes
        return
    with pytest.raises(uci.UciError, match=message):
        uci.settings(sections, notes)


def test_a_provider_needs_server_user_and_password():
    for option in ("server", "user", "password"):
        broken = re.sub(rf"\toption {option} .*\n", "", text())
        with pytest.raises(uci.UciError, match=f"option {option} is missing"):
            uci.settings(uci.parse(broken), [])


def test_a_provider_known_by_name_without_addresses_is_noted():
    notes = []
    named = text().replace("203.0.113.50:5080", "sip.example.net").replace(
        "\tlist address '198.51.100.0/28'\n", "")
    s = uci.settings(uci.parse(named), notes)
    assert s.provider.source_networks() == []
    assert any("list address" in n for n in notes), notes
    assert ser_check_text(uci.generate(uci.parse(named), LAN_WAN))


def test_tcp_and_tls_transports_name_the_next_hop():
    s = uci.settings(uci.parse(text(extra="\toption transport 'tcp'\n\toption proxy "
                                          "'192.0.2.9'\n")), [])
    assert s.provider.auth_proxy == "sip:192.0.2.9;transport=tcp"
    assert [str(n) for n in s.provider.source_networks()] == [
        "198.51.100.0/28", "203.0.113.50/32", "192.0.2.9/32"]
    s = uci.settings(uci.parse(text(extra="\toption transport 'tls'\n")), [])
    assert s.provider.auth_proxy == "sips:203.0.113.50:5080"


def test_a_disabled_provider_is_none():
    s = uci.settings(uci.parse(text(extra="\toption enabled '0'\n")), [])
    assert s.provider is None
    assert "uac.so" not in uci.generate(uci.parse(text(extra="\toption enabled '0'\n")), LAN)


def ser_check_text(cfg):
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write(cfg)
    out = ser_check(f.name)
    assert out.returncode == 0, out.stdout + out.stderr
    return True


SHIPPED = REPO / "files" / "etc" / "ser" / "ser.cfg"


def uncomment(text):
    """What the shipped config asks of its owner: the lines starting with "#" and no space
    (code, not prose) lose their "#", and so do the lines of a block such a line opens."""
    out, depth = [], 0
    for line in text.splitlines():
        m = re.match(r"^(\s*)#(\s*)(.*)$", line)
        if m and (depth > 0 or (m.group(2) == "" and m.group(3)[:1] not in ("", "!"))):
            line = m.group(1) + m.group(2) + m.group(3)
            code = line.split("#", 1)[0]
            depth += code.count("{") - code.count("}")
        out.append(line)
    assert depth == 0
    return "\n".join(out) + "\n"


def test_the_shipped_configs_provider_lines_uncommented_pass_ser_c(tmp_path):
    shipped = SHIPPED.read_text()
    assert ser_check(SHIPPED).returncode == 0
    assert "uac_auth()" in shipped and "\nloadmodule \"/usr/lib/ser/modules/uac.so\"" not in shipped
    filled = uncomment(shipped)
    for line in ('loadmodule "/usr/lib/ser/modules/uac.so"',
                 '    if (src_ip == 203.0.113.10) {', '        route(provider_in);',
                 '            route(provider_out);     # a number: out through your provider',
                 'route[provider_out] {', '    uac_replace_from("sip:ACCOUNT@sip.example.net");',
                 '            t_relay();', 'failure_route[provider_auth] {'):
        assert "\n" + line in filled, line
    cfg = tmp_path / "ser.cfg"
    cfg.write_text(filled)
    out = ser_check(cfg)
    assert out.returncode == 0, out.stdout + out.stderr


def test_trust_lan_with_a_provider_is_noted():
    notes = []
    uci.settings(uci.parse(text().replace("option wan_open '0'", "option wan_open '0'\n"
                                          "\toption trust_lan '1'")), notes)
    assert any("call out through the provider" in n for n in notes), notes
