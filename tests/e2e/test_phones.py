"""docs/phones.md, tried: real phones set up from the doc's own lines register and call through
serlite with digest logins.

The account lines are read from docs/phones.md (only the router's address, the extension and
the password are replaced), so the doc and this test cannot drift apart. The server runs a
config that does what the UCI-generated one does for every phone: REGISTER challenged with the
realm `serlite` (the UCI default) and a `check_to`, every other new request challenged with
407; the accounts are the subscriber table that UCI `config user` sections become
(serlite.uci.subscribers).

baresip (headless: no sound card, audio from a wav file, driven over its ctrl_tcp socket) is
the phone of the doc's section 4; linphonec (Debian's linphone-cli) the one of section 5, which
also calls a baresip.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import wave

import pytest

from serlite import uci

from . import sipnet

DOC = sipnet.REPO / "docs" / "phones.md"
DOC_SERVER = "192.168.1.1:5060"        # the address docs/phones.md uses in its examples
REALM = "serlite"                       # UCI's default realm (no `option domain`)
USERS = {"100": "pw-for-100", "101": "pw-for-101"}
WAIT = 15                               # seconds for any one step of a phone

CONFIG = """
debug=3
loadmodule "sl"
loadmodule "tm"
loadmodule "rr"
loadmodule "usrloc"
loadmodule "registrar"
loadmodule "auth"
loadmodule "auth_db"

modparam("auth_db", "db_url", "dbtext://{db}")
modparam("auth", "secret_file", "{secret}")

route {{
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (method == "ACK") {{
            exit;               # the ACK of a 401/407 this script sent
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (method == "ACK") {{
        exit;
    }}
    if (method == "REGISTER") {{
        if (!www_authorize("{realm}", "subscriber")) {{
            www_challenge("{realm}", "1");
            exit;
        }}
        if (!check_to()) {{
            sl_send_reply("403", "Forbidden");
            exit;
        }}
        consume_credentials();
        save("location");
        exit;
    }}
    if (method != "CANCEL") {{
        if (!proxy_authorize("{realm}", "subscriber")) {{
            proxy_challenge("{realm}", "1");
            exit;
        }}
        consume_credentials();
    }}
    record_route();
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    t_relay();
}}
"""


def need(command):
    if shutil.which(command) is None:
        pytest.fail(f"{command} is not installed: run tests/run, which installs it")


def start_server(ser, tmp_path):
    db = tmp_path / "db"
    db.mkdir()
    (db / "subscriber").write_text(uci.subscribers(sorted(USERS.items()), REALM))
    return ser(CONFIG.format(db=db, secret=tmp_path / "secret", realm=REALM))


# --- the doc -------------------------------------------------------------------------------

def doc_section(number):
    """The text of docs/phones.md's section '## N. ...'."""
    text = DOC.read_text()
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/phones.md has no section '## {number}.'"
    return match.group(0)


def doc_block(number):
    """The first fenced code block of section N."""
    match = re.search(r"^```[^\n]*\n(.*?)^```", doc_section(number), re.M | re.S)
    assert match, f"docs/phones.md section {number} has no code block"
    return match.group(1)


def from_doc(text, server, user, password):
    """A block of the doc with the example's address, extension and password replaced."""
    assert DOC_SERVER in text and "PASSWORD" in text, text
    text = text.replace(DOC_SERVER, sipnet.hostport(*server.addr))
    text = text.replace(DOC_SERVER.split(":")[0], server.addr[0])
    text = re.sub(r"\b100\b", user, text)
    return text.replace("PASSWORD", password)


def bindings(server):
    env = dict(os.environ, SER_UNIX_SOCK=server.ctl_sock,
               PYTHONPATH=os.pathsep.join(filter(None, [str(sipnet.REPO),
                                                        os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-m", "serlite.ctl", "ul", "show", "--json"],
                         cwd=sipnet.REPO, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# --- a phone's output, read by a thread ----------------------------------------------------

class Output:
    """A process's stdout, collected by a thread; wait() for a pattern with a deadline."""

    ANSI = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self, proc, name):
        self.name = name
        self.text = ""
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _pump(self, pipe):
        for chunk in iter(lambda: pipe.read1(4096), b""):
            with self.cond:
                self.text += self.ANSI.sub("", chunk.decode(errors="replace"))
                self.cond.notify_all()
        with self.cond:
            self.text += "\n[exited]\n"
            self.cond.notify_all()

    def wait(self, pattern, timeout=WAIT, start=0):
        regex = re.compile(pattern)
        with self.cond:
            found = self.cond.wait_for(lambda: regex.search(self.text, start), timeout)
            if not found:
                raise AssertionError(f"{self.name}: no {pattern!r} within {timeout} s; "
                                     f"output:\n{self.text[-3000:]}")
            return found

    def mark(self):
        with self.cond:
            return len(self.text)


# --- baresip -------------------------------------------------------------------------------

class Baresip:
    """`baresip -f DIR` with the doc's account line, no sound card: audio from a wav file, no
    player. ctrl_tcp (JSON in netstrings) for commands and events."""

    def __init__(self, workdir, account_line, name, extra_config="", files=None):
        self.name = name
        self.dir = workdir / name
        self.dir.mkdir()
        tone = self.dir / "tone.wav"
        with wave.open(str(tone), "wb") as w:     # 30 s of silence: longer than the call
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\0\0" * 8000 * 30)
        self.ctrl_port = sipnet.free_port("tcp")
        (self.dir / "config").write_text(
            "sip_listen\t127.0.0.1:0\n"          # any free port, UDP and TCP
            "net_interface\t127.0.0.1\n"         # SDP and RTP on loopback too
            "module_path\t/usr/lib/baresip/modules\n"
            "module\tg711.so\n"
            "module\taufile.so\n"
            "module\tctrl_tcp.so\n"
            "module_app\taccount.so\n"
            "module_app\tmenu.so\n"
            f"ctrl_tcp_listen\t127.0.0.1:{self.ctrl_port}\n"
            f"audio_source\taufile,{tone}\n" + extra_config)
        (self.dir / "accounts").write_text(account_line + "\n")
        for file_name, text in (files or {}).items():     # e.g. "contacts"
            (self.dir / file_name).write_text(text)
        # -t: never outlive the test, whatever happens to it
        self.proc = subprocess.Popen(["baresip", "-f", str(self.dir), "-t", "120"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.output = Output(self.proc, name)
        self.sock = None
        self.events = []
        self.cond = threading.Condition()
        self.tokens = 0

    def connect(self):
        """The control connection; baresip listens once it is ready (bounded retries)."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"{self.name}: no ctrl_tcp on {self.ctrl_port}:\n"
                                         f"{self.output.text[-3000:]}")
                time.sleep(0.05)
        self.sock.settimeout(None)
        threading.Thread(target=self._read_ctrl, daemon=True).start()

    def _read_ctrl(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b":" in buf:
                size, _, rest = buf.partition(b":")
                if len(rest) < int(size) + 1:
                    break
                message = json.loads(rest[:int(size)])
                buf = rest[int(size) + 1:]           # the netstring's trailing ','
                with self.cond:
                    self.events.append(message)
                    self.cond.notify_all()

    def _wait(self, test, what, timeout=WAIT):
        with self.cond:
            found = self.cond.wait_for(lambda: next(filter(test, self.events), None), timeout)
        if not found:
            raise AssertionError(f"{self.name}: no {what} within {timeout} s; events "
                                 f"{[e.get('type') for e in self.events]}; output:\n"
                                 f"{self.output.text[-3000:]}")
        return found

    def command(self, command, params=""):
        self.tokens += 1
        token = f"{self.name}-{self.tokens}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        reply = self._wait(lambda e: e.get("token") == token, f"reply to {command}")
        assert reply.get("ok"), f"{self.name}: {command} {params}: {reply}"
        return reply

    def wait_event(self, kind, timeout=WAIT):
        return self._wait(lambda e: e.get("event") and e.get("type") == kind, kind, timeout)

    def stop(self):
        if self.sock is not None:
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def phones(tmp_path):
    started = []

    def start(cls, *args, **kwargs):
        phone = cls(*args, **kwargs)
        started.append(phone)
        return phone

    yield start
    for phone in started:
        phone.stop()


def baresip_account(server, user, transport="udp"):
    (line,) = [ln for ln in doc_block(4).splitlines() if ln.strip()]
    line = from_doc(line, server, user, USERS[user])
    assert ";transport=udp>" in line, line
    return line.replace(";transport=udp>", f";transport={transport}>")


def test_doc_account_lines_are_what_the_test_uses():
    line = [ln for ln in doc_block(4).splitlines() if ln.strip()]
    assert line == ["<sip:100@192.168.1.1:5060;transport=udp>;auth_pass=PASSWORD"]
    block = doc_block(5)
    for option in ("reg_proxy=<sip:192.168.1.1:5060;transport=udp>",
                   "reg_identity=sip:100@192.168.1.1:5060", "username=100", "passwd=PASSWORD",
                   f"realm={REALM}"):
        assert option in block.splitlines(), option


def test_two_baresip_phones_register_and_call_each_other_through_serlite(ser, tmp_path, phones):
    need("baresip")
    server = start_server(ser, tmp_path)
    alice = phones(Baresip, tmp_path, baresip_account(server, "100", "udp"), "baresip-100")
    bob = phones(Baresip, tmp_path, baresip_account(server, "101", "tcp"), "baresip-101")

    # registered: baresip's own console line (after the 401 and the retry) and the server's table
    alice.output.wait(r"100@127\.0\.0\.1: \{0/UDP/v4\} 200 OK \(serlite\)")
    bob.output.wait(r"101@127\.0\.0\.1: \{0/TCP/v4\} 200 OK \(serlite\)")
    table = {b["aor"]: b for b in bindings(server)}
    assert set(table) == {"100", "101"}, table
    assert table["100"]["socket"].startswith("udp:") and table["101"]["socket"].startswith("tcp:")
    assert all(b["user_agent"].startswith("baresip") for b in table.values())

    alice.connect()
    bob.connect()
    alice.command("dial", "101")                 # what the doc says: dial the number
    incoming = bob.wait_event("CALL_INCOMING")
    assert incoming["peeruri"].startswith("sip:100@"), incoming
    bob.command("accept")
    assert alice.wait_event("CALL_ESTABLISHED")["peeruri"].startswith("sip:101@")
    bob.wait_event("CALL_ESTABLISHED")
    alice.command("hangup")                      # the BYE goes through serlite (record_route)
    assert bob.wait_event("CALL_CLOSED")
    log = server.log()
    assert "Traceback" not in log


def test_baresip_with_a_wrong_password_is_refused(ser, tmp_path, phones):
    need("baresip")
    server = start_server(ser, tmp_path)
    line = baresip_account(server, "100").replace(USERS["100"], "not-the-password")
    phone = phones(Baresip, tmp_path, line, "baresip-wrong")
    phone.output.wait(r"reg: sip:100@127\.0\.0\.1:\d+(;\S*)?: 401 Unauthorized \(serlite\)")
    assert "200 OK" not in phone.output.text
    assert bindings(server) == []


# --- linphonec -----------------------------------------------------------------------------

class Linphonec:
    """`linphonec -c FILE` with the doc's [proxy_0]/[auth_info_0], commands on stdin."""

    def __init__(self, workdir, account_block, name):
        self.name = name
        self.home = workdir / name
        # the doc's trap: without its database directory linphonec never starts SIP
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True)
        self.rc = self.home / "linphonerc"
        self.rc.write_text(
            "[sip]\n"
            f"sip_port={sipnet.free_port('udp')}\n"
            "sip_tcp_port=0\n"
            "sip_tls_port=0\n"
            "default_proxy=0\n\n" + account_block)
        env = dict(os.environ, HOME=str(self.home))
        self.proc = subprocess.Popen(["linphonec", "-c", str(self.rc)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.home)
        self.output = Output(self.proc, name)

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_registered(self, identity, tries=60):
        """`status register` until it says registered: at most `tries` asks, 0.25 s apart."""
        for _ in range(tries):
            start = self.output.mark()
            self.send("status register")
            found = self.output.wait(r"registered(=-?\d+|, identity=\S+ duration=\d+)",
                                     start=start)
            if found.group(1).startswith(","):
                assert f"identity={identity} " in found.group(0), found.group(0)
                return
            time.sleep(0.25)
        raise AssertionError(f"{self.name}: not registered after {tries} asks:\n"
                             f"{self.output.text[-3000:]}")

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


def test_linphonec_registers_with_the_doc_settings(ser, tmp_path, phones):
    need("linphonec")
    server = start_server(ser, tmp_path)
    block = from_doc(doc_block(5), server, "101", USERS["101"])
    phone = phones(Linphonec, tmp_path, block, "linphonec-101")
    phone.wait_registered(f"sip:101@{sipnet.hostport(*server.addr)}")
    (binding,) = bindings(server)
    assert binding["aor"] == "101" and binding["user_agent"].startswith("Linphone"), binding


def test_linphonec_with_a_wrong_password_is_asked_again(ser, tmp_path, phones):
    need("linphonec")
    server = start_server(ser, tmp_path)
    block = from_doc(doc_block(5), server, "100", "not-the-password")
    phone = phones(Linphonec, tmp_path, block, "linphonec-wrong")
    phone.output.wait(rf"Password for 100 on \"?{REALM}\"?:")
    assert bindings(server) == []


def test_linphonec_calls_baresip_through_serlite(ser, tmp_path, phones):
    need("linphonec")
    need("baresip")
    server = start_server(ser, tmp_path)
    bob = phones(Baresip, tmp_path, baresip_account(server, "100"), "baresip-100")
    bob.output.wait(r"100@127\.0\.0\.1: \{0/UDP/v4\} 200 OK \(serlite\)")
    bob.connect()
    block = from_doc(doc_block(5), server, "101", USERS["101"])
    alice = phones(Linphonec, tmp_path, block, "linphonec-101")
    alice.wait_registered(f"sip:101@{sipnet.hostport(*server.addr)}")
    alice.send("call 100")                       # the doc's `call NNN` at its prompt
    bob.wait_event("CALL_INCOMING")
    bob.command("accept")
    bob.wait_event("CALL_ESTABLISHED")
    bob_uri = re.escape(f"sip:100@{sipnet.hostport(*server.addr)}")
    alice.output.wait(rf"Call \d+ with {bob_uri} connected\.")
    bob.command("hangup")                        # the BYE from the other side, through serlite
    alice.output.wait(rf"Call \d+ with {bob_uri} ended")
