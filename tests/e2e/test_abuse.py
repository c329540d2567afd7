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
