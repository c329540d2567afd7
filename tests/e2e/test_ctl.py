"""ser-ctl against a running server over its control socket, and without one."""

import json
import os
import subprocess
import sys

from . import sipnet
from .sipnet import UdpPeer, make_request, status_of

SEED = sipnet.SEED_CFG.read_text()


def ctl(server_or_path, *args):
    path = server_or_path if isinstance(server_or_path, str) else server_or_path.ctl_sock
    env = dict(os.environ, PYTHONPATH=str(sipnet.REPO))
    env.pop("SER_UNIX_SOCK", None)
    return subprocess.run([sys.executable, "-m", "serlite.ctl", "-s", path, *args],
                          capture_output=True, text=True, timeout=30, cwd=sipnet.REPO, env=env)


def register(server, peer, user):
    uri = f"sip:{user}@127.0.0.1:{server.port}"
    req = make_request("REGISTER", f"sip:127.0.0.1:{server.port}", via=(peer.host, peer.port),
                       to=uri, headers=[f"Contact: <sip:{user}@{peer.host}:{peer.port}>",
                                        "User-Agent: test-phone/1.0"])
    peer.send(req, server.addr)
    assert [status_of(m) for m in peer.recv_until(lambda m: status_of(m) == 200, 5)] == [200]


def test_ps_lists_the_receivers_with_the_servers_pid(ser):
    server = ser(SEED)
    out = ctl(server, "ps")
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines()]
    assert lines[0] == ["PID", "NAME", "PROTO", "ADDRESS", "PORT"]
    assert [str(server.pid), "udp", "receiver", "udp", "127.0.0.1", str(server.port)] in lines
    rows = json.loads(ctl(server, "ps", "--json").stdout)
    assert {(r["proto"], r["address"], r["port"], r["pid"]) for r in rows
            if r["proto"] != "unix"} == {("udp", "127.0.0.1", server.port, server.pid),
                                         ("tcp", "127.0.0.1", server.port, server.pid)}


def test_ul_show_and_rm_and_stats(ser):
    server = ser(SEED)
    with UdpPeer() as phone:
        register(server, phone, "alice")
        register(server, phone, "bob")
    rows = json.loads(ctl(server, "ul", "show", "--json").stdout)
    assert sorted(r["aor"] for r in rows) == ["alice", "bob"]
    assert all(r["user_agent"] == "test-phone/1.0" for r in rows)
    text = ctl(server, "ul", "show", "alice").stdout
    assert "alice" in text and "bob" not in text
    stats = json.loads(ctl(server, "stats", "--json").stdout)
    assert stats["requests_in"]["REGISTER"][0] == 2
    assert stats["replies_out"]["200"][0] == 2
    assert stats["registered_aors"] == 2
    assert ctl(server, "ul", "rm", "alice").stdout.strip() == "removed 1 binding(s)"
    assert [r["aor"] for r in json.loads(ctl(server, "ul", "show", "--json").stdout)] == ["bob"]
    assert "REGISTER" in ctl(server, "stats").stdout


def test_reload_reports_a_broken_config(ser):
    server = ser(SEED)
    assert ctl(server, "reload").stdout.strip() == "reloaded"
    server.cfg.write_text(SEED + "\nbogus(\n")
    out = ctl(server, "reload")
    assert out.returncode == 1
    assert "reload:" in out.stderr and f"{server.cfg.name}:" in out.stderr
    assert out.stderr.startswith("ser-ctl: reload: ") and "reload: reload:" not in out.stderr
    assert ctl(server, "ping").stdout.strip() == "pong"        # the old config runs on


def test_a_clear_error_when_no_server_runs(tmp_path):
    out = ctl(str(tmp_path / "nothing.sock"), "ps")
    assert out.returncode == 1
    assert out.stderr.startswith("ser-ctl: serlite is not running")
    assert len(out.stderr.strip().splitlines()) == 1
