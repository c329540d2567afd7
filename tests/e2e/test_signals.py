"""The process: SIGTERM (save and exit), SIGHUP (reload, a broken config keeps the running one),
the pid file, and the command line's checks and errors (-c, -V, -l, -f).
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

import serlite

from . import sipnet
from .sipnet import UdpPeer, hostport, is_final, make_request, status_of

SEED = sipnet.SEED_CFG.read_text()
USRLOC = 'modparam("usrloc", "db_mode", 0)'
INVALID = sipnet.REPO / "tests" / "data" / "configs" / "invalid"
# serlite's log lines on stderr (-E); anything else the command prints is its own message
LOG_LINE = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d ser\[\d+\]: ")


def register(server, user, port, expires=3600):
    aor = f"sip:{user}@{hostport(*server.addr)}"
    with UdpPeer() as ua:
        ua.send(make_request("REGISTER", f"sip:{hostport(*server.addr)}", via=(ua.host, ua.port),
                             to=aor, headers=[f"Contact: <sip:{user}@127.0.0.1:{port}>",
                                              f"Expires: {expires}"]), server.addr)
        got = ua.recv_until(is_final, 2.0)
    assert got and status_of(got[-1]) == 200, got


def cli(*args, timeout=10):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(sipnet.REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "serlite", *map(str, args)], cwd=sipnet.REPO,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def own_lines(text):
    return [line for line in text.splitlines() if line.strip() and not LOG_LINE.match(line)]


# --- SIGTERM ------------------------------------------------------------------------------

def test_sigterm_saves_db_mode_2_bindings(ser, tmp_path):
    db = tmp_path / "usrloc"
    config = SEED.replace(USRLOC, 'modparam("usrloc", "db_mode", 2)\n'
                                  f'modparam("usrloc", "db_url", "dbtext://{db}")')
    server = ser(config)
    users = [(f"t{i:02d}", 30000 + i) for i in range(10)]
    for user, port in users:
        register(server, user, port)
    register(server, "gone", 30099)
    register(server, "gone", 30099, expires=0)

    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 2.0, "slow to exit on SIGTERM"
    assert re.search(r"stopping", server.log())

    server.start()
    for user, port in users:
        assert sipnet.query_bindings(server.addr, user) == [f"sip:{user}@127.0.0.1:{port}"]
    assert sipnet.query_bindings(server.addr, "gone") == []


# --- SIGHUP -------------------------------------------------------------------------------

def test_sighup_broken_config_kept_then_fixed_config_reloaded(ser):
    server = ser(SEED)
    register(server, "bob", 30001)
    good = server.cfg.read_text()
    broken = good + "\nroute[2] {\n    sl_send_reply(\"500\", \"x\") foo;\n}\n"
    bad_line = broken[:broken.index(" foo;")].count("\n") + 1
    server.cfg.write_text(broken)

    mark = len(server.log())
    os.kill(server.pid, signal.SIGHUP)
    m = sipnet.wait_log(server, r"reload failed[^\n]*", since=mark)
    assert re.search(rf"{re.escape(str(server.cfg))}:{bad_line}:\d+: ", m.group(0)), m.group(0)
    # the running config goes on
    assert sipnet.query_bindings(server.addr, "bob") == ["sip:bob@127.0.0.1:30001"]
    with UdpPeer() as ua:
        ua.send(sipnet.options(server.addr, ua), server.addr)
        reply = ua.recv_until(is_final, 2.0)[-1]
    assert reply.startswith(b"SIP/2.0 404 Not Found\r\n"), reply

    # fixed, and changed so that the new config shows: the reload takes
    server.cfg.write_text(good.replace('sl_reply("404", "Not Found")',
                                       'sl_reply("404", "Nobody Here")'))
    mark = len(server.log())
    os.kill(server.pid, signal.SIGHUP)
    sipnet.wait_log(server, r"reloaded", since=mark)
    with UdpPeer() as ua:
        ua.send(sipnet.options(server.addr, ua), server.addr)
        reply = ua.recv_until(is_final, 2.0)[-1]
    assert reply.startswith(b"SIP/2.0 404 Nobody Here\r\n"), reply
    # registrations survive a reload (usrloc db_mode 0: only in memory)
    assert sipnet.query_bindings(server.addr, "bob") == ["sip:bob@127.0.0.1:30001"]
    assert server.running()


# --- pid file -----------------------------------------------------------------------------

def test_pidfile_written_and_removed(tmp_path):
    pidfile = tmp_path / "run" / "ser.pid"
    server = sipnet.SerServer(tmp_path / "srv", SEED, extra_args=["-P", str(pidfile)])
    try:
        server.start()
        assert pidfile.read_text().strip() == str(server.pid)
        assert server.stop() == 0
        assert not pidfile.exists()
    finally:
        server.stop()


# --- the command line ---------------------------------------------------------------------

def test_check_seed_config_ok():
    result = cli("-c", "-f", sipnet.SEED_CFG)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_check_bad_module_name():
    cfg = INVALID / "bad-module-name.cfg"
    result = cli("-c", "-f", cfg)
    assert result.returncode == 1
    assert ("bad-module-name.cfg:9:12: no module 'registrarr' — did you mean 'registrar'?"
            in result.stderr), result.stderr


def test_version():
    result = cli("-V")
    assert result.returncode == 0
    assert re.match(rf"serlite {re.escape(serlite.__version__)}\b", result.stdout), result.stdout


def test_help_lists_every_flag():
    result = cli("-h")
    assert result.returncode == 0
    for flag in "fclDEdPVh":
        assert f"  -{flag} " in result.stdout, (flag, result.stdout)


@pytest.mark.parametrize("args, says", [
    (["-x"], "option -x not recognized"),
    (["-f"], "option -f requires argument"),
    (["-c", "extra"], "unexpected argument 'extra'"),
])
def test_bad_command_line_gets_one_line_and_usage(args, says):
    result = cli(*args)
    assert result.returncode == 2
    first, second = result.stderr.splitlines()[:2]
    assert first == f"ser: {says}"
    assert second.startswith("Usage: ser ")


@pytest.mark.parametrize("spec, says", [
    ("udp:127.0.0.1:xx", "bad port"),
    ("udp:127.0.0.1:99999", "out of range"),
    ("nosuchif0", "neither an IP address nor a network interface"),
], ids=["port-not-a-number", "port-out-of-range", "no-such-interface"])
def test_bad_listen_address(spec, says):
    result = cli("-D", "-E", "-f", sipnet.SEED_CFG, "-l", spec)
    assert result.returncode == 1
    lines = own_lines(result.stderr) + own_lines(result.stdout)
    assert len(lines) == 1, result.stderr
    assert says in lines[0] and spec.split(":")[-1] in lines[0], lines[0]


def test_listen_address_in_use():
    with UdpPeer() as holder:
        result = cli("-D", "-E", "-f", sipnet.SEED_CFG, "-l", f"udp:127.0.0.1:{holder.port}")
    assert result.returncode == 1
    lines = own_lines(result.stderr)
    assert len(lines) == 1 and str(holder.port) in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("check", [True, False], ids=["check", "start"])
def test_missing_config_file(tmp_path, check):
    missing = tmp_path / "nowhere" / "ser.cfg"
    result = cli(*(["-c"] if check else ["-D", "-E"]), "-f", missing)
    assert result.returncode == 1
    lines = own_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert str(missing) in lines[0] and "No such file" in lines[0], lines[0]
