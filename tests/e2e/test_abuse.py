"""Abuse that a fuzzing run found to hurt (issue 13, item 8), each through the real server:
TCP connections that trickle or hog the table, hostile control-socket lines, configs nested
past reason, a full disk, Routes and Content-Lengths that cannot be, folders made under umask 0.
"""

import json
import re
import subprocess
import sys
import os
import select
import signal
import socket
import time

import pytest

from . import sipnet
from .sipnet import TcpPeer, UdpPeer, is_final, make_request, status_of

SEED = sipnet.SEED_CFG.read_text()


def seed_with(*globals_):
    return "\n".join(globals_) + "\n" + SEED


# --- the control socket ------------------------------------------------------------------------

def ctl_lines(path, lines, timeout=5.0):
    """Send raw request lines on one connection; the answers, one per line (None: none came)."""
    answers = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        buf = b""
        for line in lines:
            s.sendall(line + b"\n")
            deadline = time.monotonic() + timeout
            while b"\n" not in buf and time.monotonic() < deadline:
                ready, _, _ = select.select([s], [], [], max(0, deadline - time.monotonic()))
                if not ready:
                    break
                data = s.recv(65536)
                if not data:
                    break
                buf += data
            if b"\n" not in buf:
                answers.append(None)
                break
            answer, buf = buf.split(b"\n", 1)
            answers.append(json.loads(answer))
    return answers


@pytest.mark.parametrize("line", [b"[" * 100_000, b"{\"cmd\": " + b"[" * 60_000,
                                  b"\xff\xfe", b"{\"cmd\": \"ping\", \"args\": {\"a\": 1}}",
                                  b"{\"cmd\": \"ul\", \"args\": [[[]]]}"],
                         ids=["brackets", "deep-cmd", "not-utf8", "args-object", "args-nested"])
def test_every_bad_control_line_gets_an_error_and_the_loop_goes_on(ser, line):
    server = ser(SEED)
    answers = ctl_lines(server.ctl_sock, [line, b'{"cmd": "ping"}'])
    assert answers[0] is not None, "no answer to a bad line: the client waits"
    assert answers[0]["ok"] is False and answers[0]["error"]
    assert answers[1:] == [{"ok": True, "result": "pong"}]


def test_a_control_line_over_the_limit_is_answered_before_the_close(ser):
    server = ser(SEED)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5.0)
        s.connect(server.ctl_sock)
        got = b""
        try:
            for _ in range(40):             # 40 x 8 kB, no newline: past the 64 kB limit
                s.sendall(b"[" * 8192)
        except (BrokenPipeError, ConnectionResetError):
            pass                            # closed by the server: read what it said
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            got += data
    assert got.endswith(b"\n"), f"no answer before the close: {got[:200]!r}"
    answer = json.loads(got.splitlines()[0])
    assert answer["ok"] is False and "long" in answer["error"]
    assert ctl_lines(server.ctl_sock, [b'{"cmd": "ping"}']) == [{"ok": True, "result": "pong"}]


def test_control_socket_folders_are_not_world_writable_under_umask_0(ser, tmp_path):
    top = tmp_path / "run"
    path = top / "a" / "b" / "ser.sock"
    old = os.umask(0)           # the server inherits it, as from a careless init script
    try:
        server = ser(seed_with(f'unix_sock="{path}"'))
    finally:
        os.umask(old)
    assert ctl_lines(str(path), [b'{"cmd": "ping"}']) == [{"ok": True, "result": "pong"}]
    for folder in (top, top / "a", top / "a" / "b"):
        mode = folder.stat().st_mode & 0o777
        assert mode & 0o022 == 0, f"{folder} made {oct(mode)}"
    assert path.stat().st_mode & 0o777 == 0o600
    server.stop()


# --- configs nested past reason ------------------------------------------------------------

def nested(kind, depth):
    """SEED with a statement nested ``depth`` deep in route{}: blocks, ifs or parentheses."""
    if kind == "blocks":
        inner = "{" * depth + " drop; " + "}" * depth
    elif kind == "ifs":
        inner = "if (method == \"X\") " * depth + "drop;"
    elif kind == "parens":
        inner = "if " + "(" * depth + "method == \"X\"" + ")" * depth + " drop;"
    else:
        inner = "if " + "!" * depth + "(method == \"X\") drop;"
    return SEED.replace("route {", "route {\n" + inner + "\n", 1)


def check(path):
    env = dict(os.environ, PYTHONPATH=str(sipnet.REPO))
    return subprocess.run([sys.executable, "-m", "serlite", "-c", "-f", str(path)],
                          cwd=sipnet.REPO, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("kind", ["blocks", "ifs", "parens", "nots"])
def test_a_config_nested_1000_deep_is_a_config_error(tmp_path, kind):
    cfg = tmp_path / "deep.cfg"
    cfg.write_text(nested(kind, 1000))
    out = check(cfg)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert re.match(rf"{re.escape(str(cfg))}:\d+:\d+: .*nest", out.stderr), out.stderr[:500]
    # and a sane depth is fine
    cfg.write_text(nested(kind, 95))
    out = check(cfg)
    assert out.returncode == 0, out.stderr[-2000:]


def test_sighup_with_a_config_nested_1000_deep_keeps_the_running_one(ser):
    server = ser(SEED)
    server.cfg.write_text(nested("ifs", 1000))
    mark = len(server.log())
    os.kill(server.pid, signal.SIGHUP)
    m = sipnet.wait_log(server, r"reload failed[^\n]*", since=mark)
    assert f"{server.cfg}:" in m.group(0)
    assert "Traceback" not in server.log()[mark:]
    assert status_of(sipnet.barrier(server.addr)) == 404     # the old config answers


# --- TCP: slowloris -------------------------------------------------------------------------

def tcp_from(source_ip, server_addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5.0)
    s.bind((source_ip, 0))
    s.connect(server_addr)
    return s


def closed_by_server(s, timeout):
    """True when the server closes (or resets) ``s`` within ``timeout`` s; data is ignored."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([s], [], [], left)
        if ready:
            try:
                if not s.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True


def phone_options(server, source_ip="127.0.0.1", timeout=3.0):
    """A well-behaved TCP phone: connect, send OPTIONS at once, return the answer's status."""
    s = tcp_from(source_ip, server.addr)
    try:
        host, port = s.getsockname()
        uri = f"sip:ping@{sipnet.hostport(*server.addr)}"
        s.sendall(make_request("OPTIONS", uri, via=(host, port), to=uri, transport="TCP"))
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                return None
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            buf += data
        return status_of(buf)
    finally:
        s.close()


def test_slowloris_from_many_addresses_does_not_lock_out_a_phone(ser):
    # The defaults (256 connections): 300 connections from 10 addresses, each sending the
    # first bytes of a REGISTER and then one byte at a time, fill the table.
    server = ser(SEED)
    attackers = []
    try:
        for i in range(300):
            try:
                s = tcp_from(f"127.0.0.{2 + i % 10}", server.addr)
                s.sendall(b"REG")
                attackers.append(s)
            except OSError:
                pass            # refused or reset: the server's choice
        for round_ in range(3):
            for s in attackers:
                try:
                    s.send(b"I")
                except OSError:
                    pass
            status = phone_options(server)
            assert status == 404, f"round {round_}: a TCP phone got {status} under slowloris"
        # and a phone from an attacking address's neighbour gets in too
        assert phone_options(server, "127.0.0.200") == 404
    finally:
        for s in attackers:
            s.close()


def test_connections_that_each_sent_one_message_do_not_lock_out_a_phone(ser):
    # The slowloris above, one step on: 8 addresses x 32 connections (tcp_accept_iplimit)
    # fill the 256, each sends one whole OPTIONS (then would send a CRLF keep-alive now and
    # then): no connection is left that "has not delivered a message", so the newcomer was
    # refused.  The address holding the most connections gives up its least recently active.
    server = ser(SEED)
    attackers = []
    try:
        for i in range(256):
            s = tcp_from(f"127.0.0.{2 + i % 8}", server.addr)
            host, port = s.getsockname()
            uri = f"sip:ping@{sipnet.hostport(*server.addr)}"
            s.sendall(make_request("OPTIONS", uri, via=(host, port), to=uri, transport="TCP"))
            attackers.append(s)
        # every one answered: each has delivered its message (404: no user ping)
        for s in attackers:
            assert select.select([s], [], [], 3)[0], "an attacker's OPTIONS got no answer"
            assert status_of(s.recv(65536)) == 404
        assert phone_options(server, "127.0.0.200") == 404
        assert phone_options(server, "127.0.0.201") == 404
    finally:
        for s in attackers:
            s.close()


def test_connections_per_address_are_capped(ser):
    server = ser(seed_with("tcp_accept_iplimit=8"))
    mine = [tcp_from("127.0.0.7", server.addr) for _ in range(12)]
    try:
        closed = [s for s in mine if closed_by_server(s, 0.5)]
        assert len(closed) == 4, f"{len(closed)} of 12 closed, the cap is 8"
        assert phone_options(server, "127.0.0.8") == 404
    finally:
        for s in mine:
            s.close()


def test_a_message_trickling_in_is_cut_off_at_tcp_msg_read_timeout(ser):
    server = ser(seed_with("tcp_msg_read_timeout=2"))
    s = tcp_from("127.0.0.3", server.addr)
    try:
        started = time.monotonic()
        closed = False
        for byte in b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.3\r\n":
            s.send(bytes([byte]))       # a byte every 0.2 s: never idle, never finished
            if closed_by_server(s, 0.2):
                closed = True
                break
        took = time.monotonic() - started
        assert closed, "a message trickling in for 10 s was not cut off"
        assert 1.9 <= took <= 4.0, f"cut off after {took:.1f} s, tcp_msg_read_timeout=2"
    finally:
        s.close()


def test_a_connection_that_sends_nothing_is_closed_at_tcp_msg_data_timeout(ser):
    server = ser(seed_with("tcp_msg_data_timeout=2"))
    s = tcp_from("127.0.0.4", server.addr)
    try:
        started = time.monotonic()
        assert closed_by_server(s, 6.0), "a silent connection was kept past 6 s"
        took = time.monotonic() - started
        assert 1.9 <= took <= 4.0, f"closed after {took:.1f} s, tcp_msg_data_timeout=2"
    finally:
        s.close()


@pytest.mark.parametrize("setting", ["tcp_accept_iplimit=0", "tcp_msg_read_timeout=0",
                                     "tcp_msg_data_timeout=100000", "tcp_max_connections=0",
                                     "tcp_connection_lifetime=-1",
                                     "tcp_max_connections=100000000000000000000"])
def test_tcp_limits_are_range_checked_at_check_time(tmp_path, setting):
    cfg = tmp_path / "ser.cfg"
    cfg.write_text(seed_with(setting))
    out = check(cfg)
    assert out.returncode == 1, out.stderr
    assert re.match(rf"{re.escape(str(cfg))}:1:\d+: .*{setting.split('=')[0]}.*between",
                    out.stderr), out.stderr


# --- a full disk ----------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 512 kB tmpfs of the test's own, mounted on a folder under tmp_path (root only):
    a real file system that runs out of room (ENOSPC), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail("the disk-full test mounts a tmpfs: run the suite as root (tests/run does)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mnt)],
                   check=True, timeout=10)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], timeout=10)


def fill(folder, name="filler"):
    """Write zeros into folder/name until the file system is full; returns the file."""
    path = folder / name
    chunk = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(100_000):
            try:
                os.write(fd, chunk)
            except OSError:
                break
        else:
            raise AssertionError("the file system never filled")
    finally:
        os.close(fd)
    return path


def register_status(server, user, expires=3600):
    aor = f"sip:{user}@{sipnet.hostport(*server.addr)}"
    with UdpPeer() as ua:
        ua.send(make_request("REGISTER", f"sip:{sipnet.hostport(*server.addr)}",
                             via=(ua.host, ua.port), to=aor,
                             headers=[f"Contact: <sip:{user}@127.0.0.1:{20000 + len(user)}"
                                      f";x-pad={'p' * 100}>", f"Expires: {expires}"]),
                server.addr)
        got = ua.recv_until(is_final, 3.0)
    assert got and is_final(got[-1]), got
    return status_of(got[-1])


def test_registers_recover_as_soon_as_a_journal_line_fits(ser, small_disk):
    db = small_disk / "usrloc"
    config = (sipnet.CONFIGS / "persistence.cfg").read_text().replace("@DB_URL@", f"dbtext://{db}")
    server = ser(config)
    users = [f"u{i:03d}" for i in range(200)]       # a snapshot of ~50 kB
    for user in users:
        assert register_status(server, user) == 200
    filler = fill(small_disk)
    # the disk is full: a REGISTER soon fails (the journal's last page may hold a few more)
    refused = None
    for i in range(100):
        status = register_status(server, f"full{i:03d}")
        if status != 200:
            refused = status
            break
    assert refused == 500, "the full disk never refused a REGISTER"
    # room for a few journal lines, far from room for a snapshot
    with open(filler, "r+b") as f:
        f.truncate(max(0, filler.stat().st_size - 8192))
    assert register_status(server, "after") == 200, "still refused with room for a journal line"
    # SIGTERM: the final snapshot does not fit: the exit status says so
    assert server.stop() != 0, "exit 0 although the final save failed"
    # a restart on the same full disk serves every binding and takes REGISTERs again
    server.start()
    for user in users[::20] + ["after"]:
        assert len(sipnet.query_bindings(server.addr, user)) == 1, user
    assert register_status(server, "restarted") == 200, "refused after restart on a full disk"
    os.unlink(filler)
    assert server.stop() == 0


# --- Routes and Content-Lengths that cannot be ----------------------------------------------

@pytest.mark.parametrize("route, status", [
    ("<sip:127.0.0.1:99999999999999999999;lr>", 400),
    ("<sip:127.0.0.1:70000;lr>", 400),
    ("<sip:[::1;lr>", 400),
    ("<smp:gw.example;lr>", 416),
    ("<sip:{me};lr>, <smp:gw.example;lr>", 416),
], ids=["port-20-digits", "port-70000", "bad-ipv6", "scheme-smp", "second-smp"])
def test_a_route_with_an_invalid_uri_is_answered(ser, route, status):
    server = ser(SEED)
    route = route.replace("{me}", sipnet.hostport(*server.addr))
    with UdpPeer() as ua:
        uri = f"sip:bob@{sipnet.hostport(*server.addr)}"
        ua.send(make_request("INVITE", uri, via=(ua.host, ua.port), to=uri,
                             headers=[f"Route: {route}"]), server.addr)
        got = ua.recv_until(is_final, 2.0)
    finals = [status_of(m) for m in got if is_final(m)]
    assert finals == [status], f"{route}: {got}"
    assert status_of(sipnet.barrier(server.addr)) == 404


@pytest.mark.parametrize("length", ["-1", "99999999999999999999", "12abc"])
def test_a_tcp_content_length_that_cannot_be_gets_400_then_close(ser, length):
    server = ser(SEED)
    with TcpPeer(server.addr) as tcp:
        uri = f"sip:bob@{sipnet.hostport(*server.addr)}"
        req = make_request("OPTIONS", uri, via=(tcp.host, tcp.port), to=uri, transport="TCP")
        req = re.sub(rb"Content-Length: *\d+", f"Content-Length: {length}".encode(), req)
        assert f"Content-Length: {length}".encode() in req
        tcp.send(req)
        closed = tcp.wait_closed(3.0)
        msgs = tcp.recv_until(None, 0)
    assert [status_of(m) for m in msgs] == [400], msgs
    assert closed, "the connection stayed open: its framing is lost"
