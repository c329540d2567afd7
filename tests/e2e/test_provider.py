"""serlite toward a real provider (Kamailio 5.6, tests/e2e/provider.py): uac_auth answers the
provider's 407 to an INVITE (qop=auth), outbound registration from the uacreg table answers
its 401 (no qop) and refreshes, a wrong password fails without hammering, and ser-ctl shows
the registrations (uac.reg_dump).  All on loopback; the provider's "phone" is a sipp UAS."""

import re
import signal
import subprocess
import sys
import time

import pytest

from . import sipnet
from .provider import Provider

LOCAL = "127.0.0.1"


def serlite_config(provider, *, credential="house:127.0.0.1:secret", modparams="",
                   before_relay="", options='sl_send_reply("200", "OK");'):
    host, port = provider.addr
    return f"""\
debug=3
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "uac.so"
modparam("uac", "credential", "{credential}")
{modparams}

route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
        }}
        exit;
    }}
    if (method == "OPTIONS") {{
        {options}
        exit;
    }}
    if (uac_reg_lookup("$rU", "$ru")) {{
        # the provider's call to the house's registration: to the local user
        record_route();
        t_relay();
        exit;
    }}
    record_route();
    t_on_failure("provider");
    $du = "sip:{host}:{port}";
    {before_relay}
    t_relay();
}}

failure_route[provider] {{
    if (t_check_status("401|407")) {{
        if (uac_auth()) {{
            t_on_failure("provider");
            t_relay();
        }}
    }}
}}
"""


@pytest.fixture
def provider(tmp_path):
    started = []

    def start(**kw):
        p = Provider(tmp_path / f"provider{len(started) + 1}", LOCAL, **kw)
        started.append(p)
        return p.start()
    yield start
    for p in started:
        p.stop()


def _messages(run, method):
    log = (run.workdir / f"{run.name}.messages.log").read_text(errors="replace")
    return re.findall(rf"message received \[\d+\] bytes :\s*\n\s*({re.escape(method)} .*?)\n\n",
                      log, re.S)


def test_uac_auth_answers_the_providers_407(ser, provider, tmp_path, tools):
    uas = sipnet.start_uas(workdir=tmp_path, trace_msg=True, name="provphone")
    kam = provider(accounts={"house": "secret"}, route_to=(uas.host, uas.port))
    server = ser(serlite_config(kam))
    with uas:
        call = sipnet.run_uac(server.addr, workdir=tmp_path, service="0301234567",
                              trace_msg=True, name="lanphone")
        call.assert_ok(1)
        res = uas.wait()
    assert res.ok(1), res.describe()
    # the provider challenged once and let the answer through
    invites = kam.received("INVITE")
    assert [i[3] for i in invites] == ["1", "2"], invites
    assert len(re.findall(r"PROVIDER-AUTHORIZED INVITE", kam.log())) == 1
    # behind the provider: the INVITE with CSeq 2, and the caller's ACK and BYE shifted the
    # same (the caller sent CSeq 1 ACK and 2 BYE)
    seen = {m: _messages(res, m) for m in ("INVITE", "ACK", "BYE")}
    assert re.search(r"CSeq:\s*2 INVITE", seen["INVITE"][0]), seen["INVITE"]
    assert re.search(r"CSeq:\s*2 ACK", seen["ACK"][0]), seen["ACK"]
    assert re.search(r"CSeq:\s*3 BYE", seen["BYE"][0]), seen["BYE"]
    # the caller saw its own CSeq in the responses (sipp would not match them otherwise),
    # and never the 407
    caller = (tmp_path / "lanphone.messages.log").read_text(errors="replace")
    assert "407" not in re.findall(r"SIP/2.0 (\d+)", caller)
    assert re.search(r"SIP/2.0 200 OK.*?CSeq:\s*1 INVITE", caller, re.S)


def test_replace_from_toward_the_provider_restored_for_the_caller(ser, provider, tmp_path,
                                                                 tools):
    uas = sipnet.start_uas(workdir=tmp_path, trace_msg=True, name="provphone")
    kam = provider(accounts={"house": "secret"}, route_to=(uas.host, uas.port))
    server = ser(serlite_config(
        kam, before_relay='uac_replace_from("The House", "sip:house@127.0.0.1");'))
    with uas:
        call = sipnet.run_uac(server.addr, workdir=tmp_path, service="0301234567",
                              trace_msg=True, name="lanphone")
        call.assert_ok(1)
        res = uas.wait()
    assert res.ok(1), res.describe()
    # the provider and its phone know the call as the house's account's, in every request
    # (the display name in the INVITE; the later ones carry the URI, as Kamailio's ;vsf=)
    for m in _messages(res, "INVITE"):
        assert re.search(r'From: "The House" <sip:house@127.0.0.1>;tag=\S+', m), m
    for method in ("ACK", "BYE"):
        seen = _messages(res, method)
        assert seen and all(re.search(r'From: <sip:house@127.0.0.1>;tag=\S+', m)
                            for m in seen), seen
    assert all(":house@" in r[1] for r in kam.received("INVITE"))
    # the caller never sees it: its own From in every response
    caller = (tmp_path / "lanphone.messages.log").read_text(errors="replace")
    froms = re.findall(r"^From: (.*)$", caller, re.M)
    assert froms and all("sip:alice@" in f and "house" not in f for f in froms), froms


def test_cancel_after_uac_auth_carries_the_resent_invites_cseq(ser, provider, tmp_path, tools):
    """The caller gives up while the provider's phone rings: the CANCEL serlite sends the
    provider is for the INVITE with credentials (CSeq 2, RFC 3261 9.1), so the provider
    matches it and the call ends with 487 at the caller (with its own CSeq 1)."""
    uas = sipnet.start_uas(workdir=tmp_path, scenario="uas_ring_cancel.xml", name="provphone")
    kam = provider(accounts={"house": "secret"}, route_to=(uas.host, uas.port))
    server = ser(serlite_config(kam))
    with uas:
        call = sipnet.run_uac(server.addr, workdir=tmp_path, service="0301234567",
                              scenario="uac_cancel.xml", trace_msg=True, name="lanphone")
        call.assert_ok(1)
        res = uas.wait()
    assert res.ok(1), res.describe()
    assert [c[3] for c in kam.received("CANCEL")] == ["2"]
    caller = (tmp_path / "lanphone.messages.log").read_text(errors="replace")
    assert re.search(r"SIP/2.0 487 .*?CSeq:\s*1 INVITE", caller, re.S)


def test_uac_auth_wrong_password_gives_up(ser, provider, tmp_path, tools):
    uas = sipnet.start_uas(workdir=tmp_path, name="provphone")
    kam = provider(accounts={"house": "secret"}, route_to=(uas.host, uas.port))
    server = ser(serlite_config(kam, credential="house:127.0.0.1:wrong"))
    with uas:
        call = sipnet.run_uac(server.addr, workdir=tmp_path, service="0301234567",
                              scenario="uac_invite_407.xml", name="lanphone")
        uas.kill()
    assert call.ok(1), call.describe()
    # one answer with the wrong password, then the 407 goes to the caller: no third INVITE
    assert [i[3] for i in kam.received("INVITE")] == ["1", "2"]
    sipnet.wait_log(server, "refused the credentials")


# --- outbound registration ------------------------------------------------------------------

UACREG_HEADER = ("id(int,auto) l_uuid(string) l_username(string) l_domain(string) "
                 "r_username(string) r_domain(string) realm(string) auth_username(string) "
                 "auth_password(string,null) auth_ha1(string,null) auth_proxy(string) "
                 "expires(int) flags(int) reg_delay(int) contact_addr(string,null) "
                 "socket(string,null)")


def uacreg_db(directory, provider, *, password="secret", expires=60, user="house",
              local="home.lan"):
    """A dbtext directory with Kamailio 5.6's uacreg table (one record) and its version."""
    directory.mkdir(parents=True, exist_ok=True)
    host, port = provider.addr
    (directory / "version").write_text("table_name(str) table_version(int)\nuacreg:5\n")
    (directory / "uacreg").write_text(
        UACREG_HEADER + "\n"
        f"1:house1:100:{local}:{user}:{host}:{host}:{user}:{password}::"
        f"sip\\:{host}\\:{port}:{expires}:0:0::\n")
    return f"dbtext://{directory}"


# OPTIONS asks the script's uac_reg_status("house1"): 200 registered, 480 not
STATUS_PROBE = """if (uac_reg_status("house1")) {
            sl_send_reply("200", "Registered");
        } else {
            sl_send_reply("480", "Not Registered");
        }"""


def reg_status(server):
    return sipnet.status_of(sipnet.barrier(server.addr))


def registering_config(provider, db_url, *, modparams=""):
    return serlite_config(provider, options=STATUS_PROBE, modparams=f"""\
modparam("uac", "reg_db_url", "{db_url}")
modparam("uac", "reg_timer_interval", 5)
{modparams}""")


def ser_ctl(server, *args):
    out = subprocess.run([sys.executable, "-m", "serlite.ctl", "-s", server.ctl_sock, *args],
                         capture_output=True, text=True, timeout=10, cwd=sipnet.REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_registers_at_the_provider_and_refreshes(ser, provider, tmp_path, tools):
    kam = provider(accounts={"house": "secret"}, min_expires=10)
    # 5 s asked, the provider wants 10: 423, then 10 s, refreshed after 5 s
    db = uacreg_db(tmp_path / "db", kam, expires=5)
    server = ser(registering_config(kam, db))
    kam.wait_log(r"PROVIDER-RX REGISTER", count=3)   # 423, 401, 200
    sipnet.wait_log(server, r"uac: house@127.0.0.1 registered")
    contact = f"sip:house1@127.0.0.1:{server.port}"
    assert kam.contacts("house") == [contact]
    assert 0 < kam.expires_of("house")[0] <= 10
    assert reg_status(server) == 200
    shown = ser_ctl(server, "uac")
    assert re.search(r"house1\s+house@127.0.0.1\s+registered\s+200 OK", shown), shown
    # the refresh: two more REGISTERs (401, 200) before the 10 s run out, same Call-ID
    started = time.monotonic()
    kam.wait_log(r"PROVIDER-RX REGISTER", count=5, timeout=12)
    assert time.monotonic() - started < 10
    regs = kam.received("REGISTER")
    assert len({r[2] for r in regs}) == 1, regs     # one Call-ID (RFC 3261 10.2.4)
    assert [int(r[3]) for r in regs] == list(range(1, len(regs) + 1))
    assert kam.contacts("house") == [contact]


def test_wrong_password_fails_without_hammering(ser, provider, tmp_path, tools):
    kam = provider(accounts={"house": "secret"})
    db = uacreg_db(tmp_path / "db", kam, password="wrong")
    server = ser(registering_config(kam, db))
    sipnet.wait_log(server, r"registration of house@127.0.0.1 \(house1\) failed: 401")
    shown = ser_ctl(server, "registrations")
    assert re.search(r"house1\s+house@127.0.0.1\s+failed\s+401", shown), shown
    assert kam.contacts("house") == []
    assert reg_status(server) == 480
    # a window of 3 s: nothing more reaches the provider (reg_retry_interval 0: never again)
    before = len(kam.received("REGISTER"))
    assert before == 2
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:      # bounded: the window is the observation
        assert len(kam.received("REGISTER")) == before
        time.sleep(0.2)


def test_the_providers_call_reaches_the_local_user(ser, provider, tmp_path, tools):
    """A call to the house's number at the provider: Kamailio sends it to the Contact serlite
    registered (sip:house1@serlite), uac_reg_lookup maps it to the local user (l_username@
    l_domain: a sipp UAS here) and the call goes through."""
    uas = sipnet.start_uas(workdir=tmp_path, trace_msg=True, name="lanphone")
    kam = provider(accounts={"house": "secret"})
    db = uacreg_db(tmp_path / "db", kam, local=f"{uas.host}\\:{uas.port}")
    server = ser(registering_config(kam, db))
    sipnet.wait_log(server, r"uac: house@127.0.0.1 registered")
    with uas:
        call = sipnet.run_uac(kam.addr, workdir=tmp_path, service="house", name="pstn")
        call.assert_ok(1)
        res = uas.wait()
    assert res.ok(1), res.describe()
    invite, = _messages(res, "INVITE")
    assert invite.startswith(f"INVITE sip:100@{uas.host}:{uas.port} SIP/2.0"), invite
    assert len(re.findall(r"PROVIDER-TO-SUBSCRIBER INVITE", kam.log())) == 1


def test_a_silent_provider_is_retried_later_not_hammered(ser, provider, tmp_path, tools):
    """Registered, then the provider goes away: the refresh times out (tm's fr_timer, 1 s
    here), the registration waits 30 s before the next try (no retransmission storm)."""
    kam = provider(accounts={"house": "secret"}, min_expires=10)
    db = uacreg_db(tmp_path / "db", kam, expires=10)
    server = ser(registering_config(kam, db, modparams='modparam("tm", "fr_timer", 1000)'))
    sipnet.wait_log(server, r"uac: house@127.0.0.1 registered")
    kam.stop()
    m = sipnet.wait_log(server, r"registration of house@127.0.0.1 \(house1\): 408 Request "
                                r"Timeout; tried again in (\d+) s", timeout=12)
    assert int(m.group(1)) == 30
    shown = ser_ctl(server, "uac")
    assert re.search(r"house1\s+house@127.0.0.1\s+waiting\s+408 Request Timeout", shown), shown


def test_sighup_keeps_the_registration(ser, provider, tmp_path, tools):
    """A reload with the same table: the registration goes on as it was (no REGISTER storm at
    the provider); uac_reg_status and ser-ctl still say registered."""
    kam = provider(accounts={"house": "secret"})
    db = uacreg_db(tmp_path / "db", kam, expires=60)
    server = ser(registering_config(kam, db))
    sipnet.wait_log(server, r"uac: house@127.0.0.1 registered")
    before = len(kam.received("REGISTER"))
    mark = len(server.log())
    server.proc.send_signal(signal.SIGHUP)
    sipnet.wait_log(server, r"reloaded", since=mark)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:      # bounded window: nothing is sent again
        assert len(kam.received("REGISTER")) == before
        time.sleep(0.2)
    assert reg_status(server) == 200
    assert re.search(r"house1\s+house@127.0.0.1\s+registered", ser_ctl(server, "uac"))


def test_uac_auth_takes_the_registrations_credentials(ser, provider, tmp_path, tools):
    """No credential modparam: uac_auth answers the provider's 407 with the auth_username and
    auth_password of the uacreg record whose realm it is (Kamailio's uac_auth with
    uac_reg's credentials)."""
    uas = sipnet.start_uas(workdir=tmp_path, name="provphone")
    kam = provider(accounts={"house": "secret"}, route_to=(uas.host, uas.port))
    db = uacreg_db(tmp_path / "db", kam)
    server = ser(registering_config(kam, db).replace(
        'modparam("uac", "credential", "house:127.0.0.1:secret")', ""))
    sipnet.wait_log(server, r"uac: house@127.0.0.1 registered")
    with uas:
        call = sipnet.run_uac(server.addr, workdir=tmp_path, service="0301234567",
                              name="lanphone")
        call.assert_ok(1)
        res = uas.wait()
    assert res.ok(1), res.describe()
    assert len(re.findall(r"PROVIDER-AUTHORIZED INVITE", kam.log())) == 1


def test_a_new_contact_address_registers_again_at_once(ser, provider, tmp_path, tools):
    """The address the provider reaches us at changes (here reg_contact_addr, by a reload; on
    the router the WAN address): the registration is sent again at once with the new Contact,
    and the provider's location has it."""
    kam = provider(accounts={"house": "secret"})
    db = uacreg_db(tmp_path / "db", kam, expires=60)
    server = ser(registering_config(kam, db))
    sipnet.wait_log(server, r"uac: house@127.0.0.1 registered")
    assert kam.contacts("house") == [f"sip:house1@127.0.0.1:{server.port}"]
    moved = f"127.0.0.1:{server.port + 1}"
    server.cfg.write_text(registering_config(
        kam, db, modparams=f'modparam("uac", "reg_contact_addr", "{moved}")'))
    mark = len(server.log())
    server.proc.send_signal(signal.SIGHUP)
    sipnet.wait_log(server, rf"house1: our address is now {moved}", since=mark)
    sipnet.wait_log(server, r"uac: house@127.0.0.1 registered", since=mark)
    assert f"sip:house1@{moved}" in kam.contacts("house")
    # and the control command registers again on demand (the WAN's hotplug hook)
    before = len(kam.received("REGISTER"))
    assert ser_ctl_call(server, "uac.reg_refresh") == {"refreshed": 1}
    kam.wait_log(r"PROVIDER-RX REGISTER", count=before + 2)


def ser_ctl_call(server, cmd, *args):
    from serlite.control.client import Client
    with Client(server.ctl_sock) as client:
        return client.call(cmd, *args)


def test_the_provider_runs_on_the_wan_side_of_a_network_namespace(tmp_path, tools):
    """The harness as the next tests need it: Kamailio in the "internet" namespace of
    tests/e2e/netns.py, reached from the router's WAN address (sipsak registers there)."""
    from . import netns
    net = netns.Net()
    kam = None
    try:
        kam = Provider(tmp_path / "provider", netns.INTERNET, accounts={"house": "secret"},
                       prefix=net.exec_args(net.internet)).start()
        out = subprocess.run([*net.exec_args(net.router), "sipsak", "-U", "-C",
                              f"sip:house@{netns.ROUTER_WAN}:5060", "-s",
                              f"sip:house@{netns.INTERNET}:{kam.port}", "-a", "secret",
                              "-u", "house"],
                             capture_output=True, text=True, timeout=20)
        assert kam.contacts("house") == [f"sip:house@{netns.ROUTER_WAN}:5060"], out.stdout
        assert all(r[4].startswith(netns.ROUTER_WAN + ":") for r in kam.received("REGISTER"))
    finally:
        if kam is not None:
            kam.stop()
        net.close()


def test_uac_auth_without_a_relay_still_answers_the_caller(ser, provider, tmp_path, tools):
    """A failure_route that calls uac_auth() but relays nothing: the caller gets a final
    answer (500) rather than waiting forever for the challenge uac_auth took."""
    kam = provider(accounts={"house": "secret"})
    cfg = serlite_config(kam).replace("""            t_on_failure("provider");
            t_relay();""", "            log(1, \"answered, not relayed\\n\");")
    server = ser(cfg)
    call = sipnet.run_uac(server.addr, workdir=tmp_path, service="0301234567",
                          scenario="uac_invite_500.xml", name="lanphone")
    assert call.ok(1), call.describe()
