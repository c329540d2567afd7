"""docs/security.md's fail2ban filter, run by the real fail2ban-regex over the log a real
serlite wrote while secfilter banned addresses: the filter must find exactly the banned
addresses (IPv4 and IPv6), and none of the other secfilter lines (unbanned, the account alarm).
The filter is read from docs/security.md itself, so the page and the test cannot drift apart.
The same lines are also tried as OpenWrt's logd and a classic syslog file write them.

A guesser here is a raw UDP client on a loopback address of its own (127.0.0.N: the whole
127/8 is loopback on Linux): each guess is a REGISTER, its 401 challenge answered with a wrong
password, the failure secfilter counts.
"""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from . import sipnet
from .test_auth import CONFIG as AUTH_CONFIG, authorization, challenge_of, ser_ctl

SECURITY_MD = sipnet.REPO / "docs" / "security.md"
COMMON_CONF = "/etc/fail2ban/filter.d/common.conf"
BAN_FAILURES = 3

SECFILTER = """loadmodule "secfilter"
modparam("secfilter", "ban_failures", {failures})
modparam("secfilter", "ban_file", "{bans}")
"""


def secfilter_config(tmp_path, failures=BAN_FAILURES):
    """test_auth's registrar (auth + auth_db, alice and bob) with secfilter loaded and the
    scanner check first in the route, as the shipped config has it."""
    text = AUTH_CONFIG.replace('loadmodule "auth_db"\n', 'loadmodule "auth_db"\n' + SECFILTER)
    text = text.replace("route {{\n", "route {{\n    if (!secf_check_ua()) {{\n        drop;\n"
                                      "    }}\n", 1)
    assert "secf_check_ua" in text and "ban_file" in text
    return text.format(db=tmp_path / "db", secret=tmp_path / "secret", expire=300,
                       failures=failures, bans=tmp_path / "bans")


def start(ser, tmp_path, *, ipv6=False, failures=BAN_FAILURES):
    db = tmp_path / "db"
    for user, password in (("alice", "secret"), ("bob", "bobpw")):
        out = ser_ctl("user", "add", f"{user}@127.0.0.1", password, db=db)
        assert out.returncode == 0, out.stderr
    return ser(secfilter_config(tmp_path, failures), ipv6=ipv6)


def ban_ctl(server, *args):
    """``ser-ctl ban ...`` against ``server``: the CompletedProcess."""
    env = dict(os.environ, SER_UNIX_SOCK=server.ctl_sock)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(sipnet.REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "serlite.ctl", "ban", *args], env=env,
                          cwd=sipnet.REPO, capture_output=True, text=True, timeout=30)


def guess(server, source, user, tries, *, family=sipnet.V4):
    """``tries`` REGISTERs for ``user`` from the loopback address ``source``, each challenge
    answered with a wrong password.  Returns the final status of each try, None for a try the
    server did not answer at all (a banned source: silence is awaited with a barrier, an
    OPTIONS from 127.0.0.1 answered after it, not with a sleep)."""
    server_addr = server.address(family)
    host, port = server_addr
    ruri = f"sip:{sipnet.hostport(host, port)}"
    aor = f"sip:{user}@{sipnet.hostport(host, port)}"
    statuses = []
    with sipnet.UdpPeer(family, host=source) as peer:
        for n in range(tries):
            req = sipnet.make_request("REGISTER", ruri, via=(peer.host, peer.port), to=aor,
                                      cseq=2 * n + 1, headers=["User-Agent: guesser/1.0"])
            peer.send(req, server_addr)
            got = [r for r in peer.recv_until(sipnet.is_final, 3) if sipnet.is_final(r)]
            if not got:
                statuses.append(None)
                continue
            assert sipnet.status_of(got[0]) == 401, got[0]
            creds = authorization(challenge_of(got[0]), user, f"guess{n}", "REGISTER", ruri,
                                  nc=1)
            req = sipnet.make_request("REGISTER", ruri, via=(peer.host, peer.port), to=aor,
                                      cseq=2 * n + 2, headers=[creds, "User-Agent: guesser/1.0"])
            peer.send(req, server_addr)
            got = [r for r in peer.recv_until(sipnet.is_final, 3) if sipnet.is_final(r)]
            statuses.append(sipnet.status_of(got[0]) if got else None)
    return statuses


def answered(server, source, family=sipnet.V4):
    """Whether an OPTIONS from ``source`` gets an answer: it is sent, then a barrier OPTIONS
    from the test's own address is answered (serlite handles datagrams in order), then the
    source's socket is read without waiting."""
    server_addr = server.address(family)
    with sipnet.UdpPeer(family, host=source) as peer:
        peer.send(sipnet.options(server_addr, peer), server_addr)
        if family == sipnet.V4:
            sipnet.barrier(server.addr)
            return any(sipnet.is_final(r) for r in peer.recv_until(sipnet.is_final, 0.05))
        return any(sipnet.is_final(r) for r in peer.recv_until(sipnet.is_final, 1.0))


def ban_by_guessing(server, source, user="alice", family=sipnet.V4):
    """BAN_FAILURES wrong guesses (each a 401), and the next try is not answered."""
    statuses = guess(server, source, user, BAN_FAILURES + 1, family=family)
    assert statuses == [401] * BAN_FAILURES + [None], statuses
    sipnet.wait_log(server, rf"secfilter: banned {re.escape(source)} for \d+ s")


# --- the filter --------------------------------------------------------------------------

def fail2ban_regex():
    path = shutil.which("fail2ban-regex")
    if path is None:
        pytest.fail("fail2ban-regex is missing: run tests/run, which installs fail2ban")
    return path


def filter_from_docs():
    """The ```ini block after "filter.d/serlite.conf" in docs/security.md."""
    text = SECURITY_MD.read_text()
    at = text.index("/etc/fail2ban/filter.d/serlite.conf`:")
    m = re.search(r"```ini\n(.*?)```", text[at:], re.S)
    assert m, "docs/security.md: no ```ini block after filter.d/serlite.conf"
    return m.group(1)


def matched_addresses(tmp_path, log_text, name):
    """The addresses fail2ban-regex's run of the docs' filter finds in ``log_text``, in log
    order (fail2ban's own config layout: filter.d/serlite.conf beside Debian's common.conf)."""
    confdir = tmp_path / "fail2ban"
    (confdir / "filter.d").mkdir(parents=True, exist_ok=True)
    (confdir / "filter.d" / "serlite.conf").write_text(filter_from_docs())
    shutil.copyfile(COMMON_CONF, confdir / "filter.d" / "common.conf")
    log = tmp_path / name
    log.write_text(log_text)
    proc = subprocess.run([fail2ban_regex(), "-c", str(confdir), "-o", "<ip>", str(log),
                           "serlite"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split()


_STDERR_LINE = re.compile(r"^\w{3} \d\d \d\d:\d\d:\d\d ser\[(\d+)\]: (\w+): (secfilter: .*)$",
                          re.M)


def as_syslog(log_text):
    """serlite's secfilter lines (-E, stderr) as OpenWrt's logd and a classic syslog file
    write the same messages (serlite logs to syslog without -E)."""
    stamp = time.localtime()
    logd, syslog = [], []
    for pid, level, msg in _STDERR_LINE.findall(log_text):
        prio = {"WARNING": "warn", "NOTICE": "notice"}.get(level, level.lower())
        logd.append(time.strftime("%a %b %e %H:%M:%S %Y", stamp)
                    + f" daemon.{prio} ser[{pid}]: {msg}")
        syslog.append(time.strftime("%b %e %H:%M:%S", stamp) + f" router ser[{pid}]: {msg}")
    return "\n".join(logd) + "\n", "\n".join(syslog) + "\n"


def test_the_docs_filter_finds_exactly_the_banned_addresses(ser, tmp_path):
    server = start(ser, tmp_path, ipv6=True)
    ban_by_guessing(server, "127.0.0.2")
    ban_by_guessing(server, "::1", family=sipnet.V6)
    # lines that must not match: a guessed account, an early lift
    for source in ("127.0.0.3", "127.0.0.4", "127.0.0.5"):
        assert guess(server, source, "bob", 1) == [401]
    sipnet.wait_log(server, r"secfilter: account bob is being guessed from 3 addresses")
    out = ban_ctl(server, "del", "127.0.0.2")
    assert out.returncode == 0, out.stderr
    sipnet.wait_log(server, r"secfilter: unbanned 127\.0\.0\.2")
    assert answered(server, "127.0.0.2")

    log_text = server.log()
    assert re.search(r"secfilter: banned 127\.0\.0\.2 for \d+ s: failed logins "
                     r"\(failures=3 user=alice offence=1\)", log_text), log_text
    assert matched_addresses(tmp_path, log_text, "ser.log") == ["127.0.0.2", "::1"]
    logd, syslog = as_syslog(log_text)
    assert matched_addresses(tmp_path, logd, "messages") == ["127.0.0.2", "::1"]
    assert matched_addresses(tmp_path, syslog, "syslog") == ["127.0.0.2", "::1"]
