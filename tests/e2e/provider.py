"""A real SIP provider for the end-to-end tests: Debian's Kamailio (5.6), run in the
foreground by the test, with digest authentication on a db_text ``subscriber`` table and a
registrar.

What it does, as a VoIP provider would:
* REGISTER: ``www_authorize`` (401, no qop: the RFC 2069 digest), then ``save("location")``.
* ``invite_auth``: every INVITE logs in first (``proxy_authorize``, 407), then as below.
* INVITE (new call) to a registered subscriber (its usrloc): relayed to the contact, no login
  asked (a call from "the PSTN" to the house's number); any other INVITE: ``proxy_authorize``
  (407 with qop="auth"), then to ``route_to`` (the provider's own phone: a sipp UAS the test
  runs); record-routed.
* in-dialog requests: loose_route, as any proxy.
Every request it receives is logged as ``PROVIDER-RX <method> <from> <call-id> <cseq> <src>``
(``received(method)`` counts them: "a wrong password does not hammer the provider").

Usage::

    kam = Provider(tmp_path / "provider", "127.0.0.1", accounts={"house": "secret"})
    kam.start()             # waits until the SIP port is bound and the RPC socket answers
    kam.contacts("house")   # the bindings of house@<domain>, from Kamailio's usrloc (kamcmd)
    kam.stop()

``prefix`` runs it elsewhere, e.g. ``["ip", "netns", "exec", "wan"]`` (the harness's paths
are all in ``workdir``; the RPC socket is a file, so kamcmd reaches it from any namespace).
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .sipnet import HarnessError, family_of, free_port_pair, hostport, wait_bound

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
KAMCMD = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

# Kamailio 5.6's table versions (utils/kamctl/dbtext/kamailio/version)
_VERSIONS = {"subscriber": 7, "location": 9}

_CFG = """#!KAMAILIO
# the test provider: written by tests/e2e/provider.py
debug=2
log_stderror=yes
memdbg=5
memlog=5
children=1
tcp_children=1
auto_aliases=no
disable_tcp=no
listen=udp:{listen}
listen=tcp:{listen}
{alias}
mpath="{modules}"

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "db_text.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "ctl.so"

modparam("ctl", "binrpc", "unix:{ctl}")
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", {min_expires})
modparam("registrar", "min_expires_mode", 1)     # 423 Interval Too Brief, not a silent raise
modparam("registrar", "max_expires", 3600)
modparam("auth_db", "db_url", "text://{db}")
modparam("auth_db", "calculate_ha1", yes)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "load_credentials", "")
modparam("auth_db", "use_domain", 0)

request_route {{
    xlog("L_NOTICE", "PROVIDER-RX $rm $fu $ci $cs $si:$sp\\n");
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("REGISTER")) {{
        if (!www_authorize("{domain}", "subscriber")) {{
            www_challenge("{domain}", "0");
            exit;
        }}
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (is_method("INVITE")) {{
        {invite_auth}
        if (lookup("location")) {{
            # a call to one of its subscribers (from "the PSTN"): no login asked
            xlog("L_NOTICE", "PROVIDER-TO-SUBSCRIBER $rm $ru $ci\n");
            record_route();
            t_relay();
            exit;
        }}
        if (!proxy_authorize("{domain}", "subscriber")) {{
            proxy_challenge("{domain}", "1");
            exit;
        }}
        consume_credentials();
        xlog("L_NOTICE", "PROVIDER-AUTHORIZED $rm $fu $ci $cs\\n");
        record_route();
        {route_to}
        t_relay();
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
"""


_INVITE_AUTH = """if (!proxy_authorize("{domain}", "subscriber")) {{
            proxy_challenge("{domain}", "1");
            exit;
        }}
        consume_credentials();
        xlog("L_NOTICE", "PROVIDER-AUTHORIZED $rm $fu $ci $cs\\n");
        record_route();
        if (lookup("location")) {{
            xlog("L_NOTICE", "PROVIDER-TO-SUBSCRIBER $rm $ru $ci\\n");
            t_relay();
            exit;
        }}
        {route_to}
        t_relay();
        exit;"""


def _escape(value):
    return str(value).replace("\\", "\\\\").replace(":", "\\:")


class Provider:
    """One Kamailio process; ``accounts`` {user: password} in its subscriber table."""

    def __init__(self, workdir, host="127.0.0.1", *, port=None, domain=None, accounts=None,
                 route_to=None, min_expires=10, prefix=(), name="provider", invite_auth=False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        # it listens on UDP and TCP with one number (loopback: the harness's free pair)
        self.port = port or (free_port_pair(family_of(host)) if host.startswith(("127.", "::1"))
                             else 5060)
        self.domain = domain or host
        self.accounts = dict(accounts or {})
        self.route_to = route_to        # (host, port) of the provider's own phone
        self.min_expires = min_expires
        self.prefix = list(prefix)
        self.name = name
        # every INVITE logs in first (as a real provider: the house's calls out get the 407
        # that uac_auth answers; its own phone's calls too), then goes to a subscriber
        self.invite_auth = invite_auth
        self.db = self.workdir / "db"
        self.cfg = self.workdir / "kamailio.cfg"
        self.logfile = self.workdir / "kamailio.log"
        # sun_path holds 108 bytes: a short directory of its own
        self._sockdir = tempfile.mkdtemp(prefix="kam")
        self.ctl = os.path.join(self._sockdir, "ctl")
        self.proc = None
        self._reader = None

    @property
    def addr(self):
        return (self.host, self.port)

    def write(self):
        self.db.mkdir(exist_ok=True)
        (self.db / "version").write_text(
            "table_name(str) table_version(int)\n"
            + "".join(f"{t}:{v}\n" for t, v in _VERSIONS.items()))
        rows = "".join(f"{i}:{_escape(u)}:{_escape(self.domain)}:{_escape(p)}:::\n"
                       for i, (u, p) in enumerate(sorted(self.accounts.items()), start=1))
        (self.db / "subscriber").write_text(
            "id(int,auto) username(string) domain(string) password(string) ha1(string,null) "
            "ha1b(string,null) email_address(string,null)\n" + rows)
        route_to = "sl_send_reply(\"404\", \"Not Found\"); exit;"
        if self.route_to is not None:
            route_to = f'$du = "sip:{hostport(*self.route_to)}";'
        self.cfg.write_text(_CFG.format(
            listen=hostport(self.host, self.port), domain=self.domain, modules=MODULES,
            # an alias without a port is every port of that host: on loopback the phones
            # behind would be "myself" too
            alias=f'alias="{self.domain}:{self.port}"' if self.domain != self.host else "",
            ctl=self.ctl, db=self.db, min_expires=self.min_expires, route_to=route_to,
            invite_auth=_INVITE_AUTH.format(domain=self.domain, route_to=route_to)
            if self.invite_auth else ""))

    def command(self):
        return [*self.prefix, KAMAILIO, "-f", str(self.cfg), "-DD", "-E", "-m", "32", "-M",
                "4", "-Y", self._sockdir, "-P", os.path.join(self._sockdir, "pid")]

    def check(self):
        """``kamailio -c``: the config parses (the module set is installed)."""
        self.write()
        out = subprocess.run([KAMAILIO, "-c", "-f", str(self.cfg)], capture_output=True,
                             text=True, timeout=30)
        if out.returncode != 0:
            raise HarnessError(f"kamailio -c failed:\n{out.stdout}{out.stderr}")

    def start(self, timeout=START_TIMEOUT):
        if not os.path.exists(KAMAILIO):
            raise HarnessError("kamailio is not installed: run tests/run (needs= kamailio)")
        self.write()
        cmd = self.command()
        log = open(self.logfile, "ab")
        log.write(f"### harness: start {' '.join(cmd)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            if not self.prefix:     # another namespace's sockets are not in our /proc/net
                wait_bound("udp", family_of(self.host), self.port, timeout, self.proc,
                           what="kamailio")
            self._wait_rpc(timeout)
        except HarnessError as exc:
            self.stop()
            raise HarnessError(f"{exc}\n{self.tail()}") from None
        return self

    def _wait_rpc(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise HarnessError(f"kamailio exited ({self.proc.returncode})")
            if os.path.exists(self.ctl):
                out = self.rpc("core.version", check=False)
                if out.returncode == 0:
                    return
            if time.monotonic() > deadline:
                raise HarnessError(f"kamailio's RPC socket did not answer within {timeout} s")
            time.sleep(0.05)    # polling a socket file the process creates: no event to wait on

    def rpc(self, *args, check=True):
        out = subprocess.run([KAMCMD, "-s", f"unix:{self.ctl}", *args], capture_output=True,
                             text=True, timeout=10)
        if check and out.returncode != 0:
            raise HarnessError(f"kamcmd {' '.join(args)}: {out.stdout}{out.stderr}")
        return out

    def contacts(self, user):
        """The Contact URIs Kamailio's usrloc holds for ``user`` (use_domain 0: the user
        alone is the AOR); [] when none."""
        out = self.rpc("ul.lookup", "location", user, check=False)
        if out.returncode != 0:
            if "Not Found" in out.stdout + out.stderr or "AOR not found" in out.stdout + out.stderr:
                return []
            raise HarnessError(f"kamcmd ul.lookup: {out.stdout}{out.stderr}")
        return re.findall(r"Address:\s*(\S+)", out.stdout)

    def expires_of(self, user):
        """The Expires (seconds left) of each binding of ``user``."""
        out = self.rpc("ul.lookup", "location", user, check=False)
        return [int(x) for x in re.findall(r"Expires:\s*(\d+)", out.stdout)]

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines=80):
        return "\n".join(self.log().splitlines()[-lines:])

    def received(self, method, user=None):
        """The ``PROVIDER-RX`` lines of ``method`` (from ``user``), as logged so far."""
        found = []
        for line in self.log().splitlines():
            m = re.search(r"PROVIDER-RX (\S+) (\S+) (\S+) (\d+) (\S+)", line)
            if m and m.group(1) == method and (user is None or f":{user}@" in m.group(2)):
                found.append(m.groups())
        return found

    def wait_log(self, pattern, timeout=10.0, count=1):
        """Wait until ``pattern`` (a regex) is in the log ``count`` times; the matches."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = rx.findall(self.log())
            if len(found) >= count:
                return found
            if self.proc is None or self.proc.poll() is not None:
                raise HarnessError(f"kamailio is not running; waiting for {pattern!r}\n"
                                   f"{self.tail()}")
            if time.monotonic() > deadline:
                raise HarnessError(f"{pattern!r} not logged {count} times within {timeout} s "
                                   f"({len(found)} so far)\n{self.tail()}")
            time.sleep(0.05)    # the log file grows: polled with a deadline

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            # its own session (start_new_session): the main process and its children
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self._sockdir, ignore_errors=True)
        return self.proc.returncode
