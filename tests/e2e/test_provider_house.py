"""The house reaches the world through its provider (issue 15): the router runs serlite on the
UCI-generated config with a ``config provider`` section; the provider is Kamailio 5.6
(tests/e2e/provider.py) in the internet namespace of tests/e2e/netns.py, asking every INVITE
to log in (407) as a real provider does; its "PSTN" phone is a baresip AudioPhone in the
internet namespace registered at Kamailio.

* serlite registers the house's account at Kamailio (the uacreg table the generator wrote);
* a LAN phone dials the far number: Kamailio's 407 is answered by uac_auth, the far phone
  rings and answers, each hears the other through the relay;
* the far phone calls the house (Kamailio sends it to our registration's Contact): both LAN
  phones ring (the provider section's ring list), one answers, audio both ways;
* nothing from the WAN reaches the trunk: an INVITE to a number from the Internet is
  challenged, refused even with an extension's right password, and SIPVicious gets nothing;
  one from the provider's own address to a number is refused too; with wan_open 0 a
  stranger's request gets no answer at all;
* a wrong provider password shows as failed in ser-ctl and on the status page, and the
  provider gets no further REGISTER in a window.

Bounded: each call CALL_SECONDS, each wait a few seconds; about 40 s.  Needs root, ip, nft,
baresip, kamailio and sipvicious.
"""

import os
import re
import secrets
import shutil
import subprocess
import time

import pytest

from serlite.sip import digest

from . import netns, sipnet
from .netns import INTERNET, POOL, ROUTER_WAN
from .provider import Provider
from .test_attack import PASSWORD, USER, RouterServer, generate
from .test_audio import (CALL_SECONDS, SETUP_SECONDS, AudioPhone, NotConnected,
                         assert_hear_each_other)

ACCOUNT, ACCOUNT_PASSWORD = "house", "pr0v1der-S3cret"
FAR, FAR_PASSWORD = "0305550100", "far-phone-pw"     # a number at the provider
HOME_NUMBER = "0301234567"
SECTION = "sipco"                                   # the registration's l_uuid
LAN2_USER, LAN2_PASSWORD = "101", "pw-101-lan2"


def provider_uci(password=ACCOUNT_PASSWORD):
    return (f"\nconfig user\n\toption name '{LAN2_USER}'\n\toption password '{LAN2_PASSWORD}'\n"
            f"\nconfig provider '{SECTION}'\n\toption server '{INTERNET}'\n"
            f"\toption user '{ACCOUNT}'\n\toption password '{password}'\n"
            f"\toption number '{HOME_NUMBER}'\n\tlist ring '{USER}'\n\tlist ring '{LAN2_USER}'\n"
            f"\toption dial 'all'\n\toption expires '120'\n")


@pytest.fixture(scope="module")
def net():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"):
        pytest.fail("the provider tests need root, ip and nft: run tests/run as root")
    for tool in ("baresip", "kamailio", "sipvicious_svwar"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.fail(f"{tool} is not installed: run tests/run, which installs it")
    n = netns.Net(pool_size=2, phones=True)
    yield n
    n.close()


@pytest.fixture(scope="module")
def kam(net, tmp_path_factory):
    p = Provider(tmp_path_factory.mktemp("provider"), INTERNET, port=5060,
                 accounts={ACCOUNT: ACCOUNT_PASSWORD, FAR: FAR_PASSWORD},
                 prefix=net.exec_args(net.internet), invite_auth=True)
    p.start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def router(net, kam, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("router")
    text = generate(workdir, provider_uci())
    assert ACCOUNT_PASSWORD not in text         # the password is in the table only
    uacreg = workdir / "run" / "db" / "uacreg"
    assert oct(uacreg.stat().st_mode & 0o777) == "0o600"
    server = RouterServer(net, workdir, text)
    server.workdir_root = workdir
    server.start()
    sipnet.wait_log(server, rf"uac: {ACCOUNT}@{INTERNET} registered", timeout=15)
    yield server
    alive = server.running()
    server.stop()
    assert ACCOUNT_PASSWORD not in server.log()
    if not alive:
        pytest.fail("serlite exited during the provider tests:\n" + server.tail(),
                    pytrace=False)


@pytest.fixture
def phones(request, net, router, kam, tmp_path):
    """phones(("lan", {...}), ...) -> started, registered, connected AudioPhones."""
    request.node._serlite_servers = [router]
    started = []

    def start(*places):
        for i, place in enumerate(places):
            place, kwargs = place if isinstance(place, tuple) else (place, {})
            started.append(AudioPhone(net, tmp_path, place, 4440 + i, **kwargs))
        for phone in started:
            phone.wait_registered()
            phone.connect()
        return started

    yield start
    for phone in started:
        phone.stop()


def far_phone():
    """The provider's phone: at the WAN phone's address, registered at Kamailio."""
    return ("wan", {"user": FAR, "registrar": INTERNET, "password": FAR_PASSWORD})


def talk(caller, callee, dialled):
    """caller dials ``dialled``; callee answers by itself; CALL_SECONDS of audio; hang up."""
    caller.command("dial", dialled)
    try:
        callee.wait_event("CALL_ESTABLISHED", timeout=SETUP_SECONDS)
    except AssertionError as e:
        raise NotConnected(str(e)) from None
    caller.wait_event("CALL_ESTABLISHED")
    time.sleep(CALL_SECONDS)        # the call itself: audio flows for this long
    caller.command("hangup")
    callee.wait_event("CALL_CLOSED")


def test_the_house_account_is_registered_at_the_provider(router, kam):
    assert kam.contacts(ACCOUNT) == [f"sip:{SECTION}@{ROUTER_WAN}:5060"]
    (row,) = router.ctl("uac")
    assert row["state"] == "registered" and row["last_status"] == 200, row


def test_a_lan_phone_dials_a_number_and_the_providers_phone_answers(phones, router, kam):
    before = len(kam.received("INVITE"))
    mark = len(router.log())
    lan, far = phones("lan", far_phone())
    talk(lan, far, FAR)
    # the provider's 407 is no missed call (acc), the call is answered
    assert "ACC: call missed" not in router.log()[mark:]
    assert re.search(r"ACC: transaction answered: .*method=INVITE.*code=200",
                     router.log()[mark:])
    for phone in (lan, far):
        phone.stop()
    assert_hear_each_other(lan, far)
    # the provider challenged serlite's INVITE (407) and took the answer uac_auth gave: the
    # INVITE from the house's account (uac_replace_from), its CSeq then one more (RFC 3261
    # 22.2), one Call-ID
    from_house = [r for r in kam.received("INVITE")[before:] if f":{ACCOUNT}@" in r[1]]
    assert len(from_house) == 2 and from_house[0][2] == from_house[1][2], from_house
    assert int(from_house[1][3]) == int(from_house[0][3]) + 1, from_house
    assert all(r[4].startswith(ROUTER_WAN + ":") for r in from_house), from_house
    assert re.search(rf"PROVIDER-AUTHORIZED INVITE sip:{ACCOUNT}@", kam.log())


def test_the_providers_phone_calls_the_house_and_the_chosen_phones_ring(phones, router, kam):
    """Both extensions of the ring list ring (forking); 100 answers, 101 is CANCELled; the far
    phone and 100 hear each other through the relay."""
    far, lan, lan2 = phones(far_phone(), "lan", ("lan2", {"answermode": "manual"}))
    far.command("dial", f"sip:{ACCOUNT}@{INTERNET}")
    lan2.wait_event("CALL_INCOMING", timeout=SETUP_SECONDS)
    lan.wait_event("CALL_ESTABLISHED", timeout=SETUP_SECONDS)
    far.wait_event("CALL_ESTABLISHED", timeout=SETUP_SECONDS)
    lan2.wait_event("CALL_CLOSED", timeout=SETUP_SECONDS)          # CANCELled
    time.sleep(CALL_SECONDS)        # the call itself
    (session,) = router.ctl("rtpproxy")["sessions"]
    assert session["from_caller"]["packets"] > 0, session
    far.command("hangup")
    lan.wait_event("CALL_CLOSED")
    for phone in (far, lan, lan2):
        phone.stop()
    assert_hear_each_other(far, lan)
    assert re.search(r"PROVIDER-TO-SUBSCRIBER INVITE", kam.log())


# --- toll fraud ----------------------------------------------------------------------------

def _invite(peer, number, auth=None, cseq=1, call_id=None):
    ruri = f"sip:{number}@{ROUTER_WAN}"
    req = sipnet.make_request(
        "INVITE", ruri, via=(peer.host, peer.port), to=ruri, from_=f"sip:{USER}@{ROUTER_WAN}",
        call_id=call_id, cseq=cseq,
        headers=[f"Contact: <sip:{USER}@{peer.host}:{peer.port}>",
                 "User-Agent: Grandstream GXP1625", *([auth] if auth else [])])
    peer.send(req, (ROUTER_WAN, 5060))
    finals = [r for r in peer.recv_until(sipnet.is_final, 3.0) if sipnet.is_final(r)]
    assert finals, "no final answer from the router"
    return finals[0]


def test_nothing_from_the_wan_reaches_the_trunk(net, router, kam):
    """From the Internet: an INVITE to a number is challenged; with extension 100's right
    password it is refused (numbers go out only from the house); SIPVicious's INVITE scan of
    numbers gets no answer; Kamailio receives no INVITE meanwhile."""
    before = len(kam.received("INVITE"))
    with net.inside(net.internet):
        peer = sipnet.UdpPeer(host=f"{POOL}.1")
    try:
        call_id = secrets.token_hex(8) + "@wan"
        first = _invite(peer, "00900123456", call_id=call_id)
        assert sipnet.status_of(first) == 407, first
        challenge = digest.parse_challenge(sipnet.header_values(first, "Proxy-Authenticate")[0])
        ha1 = digest.ha1(USER, challenge["realm"], PASSWORD)
        auth = "Proxy-Authorization: " + digest.authorization(
            challenge, "INVITE", f"sip:00900123456@{ROUTER_WAN}", USER, ha1, "0a4f113b")
        second = _invite(peer, "00900123456", auth=auth, cseq=2, call_id=call_id)
        assert sipnet.status_of(second) == 403, second
        assert b"numbers only from the house" in second
    finally:
        peer.close()
    packets = net.wan_sip_packets()
    scan = subprocess.run([*net.exec_args(net.internet), "sipvicious_svwar", "-m", "INVITE",
                           "-e", "00900123456,0049900123456,100", "-t", "0.2",
                           ROUTER_WAN], capture_output=True, text=True, timeout=60)
    # its first probe (User-Agent friendly-scanner) is dropped unanswered, and it gives up
    assert net.wan_sip_packets() - packets >= 1, scan.stdout + scan.stderr
    assert "found nothing" in scan.stderr, scan.stdout + scan.stderr
    assert len(kam.received("INVITE")) == before, kam.received("INVITE")[before:]


def test_the_providers_own_address_only_rings_the_house(net, router, kam):
    """A request from the provider's address is taken without a password, and so can never
    be sent on: an INVITE from 192.0.2.2 to a number is refused (404), none reaches Kamailio;
    an OPTIONS keepalive from there is answered."""
    before = len(kam.received("INVITE"))
    with net.inside(net.internet):
        peer = sipnet.UdpPeer(host=INTERNET)
    try:
        answer = _invite(peer, "00900123456")
        assert sipnet.status_of(answer) == 404, answer
        uri = f"sip:{ROUTER_WAN}"
        peer.send(sipnet.make_request("OPTIONS", uri, via=(peer.host, peer.port), to=uri),
                  (ROUTER_WAN, 5060))
        finals = [r for r in peer.recv_until(sipnet.is_final, 3.0) if sipnet.is_final(r)]
        assert finals and sipnet.status_of(finals[0]) == 200, finals
    finally:
        peer.close()
    assert len(kam.received("INVITE")) == before, kam.received("INVITE")[before:]


def test_with_the_wan_closed_only_the_provider_is_served_there(net, router, kam):
    """option wan_open 0 (the default) with a provider: serlite listens on the WAN for the
    provider alone; a stranger's INVITE gets no answer at all, and the registration goes on
    (ser-ctl reg_refresh, the WAN's ifup hook, registers again at once)."""
    text = generate(router.workdir_root, "\toption wan_open '0'\n" + provider_uci())
    assert "open to the provider only" in text
    router.cfg.write_text(text)
    mark = len(router.log())
    router.proc.send_signal(1)      # SIGHUP; the record is the same: kept registered
    sipnet.wait_log(router, r"reloaded", since=mark)
    with net.inside(net.internet):
        peer = sipnet.UdpPeer(host=f"{POOL}.2")
    try:
        ruri = f"sip:00900123456@{ROUTER_WAN}"
        peer.send(sipnet.make_request("INVITE", ruri, via=(peer.host, peer.port), to=ruri,
                                      headers=["User-Agent: Grandstream GXP1625"]),
                  (ROUTER_WAN, 5060))
        assert peer.recv_until(sipnet.is_final, 2.0) == []      # dropped: no answer
    finally:
        peer.close()
    before = len(kam.received("REGISTER"))
    shown = subprocess.run([*router.python, "-m", "serlite.ctl", "-s", router.ctl_sock,
                            "reg_refresh"], cwd=sipnet.REPO, capture_output=True, text=True,
                           timeout=10)
    assert shown.returncode == 0 and "'refreshed': 1" in shown.stdout, shown
    kam.wait_log(r"PROVIDER-RX REGISTER", count=before + 2)
    deadline = time.monotonic() + 5
    while True:                     # the 200 is on its way back: polled, bounded
        (row,) = router.ctl("uac")
        if row["state"] == "registered" and row["last_status"] == 200:
            break
        assert time.monotonic() < deadline, row
        time.sleep(0.1)
    assert kam.contacts(ACCOUNT) == [f"sip:{SECTION}@{ROUTER_WAN}:5060"]


# --- a wrong password (last: it changes the router's provider section) --------------------

def test_a_wrong_provider_password_shows_failed_without_hammering(router, kam):
    from serlite import webui
    from serlite.control import page
    workdir = router.workdir_root
    text = generate(workdir, provider_uci(password="wrong-password"))
    router.cfg.write_text(text)
    before = len(kam.received("REGISTER"))
    mark = len(router.log())
    router.proc.send_signal(1)      # SIGHUP: the changed record starts afresh
    sipnet.wait_log(router, rf"registration of {ACCOUNT}@{INTERNET} \({SECTION}\) failed: "
                            r"401", since=mark, timeout=10)
    (row,) = router.ctl("uac")
    assert row["state"] == "failed" and row["last_status"] == 401, row
    shown = subprocess.run([*router.python, "-m", "serlite.ctl", "-s", router.ctl_sock, "uac"],
                           cwd=sipnet.REPO, capture_output=True, text=True, timeout=10)
    assert re.search(rf"{SECTION}\s+{ACCOUNT}@{INTERNET}\s+failed\s+401", shown.stdout), \
        shown.stdout + shown.stderr
    st = page.Status("/cgi-bin/ser", time.time())
    webui.ask_server({"SER_UNIX_SOCK": router.ctl_sock}, st)
    html = page.render(st, time.localtime)
    section = html[html.index('id="registrations"'):]
    assert '<span class="tag bad">failed</span>' in section, section[:2000]
    assert "401" in section
    # a window of 5 s: the provider sees the REGISTER and its answer with the wrong
    # password, and then nothing (reg_retry_interval: 30 min)
    sent = len(kam.received("REGISTER")) - before
    assert sent == 2, kam.received("REGISTER")[before:]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:      # bounded: the window is the observation
        assert len(kam.received("REGISTER")) - before == sent
        time.sleep(0.25)
    assert ACCOUNT_PASSWORD not in router.log() and "wrong-password" not in router.log()
