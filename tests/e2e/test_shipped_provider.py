"""The shipped ser.cfg's provider lines, filled in as its comments ask (uncommented, the
provider's address, domain and account written in), against a real provider (Kamailio 5.6,
tests/e2e/provider.py, on 127.0.0.2, challenging every INVITE): the account of a config
provider section (the uacreg table serlite.uci writes beside the subscriber table, also
with option config) is registered, and alice's call to a number from the house goes out
through the provider, its 407 answered by uac_auth, to the provider's phone (a sipp UAS)."""

import re
import subprocess
import sys

from . import sipnet
from .provider import Provider
from .test_shipped_config import SHIPPED, USERS, auth_args, shipped_config

from tests.packaging.test_uci_provider import uncomment

PROVIDER_HOST = "127.0.0.2"     # not the house's 127.0.0.1: the phones are not the provider


def test_the_shipped_configs_provider_lines_filled_in_call_out(ser, tmp_path, tools):
    uas = sipnet.start_uas(workdir=tmp_path, name="provphone")
    kam = Provider(tmp_path / "provider", PROVIDER_HOST, accounts={"house": "pr0v"},
                   route_to=(uas.host, uas.port), invite_auth=True).start()
    try:
        host = f"{PROVIDER_HOST}:{kam.port}"
        uci = tmp_path / "ser.uci"
        uci.write_text(f"config ser 'main'\n\toption config '{SHIPPED}'\n" + "".join(
            f"config user\n\toption name '{u}'\n\toption password '{p}'\n"
            for u, p in USERS.items()) + f"config provider 'sipco'\n\toption server '{host}'\n"
            "\toption user 'house'\n\toption password 'pr0v'\n\tlist ring 'alice'\n")
        gen = subprocess.run([sys.executable, "-m", "serlite.uci", "-c", str(uci),
                              "-o", str(tmp_path / "run")], cwd=sipnet.REPO,
                             capture_output=True, text=True, timeout=30)
        assert gen.returncode == 0 and gen.stdout.strip() == str(SHIPPED), gen.stderr
        assert (tmp_path / "run" / "db" / "uacreg").exists()
        text = uncomment(shipped_config(tmp_path, outside=True))
        for old, new in (('modparam("uac", "reg_db_url", "dbtext:///var/etc/ser/db")',
                          f'modparam("uac", "reg_db_url", "dbtext://{tmp_path}/run/db")'),
                         ("src_ip == 203.0.113.10)", f"src_ip == {PROVIDER_HOST})"),
                         ("sip:ACCOUNT@sip.example.net", f"sip:house@{PROVIDER_HOST}"),
                         ('rewritehostport("sip.example.net")', f'rewritehostport("{host}")')):
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        server = ser(text)
        sipnet.wait_log(server, rf"uac: house@{PROVIDER_HOST} registered", timeout=10)
        assert kam.contacts("house") == [f"sip:sipco@127.0.0.1:{server.port}"]
        with uas:
            call = sipnet.run_uac(server.addr, workdir=tmp_path, service="0301234567",
                                  scenario="auth_invite.xml", extra=auth_args(server),
                                  name="alice")
            call.assert_ok(1)
            res = uas.wait()
        assert res.ok(1), res.describe()
        invites = [r for r in kam.received("INVITE") if ":house@" in r[1]]
        assert [r[3] for r in invites] == ["2", "3"], invites   # alice's 2nd, then uac_auth's
        assert len(re.findall(r"PROVIDER-AUTHORIZED INVITE", kam.log())) == 1
    finally:
        kam.stop()
