"""serlite toward a real provider (Kamailio 5.6, tests/e2e/provider.py): uac_auth answers the
provider's 407 to an INVITE (qop=auth), outbound registration from the uacreg table answers
its 401 (no qop) and refreshes, a wrong password fails without hammering, and ser-ctl shows
the registrations (uac.reg_dump).  All on loopback; the provider's "phone" is a sipp UAS."""

import re
import subprocess
import sys
import time

import pytest

from . import sipnet
from .provider import Provider

LOCAL = "127.0.0.1"


def serlite_config(provider, *, credential="house:127.0.0.1:secret", modparams=""):
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
        sl_send_reply("200", "OK");
        exit;
    }}
    record_route();
    t_on_failure("provider");
    $du = "sip:{host}:{port}";
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
