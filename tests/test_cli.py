"""serlite/cli.py, the ``ser`` command as a process: ``-h`` is plain text, and ``-c`` refuses
what the start refuses, with the same words and exit status."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROUTE = "route { drop; }\n"


def ser(*args, cwd=REPO, timeout=30):
    return subprocess.run([sys.executable, "-m", "serlite", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_help_is_plain_text_in_sers_layout():
    run = ser("-h")
    assert run.returncode == 0 and run.stderr == ""
    text = run.stdout
    for markup in ("`", "**", "|---", "<", "#"):
        assert markup not in text, f"markup {markup!r} in ser -h:\n{text}"
    lines = text.splitlines()
    assert not any(line.lstrip().startswith("|") for line in lines), "no table"
    assert lines[0].startswith("version: serlite ") and lines[1].startswith("Usage: ser ")
    assert lines[2] == "Options:"
    flags = [line.split()[0] for line in lines[3:] if line.startswith("    -")]
    assert flags == ["-f", "-c", "-l", "-D", "-E", "-d", "-P", "-V", "-h"]
    assert all(len(line) <= 79 for line in lines), "fits a terminal"


def test_a_bad_flag_prints_the_usage_line_on_stderr():
    run = ser("-x")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == ("ser: option -x not recognized\n" + ser("-h").stdout.splitlines()[1]
                          + "\nser -h lists the options.\n")


def _config(tmp_path, globals_=""):
    cfg = tmp_path / "ser.cfg"
    cfg.write_text(f"{globals_}\nunix_sock=\"{tmp_path / 'ctl.sock'}\"\n{ROUTE}")
    return cfg


@pytest.mark.parametrize("globals_, args, message", [
    ("", ["-l", "tls:127.0.0.1:5061"],
     'ser: listen: tls: needs loadmodule "tls.so" with modparam("tls", "certificate", ...)'),
    ("", ["-l", "sctp:127.0.0.1"], "ser: listen: sctp:127.0.0.1: sctp is not supported"),
    ("", ["-l", "udp:127.0.0.1:99999"], "ser: listen: 127.0.0.1:99999: port 99999 out of range"),
    ("", ["-l", "nosuch-if0"], "ser: listen: 'nosuch-if0' is neither an IP address nor a "
                               "network interface"),
    ('listen="tls:127.0.0.1:5061"', [],
     'ser.cfg:1:8: listen="tls:127.0.0.1:5061" needs the tls module'),
    ('enable_tls=yes', [], "ser.cfg:1:12: enable_tls=yes needs the tls module"),
    ('loadmodule "tls.so"\nlisten="tls:127.0.0.1"', [],
     'ser.cfg:2:8: listen="tls:127.0.0.1" needs our certificate'),
    ('loadmodule "tls.so"\nmodparam("tls", "certificate", "/nonexistent/cert.pem")', [],
     "ser.cfg:1:12: module 'tls': certificate /nonexistent/cert.pem / private_key "
     "/nonexistent/cert.pem: No such file or directory"),
    ('loadmodule "tls.so"\nmodparam("tls", "tls_method", "SSLv3")', [],
     "ser.cfg:1:12: module 'tls': tls_method 'SSLv3' is not one of"),
    # the compiler's range check (file:line:col) comes before the start's own
    ("port=99999", [], "ser.cfg:1:6: 'port' must be between 1 and 65535, not 99999"),
])
def test_check_refuses_what_start_refuses(tmp_path, globals_, args, message):
    cfg = _config(tmp_path, globals_)
    check = ser("-c", "-f", cfg, *args)
    start = ser("-D", "-E", "-f", cfg, *args)        # refused before it binds: returns at once
    assert start.returncode == 1, start.stderr
    assert message in start.stderr.splitlines()[0], start.stderr
    assert check.returncode == 1, check.stderr
    assert check.stderr == start.stderr
    assert "Traceback" not in start.stderr + check.stderr


def test_check_accepts_a_good_listen_without_binding_it(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))                 # the port is taken: -c must not care
        port = held.getsockname()[1]
        run = ser("-c", "-f", _config(tmp_path), "-l", f"udp:127.0.0.1:{port}")
    assert run.returncode == 0, run.stderr
    assert run.stderr.endswith("ser.cfg: ok\n")
    assert not (tmp_path / "ctl.sock").exists(), "-c opens no control socket"


def test_check_reports_a_config_error_as_start_does(tmp_path):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("port=abc\n" + ROUTE)
    check, start = ser("-c", "-f", cfg), ser("-D", "-E", "-f", cfg)
    assert check.returncode == start.returncode == 1
    assert check.stderr == start.stderr == f"{cfg}:1:6: 'port' takes a number\n"
