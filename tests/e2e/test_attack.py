"""Real attackers from "the Internet" against the router (issue 20), in network namespaces.

The router is the house's config as the init script makes it: ``python3 -m serlite.uci`` on a
UCI file with ``wan_open 1`` and one ``config user`` (100), the server on the generated config
listening on the router's LAN (192.168.77.1) and WAN (192.0.2.1) addresses, port 5060, in the
router namespace of tests/e2e/netns.py.  From the internet namespace: SIPVicious 0.3.8 (svmap,
svwar, svcrack; tests/run installs it), a slow guesser of our own under pike's limit, a guesser
spread over a pool of addresses, a provider's OPTIONS and INVITE, and a flood from 100 000
source addresses.  The LAN phone (192.168.77.2, behind the router's masquerade) registers with
its password during and after every attack.

The only change to the generated config: its /etc/ser/ files (nonce secret, call history, ban
file, registrations) are moved into the test's directory.

Bounded: SIPVicious runs on a short range or word list with a 60 s limit, the guessers have a
budget of guesses, the floods a count and FLOOD_SECONDS; the flood senders keep FLOOD_WINDOW
requests in flight, so what is measured is the server (its memory, its tables, the LAN phone's
answer), not the kernel dropping datagrams.  The module takes about 85 s on a 2-core machine
(the 100 000-address flood, a nonce and a wrong answer from each, 31 s of it, the slow guesser
12 s, svcrack 10 s).  Needs root, ip and nft (tests/run installs them and SIPVicious).
"""

import json
import os
import re
import secrets
import select
import shutil
import socket
import subprocess
import sys
import time

import pytest

from . import netns, sipnet
from .netns import INTERNET, LAN_PHONE, ROUTER_LAN, ROUTER_WAN
from .sipnet import UdpPeer, is_final, make_request, status_of
from .test_auth import authorization, challenge_of


USER, PASSWORD = "100", "Corr3ct-Horse"
PORT = 5060
WAN = (ROUTER_WAN, PORT)
LAN = (ROUTER_LAN, PORT)
REALM = "serlite"
BAN_FAILURES = 5                  # the default (issue 20: 5 failures in 10 min)
PHONE_UA = "Linphone/5.2.0 (belle-sip/5.2.0)"   # the guessers pose as a phone, not a scanner


# --- the router ----------------------------------------------------------------------------

def uci_text(workdir, extra=""):
    return (f"config ser 'main'\n\toption enabled '1'\n\tlist interface 'lan'\n"
            f"\toption wan 'wan'\n\toption wan_open '1'\n\toption port '{PORT}'\n"
            f"\toption location_db 'dbtext://{workdir}/etc/ser/usrloc'\n{extra}"
            f"\nconfig user\n\toption name '{USER}'\n\toption password '{PASSWORD}'\n")


class RouterServer(sipnet.SerServer):
    """serlite in the router namespace on the generated config (its own listen= lines)."""

    def __init__(self, net, workdir, config):
        super().__init__(workdir, config, name="router", port=PORT)
        self.net = net

    def command(self):
        return [*self.net.exec_args(self.net.router), *self.python, "-m", "serlite", "-D", "-E",
                "-f", str(self.cfg)]

    @property
    def addr(self):
        return LAN

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))

    def ctl(self, *args, timeout=15):
        """ser-ctl as the owner runs it (``python3 -m serlite.ctl``), its JSON answer."""
        env = dict(os.environ, SER_UNIX_SOCK=self.ctl_sock)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(sipnet.REPO),
                                                          env.get("PYTHONPATH")]))
        proc = subprocess.run([sys.executable, "-m", "serlite.ctl", *args, "--json"],
                              cwd=sipnet.REPO, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert proc.returncode == 0, f"ser-ctl {' '.join(args)}: {proc.returncode}\n" \
                                     f"{proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout)

    def bans(self):
        return self.ctl("ban", "list")


def generate(workdir, extra="", addresses=()):
    """The config the init script would run, with /etc/ser/ moved into ``workdir``;
    ``addresses``: more interface addresses ("lan=2001:db8:77::1/64"), beside the IPv4 ones."""
    uci = workdir / "config" / "ser"
    uci.parent.mkdir(parents=True, exist_ok=True)
    uci.write_text(uci_text(workdir, extra))
    run_dir = workdir / "run"
    gen = subprocess.run([sys.executable, "-m", "serlite.uci", "-c", str(uci), "-o", str(run_dir),
                          "-a", f"lan={ROUTER_LAN}/24", "-a", f"wan={ROUTER_WAN}/24",
                          *(arg for a in addresses for arg in ("-a", a))],
                         cwd=sipnet.REPO, capture_output=True, text=True, timeout=30)
    assert gen.returncode == 0, gen.stderr
    text = open(gen.stdout.strip()).read()
    assert f"listen={ROUTER_WAN}" in text and f"listen={ROUTER_LAN}" in text, text
    (workdir / "etc" / "ser").mkdir(parents=True, exist_ok=True)
    text = re.sub(r'(?<=["/])/etc/ser/', f"{workdir}/etc/ser/", text)
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "/etc/ser/" in line.replace(f"{workdir}/etc/ser/", "")], \
        text
    return text


@pytest.fixture(scope="module")
def net():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"):
        pytest.fail("the attack tests need root, ip and nft: run tests/run as root (CI does)")
    n = netns.Net()
    yield n
    n.close()


@pytest.fixture
def router(request, net, tmp_path):
    """router(extra_uci="") -> a started RouterServer; stopped (and checked alive) at teardown."""
    servers = request.node._serlite_servers = []

    def start(extra=""):
        server = RouterServer(net, tmp_path / f"router{len(servers) + 1}",
                              generate(tmp_path / f"router{len(servers) + 1}", extra))
        servers.append(server)
        return server.start()

    yield start
    sipnet.stop_servers(servers)


# --- SIP clients inside the namespaces -----------------------------------------------------

class Registrar:
    """REGISTERs for one account from one address: the first without credentials, then digest
    answers to the latest nonce (nc counting up while no new nonce comes)."""

    def __init__(self, net, ns, source, target, user=USER, ua=PHONE_UA):
        with net.inside(ns):
            self.peer = UdpPeer(host=source)
        self.target = target
        self.user = user
        self.ua = ua
        self.ruri = f"sip:{target[0]}"
        self.call_id = secrets.token_hex(8) + "@attack"
        self.cseq = 0
        self.challenge = None
        self.nc = 0

    def close(self):
        self.peer.close()

    def send(self, *headers, timeout=1.0):
        """The final reply, or None when nothing came within ``timeout``."""
        self.cseq += 1
        aor = f"sip:{self.user}@{self.target[0]}"
        req = make_request("REGISTER", self.ruri, via=(self.peer.host, self.peer.port), to=aor,
                           call_id=self.call_id, cseq=self.cseq,
                           headers=[f"Contact: <sip:{self.user}@{self.peer.host}:{self.peer.port}>",
                                    "Expires: 600", f"User-Agent: {self.ua}", *headers])
        self.peer.send(req, self.target)
        # the answer to this request: a late one to an earlier request (timed out) is skipped
        mine = lambda r: is_final(r) and f"CSeq: {self.cseq} ".encode() in r  # noqa: E731
        finals = [r for r in self.peer.recv_until(mine, timeout) if mine(r)]
        if finals and status_of(finals[0]) == 401:
            self.challenge = challenge_of(finals[0])
            self.nc = 0
        return finals[0] if finals else None

    def guess(self, password, timeout=1.0):
        if self.challenge is None:
            first = self.send(timeout=timeout)
            if first is None or status_of(first) != 401:
                return first
        self.nc += 1
        return self.send(authorization(self.challenge, self.user, password, "REGISTER",
                                       self.ruri, nc=self.nc), timeout=timeout)


class LanPhone(Registrar):
    """The phone of the house: 100 with its password, from the LAN."""

    def __init__(self, net):
        super().__init__(net, net.lan, LAN_PHONE, LAN, ua="Yealink SIP-T46S 66.86.0.15")

    def register(self, timeout=2.0):
        """Registers (401, then 200); returns the seconds it took."""
        start = time.monotonic()
        self.challenge = None
        reply = self.guess(PASSWORD, timeout=timeout)
        assert reply is not None and status_of(reply) == 200, \
            f"the LAN phone did not register: {reply!r}"
        return time.monotonic() - start


def options_from(net, source, ua, target=WAN, timeout=1.0, method="OPTIONS", user=""):
    """A provider's request from the internet: the final reply, or None (dropped)."""
    with net.inside(net.internet):
        peer = UdpPeer(host=source)
    with peer:
        uri = f"sip:{user + '@' if user else ''}{target[0]}"
        headers = [f"User-Agent: {ua}"]
        body = b""
        if method == "INVITE":
            body = (f"v=0\r\no=- 1 1 IN IP4 {source}\r\ns=-\r\nc=IN IP4 {source}\r\nt=0 0\r\n"
                    f"m=audio 4000 RTP/AVP 0\r\n").encode()
            headers += [f"Contact: <sip:trunk@{source}:{peer.port}>",
                        "Content-Type: application/sdp"]
        peer.send(make_request(method, uri, via=(peer.host, peer.port), to=uri,
                               from_=f"sip:trunk@{source}", headers=headers, body=body), target)
        finals = [r for r in peer.recv_until(is_final, timeout) if is_final(r)]
        return finals[0] if finals else None


# --- SIPVicious ----------------------------------------------------------------------------

def sipvicious(net, tool, *args, workdir, timeout=60):
    """Run svmap/svwar/svcrack in the internet namespace; its output (stdout and stderr)."""
    env = dict(os.environ, HOME=str(workdir))   # its session files (~/.sipvicious) stay here
    proc = subprocess.run([*net.exec_args(net.internet), sys.executable, "-m",
                           f"sipvicious.{tool}", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=workdir)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def sipvicious_installed():
    try:
        import sipvicious  # noqa: F401
    except ImportError:
        pytest.fail("sipvicious is not installed: tests/run installs it "
                    "(python3 -m pip install sipvicious==0.3.8)")



def wrong_passwords(n, prefix="guess"):
    return [f"{prefix}{i:03d}" for i in range(1, n + 1)]


# --- the harness itself --------------------------------------------------------------------

def test_lan_goes_out_masqueraded_and_namespaces_are_per_run(net):
    # nothing of an earlier run that died is left (Net removed it, or there was none)
    assert not [ns for ns in netns.namespaces() if ns.startswith(netns.NS_PREFIX)
                and not ns.startswith(net.run_id) and not netns._pid_alive(
                    int(re.match(r"slt(\d+)", ns).group(1)))]
    with net.inside(net.lan):
        phone = UdpPeer(host=LAN_PHONE)
    with net.inside(net.internet):
        far = UdpPeer(host=INTERNET)
    with phone, far:
        phone.send(b"hello", (INTERNET, far.port))
        ready, _, _ = select.select([far.sock], [], [], 2)
        assert ready, "nothing from the LAN reached the internet namespace"
        data, source = far.sock.recvfrom(100)
    assert (data, source[0]) == (b"hello", ROUTER_WAN)   # firewall4's masquerade


# --- SIPVicious ----------------------------------------------------------------------------

def test_svmap_finds_nothing(net, router, tmp_path, sipvicious_installed):
    router()
    phone = LanPhone(net)
    before = net.wan_sip_packets()
    rc, out = sipvicious(net, "svmap", ROUTER_WAN, workdir=tmp_path)
    assert net.wan_sip_packets() > before, "svmap's packets did not reach the router"
    # main before issue 20: "| 192.0.2.1:5060 | serlite |"
    assert ROUTER_WAN not in out and "found nothing" in out, out
    phone.register()


def test_svwar_finds_no_extension(net, router, tmp_path, sipvicious_installed):
    router()
    phone = LanPhone(net)
    for method in ("REGISTER", "INVITE"):
        rc, out = sipvicious(net, "svwar", "-e100-120", "-m", method, "--force", ROUTER_WAN,
                             workdir=tmp_path)
        assert not re.search(r"^\|\s*1\d\d\s*\|", out, re.M), (method, out)
        phone.register()


def test_svcrack_finds_no_password(net, router, tmp_path, sipvicious_installed):
    router()
    phone = LanPhone(net)
    # the right one tenth: past the ban (5), well under pike's 30 a unit; main found it
    words = wrong_passwords(9) + [PASSWORD] + wrong_passwords(20, "more")
    (tmp_path / "words").write_text("\n".join(words) + "\n")
    env = dict(os.environ, HOME=str(tmp_path))
    crack = subprocess.Popen([*net.exec_args(net.internet), sys.executable, "-m",
                              "sipvicious.svcrack", "-u", USER, "-d", tmp_path / "words",
                              ROUTER_WAN], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env, cwd=tmp_path)
    try:
        during = 0
        deadline = time.monotonic() + 60
        while crack.poll() is None and time.monotonic() < deadline:
            phone.register()                       # the house's phone works meanwhile
            during += 1
            time.sleep(0.2)                        # a phone's pace, not a synchronisation
        out, _ = crack.communicate(timeout=max(1, deadline - time.monotonic()))
    finally:
        if crack.poll() is None:
            crack.kill()
            crack.wait()
    assert PASSWORD not in out and not re.search(r"^\|\s*100\s*\|", out, re.M), out
    assert during >= 1
    phone.register()


# --- guessers of our own -------------------------------------------------------------------

def banned(server, address):
    return next((b for b in server.bans()["bans"] if b["address"] == address), None)


def test_slow_guesser_under_pike_never_registers_and_is_banned(net, router):
    server = router()
    phone = LanPhone(net)
    attacker = netns.POOL + ".1"
    guesser = Registrar(net, net.internet, attacker, WAN)
    budget, rate, right_at = 60, 5.0, 30   # 5 a second: pike allows 30 in 2 s
    passwords = wrong_passwords(budget)
    passwords[right_at - 1] = PASSWORD     # main registered here, after 6 s
    answered, statuses, first_silence, lan_times = 0, [], None, []
    start = time.monotonic()
    for i, password in enumerate(passwords):
        slot = start + i / rate
        time.sleep(max(0.0, slot - time.monotonic()))   # the guesser's pace
        reply = guesser.guess(password, timeout=1 / rate)
        statuses.append(None if reply is None else status_of(reply))
        if reply is not None:
            answered += 1
        elif first_silence is None:
            first_silence = (i + 1, time.monotonic() - start)
        if i % 10 == 9:
            lan_times.append(phone.register())      # during the attack
    guesser.close()
    lan_times.append(phone.register())              # and after it
    print(f"slow guesser: {budget} guesses at {rate}/s, {answered} answered "
          f"(statuses {statuses[:answered + 1]}...), first unanswered guess "
          f"{first_silence}, LAN register max {max(lan_times) * 1000:.1f} ms")
    assert 200 not in statuses, statuses
    assert first_silence is not None, f"never banned: {statuses}"
    assert answered <= BAN_FAILURES, statuses
    ban = banned(server, attacker)
    assert ban and ban["failures"] >= BAN_FAILURES and ban["user"] == USER, server.bans()
    assert ban["expires_in"] > 0
    sipnet.wait_log(server, rf"secfilter: banned {re.escape(attacker)} for \d+ s: .* "
                            rf"\(failures=\d+ user={USER} offence=1\)")


def test_guessers_spread_over_addresses_raise_the_account_alarm(net, router):
    server = router()
    phone = LanPhone(net)
    sources = net.pool[1:11]              # ten addresses, each tries six passwords
    statuses = {}
    for n, source in enumerate(sources):
        guesser = Registrar(net, net.internet, source, WAN)
        # five wrong ones, then the right one: the sixth must never be answered
        passwords = wrong_passwords(BAN_FAILURES, f"s{n}-") + [PASSWORD]
        statuses[source] = [(lambda r: None if r is None else status_of(r))(
            guesser.guess(p, timeout=0.3)) for p in passwords]
        guesser.close()
        phone.register()
    phone.register()
    assert not [s for s in statuses.values() if 200 in s], statuses
    report = server.bans()
    print(f"spread guesser: {len(sources)} sources x {BAN_FAILURES + 1} guesses: {statuses}; "
          f"alarms {report['alarms']}")
    alarms = [a for a in report["alarms"] if a["account"] == USER]
    assert alarms and alarms[0]["sources"] >= 3, report
    assert {b["address"] for b in report["bans"]} >= set(sources), report
    sipnet.wait_log(server, rf"secfilter: account {USER} is being guessed from \d+ addresses")
    # once per account and hour: one line, not one per source
    assert len(re.findall(rf"secfilter: account {USER} is being guessed", server.log())) == 1


def options_answered(net, source, timeout=0.5):
    reply = options_from(net, source, PHONE_UA, timeout=timeout)
    return reply is not None and status_of(reply) == 200


def test_banned_address_is_served_again_after_the_ban_or_ban_del(net, router):
    ban_time = 3
    server = router(f"\toption ban_time '{ban_time}'\n")
    attacker = netns.POOL + ".12"
    assert options_answered(net, attacker)
    guesser = Registrar(net, net.internet, attacker, WAN)
    for password in wrong_passwords(BAN_FAILURES):
        guesser.guess(password, timeout=0.5)
    guesser.close()
    banned_at = time.monotonic()
    ban = banned(server, attacker)
    assert ban and 0 < ban["expires_in"] <= ban_time, server.bans()
    assert not options_answered(net, attacker, timeout=0.3)
    # the ban ends by itself: answered again within ban_time (+ a second for the timer)
    deadline = banned_at + ban_time + 2
    while not options_answered(net, attacker, timeout=0.25):
        assert time.monotonic() < deadline, f"still dropped {ban_time + 2} s after the ban"
    assert time.monotonic() - banned_at >= ban_time - 1, "the ban ended early"
    # by hand: ser-ctl ban add, then ban del
    added = server.ctl("ban", "add", attacker, "600")
    assert added["address"] == attacker and added["expires_in"] > 500, added
    assert not options_answered(net, attacker, timeout=0.3)
    assert server.ctl("ban", "del", attacker) == {"removed": 1}
    assert options_answered(net, attacker, timeout=1.0)
    sipnet.wait_log(server, rf"secfilter: unbanned {re.escape(attacker)}: ")
    LanPhone(net).register()


PROVIDERS = ["Asterisk PBX 18.20.0", "kamailio (5.7.4 (x86_64/linux))", "FPBX-16.0.40.7(18.20.0)"]


@pytest.mark.parametrize("ua", PROVIDERS)
def test_provider_options_and_invite_from_the_internet_are_answered(net, router, ua):
    router()
    provider = netns.POOL + ".2"
    reply = options_from(net, provider, ua)
    assert reply is not None and status_of(reply) == 200, reply
    reply = options_from(net, provider, ua, method="INVITE", user=USER)
    assert reply is not None and status_of(reply) == 407, reply   # the config asks a password


def test_bans_survive_restart_and_kill9(net, router):
    server = router()
    guessed, by_hand = netns.POOL + ".3", netns.POOL + ".4"
    guesser = Registrar(net, net.internet, guessed, WAN)
    for password in wrong_passwords(BAN_FAILURES):
        guesser.guess(password, timeout=0.5)
    guesser.close()
    server.ctl("ban", "add", by_hand, "3600")
    assert banned(server, guessed) and banned(server, by_hand)
    for how in ("restart", "kill -9"):
        if how == "restart":
            server.stop()
        else:
            server.kill9()
        server.start()
        report = server.bans()
        assert {b["address"] for b in report["bans"]} >= {guessed, by_hand}, (how, report)
        assert banned(server, guessed)["reason"] == "failed logins", (how, report)
        for address in (guessed, by_hand):
            assert not options_answered(net, address, timeout=0.3), (how, address)
        assert options_answered(net, netns.POOL + ".5")
        LanPhone(net).register()


# --- a flood from 100 000 source addresses -------------------------------------------------

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)     # Linux <linux/in.h>; Python names it in 3.12
FLOOD_SOURCES = 100_000
FLOOD_WINDOW = 24               # in flight: far below half the socket buffer (tm sheds there)
FLOOD_SECONDS = 90              # the flood's own bound in time (a nonce and a guess per source)
RSS_GROWTH_LIMIT_KIB = 8 * 1024    # bounded tables took 1-4 MB here; 100 000 entries take more


def flood_address(i):
    """The i-th source of 198.18.0.0/15 (i from 1)."""
    return socket.inet_ntoa((0xC6120000 + i).to_bytes(4, "big"))


class Flood:
    """Wrong-password REGISTERs for 100 from many source addresses of the internet namespace,
    sent from one socket with IP_PKTINFO choosing the source; the replies come back to the
    AnyIP range and are read by the same socket.  Each source first asks for its own nonce (a
    nonce is good only from the address it was given to: forged sources that cannot read
    their replies count for nothing), then answers it wrongly."""

    def __init__(self, net):
        with net.inside(net.internet):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sock.bind(("0.0.0.0", 0))
        port = self.sock.getsockname()[1]
        self.ruri = f"sip:{ROUTER_WAN}"
        self.template = make_request(
            "REGISTER", self.ruri, via=("@SRC@", port), to=f"sip:{USER}@{ROUTER_WAN}",
            call_id="flood-@SRC@", headers=[f"Contact: <sip:{USER}@@SRC@:{port}>",
                                            f"User-Agent: {PHONE_UA}", "@CREDS@"])
        self.template = re.sub(rb"branch=[^;\r]+", b"branch=z9hG4bK-flood-@SRC@-@N@",
                               self.template)
        self.challenges = {}        # source -> the challenge it got (until it is answered)
        self.sent = self.answered = self.lost = 0

    def _send(self, source, n, creds):
        packet = self.template.replace(b"@SRC@", source.encode()).replace(
            b"@N@", b"%d" % n).replace(b"@CREDS@", creds.encode())
        pktinfo = (0).to_bytes(4, "little") + socket.inet_aton(source) + bytes(4)
        self.sock.sendmsg([packet], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, WAN)
        self.sent += 1

    def ask(self, source):
        """A REGISTER without credentials from ``source``: its 401 brings its nonce."""
        self._send(source, 0, "X-Flood: ask")

    def send(self, source, n=1):
        """The ``n``-th wrong guess from ``source`` on its nonce (its own branch: not a
        retransmission); False when it has none (its challenge was lost)."""
        challenge = self.challenges.get(source)
        if challenge is None:
            return False
        self._send(source, n, authorization(challenge, USER, "not-the-password", "REGISTER",
                                            self.ruri, nc=1))
        return True

    def guesses(self, sources, count, between=None):
        """Each of ``sources`` asks for its nonce, then guesses ``count`` times; FLOOD_WINDOW
        sources at a time.  ``between()`` after each batch."""
        for at in range(0, len(sources), FLOOD_WINDOW):
            batch = sources[at:at + FLOOD_WINDOW]
            for source in batch:
                self.ask(source)
            self.pace(1)
            for source in batch:
                for n in range(1, count + 1):
                    self.send(source, n)
                    self.pace()
                self.challenges.pop(source, None)
            if between is not None:
                between(at + len(batch))

    def pace(self, window=None):
        """Wait while ``window`` requests are in flight (unanswered for half a second: lost),
        as a sender that keeps the server's socket buffer from filling: the server is measured,
        not the kernel's drops (and tm's shedding, which answers 503 once a socket's buffer
        is half full)."""
        window = FLOOD_WINDOW if window is None else window
        while self.sent - self.answered - self.lost >= window:
            if not self.collect(0.5):
                self.lost = self.sent - self.answered

    def collect(self, timeout):
        """Replies that came within ``timeout`` (all that are queued once one came)."""
        n = 0
        if select.select([self.sock], [], [], timeout)[0]:
            while select.select([self.sock], [], [], 0)[0]:
                reply = self.sock.recv(65535)
                n += 1
                if status_of(reply) == 401:
                    # the answer to an ask (branch ...-0), not to a guess
                    found = re.search(rb"branch=z9hG4bK-flood-([0-9.]+)-0[;\r]", reply)
                    if found:
                        self.challenges[found.group(1).decode()] = challenge_of(reply)
        self.answered += n
        return n


def test_flood_from_100000_addresses_keeps_memory_bounded(net, router):
    server = router()
    phone = LanPhone(net)
    phone.register()
    flood = Flood(net)
    # warm up (module code, the first tables' growth), then the baseline
    flood.guesses([flood_address(FLOOD_SOURCES + i) for i in range(1, 1001)], 1)
    flood.pace(1)
    before = server.rss_kib()
    flood.answered = flood.sent = flood.lost = 0
    peak, lan_times = before, []
    start = time.monotonic()
    deadline = start + FLOOD_SECONDS

    def between(done):
        nonlocal peak
        if done % 10_008 < FLOOD_WINDOW:
            peak = max(peak, server.rss_kib())
            lan_times.append(phone.register())      # the house's phone during the flood
        assert time.monotonic() < deadline, \
            f"the flood took more than {FLOOD_SECONDS} s: {done} sources, {flood.answered} answered"
    flood.guesses([flood_address(i) for i in range(1, FLOOD_SOURCES + 1)], 1, between)
    flood.pace(1)
    elapsed = time.monotonic() - start
    after = server.rss_kib()
    lan_times.append(phone.register())
    print(f"flood: {flood.sent} requests from {FLOOD_SOURCES} sources in {elapsed:.1f} s ({flood.sent / elapsed:.0f}/s), "
          f"{flood.answered} answered, {flood.lost} lost, RSS {before} -> peak "
          f"{max(peak, after)} -> {after} KiB, LAN register max {max(lan_times) * 1000:.1f} ms")
    report = server.bans()
    print(f"flood: {len(report['bans'])} bans, alarms {report['alarms']}")
    # failures were counted: most of the flood (a nonce asked for, a wrong answer, from each
    # source) was answered (401), none by a 200
    assert flood.answered >= 0.9 * 2 * FLOOD_SOURCES, (flood.answered, flood.lost)
    assert max(peak, after) - before <= RSS_GROWTH_LIMIT_KIB, (before, peak, after)
    assert [a for a in report["alarms"] if a["account"] == USER], report


MAX_BANS = 4096                 # secfilter's max_bans default (not a UCI option)


def test_ban_flood_keeps_the_ban_table_and_file_bounded(net, router, tmp_path):
    server = router()
    phone = LanPhone(net)
    flood = Flood(net)
    sources = [flood_address(i) for i in range(1, MAX_BANS + 2001)]
    before = server.rss_kib()
    start = time.monotonic()
    deadline = start + FLOOD_SECONDS

    def between(done):
        if done % 1008 < FLOOD_WINDOW:
            phone.register()
        assert time.monotonic() < deadline, f"{done} sources banned in {FLOOD_SECONDS} s"
    flood.guesses(sources, BAN_FAILURES, between)
    flood.pace(1)
    elapsed = time.monotonic() - start
    phone.register()
    after = server.rss_kib()
    report = server.bans()
    addresses = {b["address"] for b in report["bans"]}
    ban_file = tmp_path / "router1" / "etc" / "ser" / "bans"
    size = ban_file.stat().st_size
    records = len(ban_file.read_text().splitlines()) - 1     # the header line aside
    print(f"ban flood: {len(sources)} sources x {BAN_FAILURES} wrong guesses in {elapsed:.1f} s, "
          f"{flood.answered} answered, {len(addresses)} bans kept, ban file {records} records "
          f"{size} bytes, RSS {before} -> {after} KiB")
    assert len(addresses) <= MAX_BANS, len(addresses)
    assert sources[-1] in addresses and sources[0] not in addresses   # the oldest went first
    # the journal is folded once it holds twice the bans it describes (serlite/store/bans.py)
    assert records <= 2 * MAX_BANS + 1, (records, size)
    assert after - before <= RSS_GROWTH_LIMIT_KIB, (before, after)
    # the last source is banned: its next REGISTER is dropped
    flood.ask(sources[-1])
    assert not flood.collect(0.3)
