"""The .ipk installed into a scratch root as opkg does it offline, then used from there: the
installed `ser -c`, the installed UCI generator, and the installed server under python3-light
registering a sipp UAS and completing a call through it."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e import sipnet

from .pkgtools import PYTHON3_LIGHT, SITE, install, run_installed


def test_postinst_calls_default_postinst_with_the_package_name(ipk, tmp_path):
    # /lib/functions.sh of the image enables and starts the init script; a stand-in records
    # how the postinst calls it.
    root = tmp_path / "root"
    (root / "lib").mkdir(parents=True)
    log = tmp_path / "calls"
    (root / "lib" / "functions.sh").write_text(
        f'default_postinst() {{ echo "default_postinst $* root=$IPKG_INSTROOT" >>"{log}"; }}\n')
    run = install(ipk, root)
    assert run.returncode == 0, run.stderr
    postinst = root / "usr/lib/opkg/info/serlite.postinst"
    assert log.read_text() == f"default_postinst {postinst} configure root={root}\n"


def test_postinst_without_base_files_does_nothing(installed):
    assert (installed / "usr/lib/opkg/info/serlite.postinst").exists()
    assert not (installed / "etc/rc.d").exists()


def test_installed_files(installed):
    for path, mode in (("usr/bin/ser", 0o755), ("usr/bin/ser-ctl", 0o755),
                       ("etc/init.d/ser", 0o755), ("etc/config/ser", 0o600)):
        assert (installed / path).stat().st_mode & 0o7777 == mode, path
    listed = (installed / "usr/lib/opkg/info/serlite.list").read_text().split()
    assert "/etc/init.d/ser" in listed and f"/{SITE}/serlite/server.py" in listed


def test_installed_ser_checks_the_default_config(installed):
    run = run_installed(installed, "ser", "-c", "-f", installed / "etc/ser/ser.cfg")
    assert run.returncode == 0, run.stderr
    assert "ser.cfg: ok" in run.stderr


def test_installed_ser_ctl_runs(installed):
    run = run_installed(installed, "ser-ctl", "-h")
    if (installed / SITE / "serlite" / "ctl.py").exists():
        assert run.returncode == 0, run.stderr
    else:
        assert run.returncode == 1 and "no control tool" in run.stderr


USERS = {"alice": "secret", "bob": "bobpw"}


def installed_uci(root, tmp_path, port, db):
    """The installed /etc/config/ser with a test port and a scratch registration table,
    translated by the installed generator; returns the config's path."""
    uci = (root / "etc/config/ser").read_text()
    uci = uci.replace("option port '5060'", f"option port '{port}'")
    uci = uci.replace("dbtext:///etc/ser/usrloc", f"dbtext://{db}")
    assert f"'{port}'" in uci and str(db) in uci
    uci += "".join(f"\nconfig user\n\toption name '{u}'\n\toption password '{p}'\n"
                   for u, p in USERS.items())
    (tmp_path / "ser.uci").write_text(uci)
    run = subprocess.run([str(PYTHON3_LIGHT), "-m", "serlite.uci", "-c", str(tmp_path / "ser.uci"),
                          "-o", str(tmp_path / "run"), "-a", "lan=127.0.0.1/8"],
                         capture_output=True, text=True, cwd="/", timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(root / SITE)))
    assert run.returncode == 0, run.stderr
    assert run.stderr == "", "the shipped /etc/config/ser and two users should need no notes"
    return Path(run.stdout.strip())


class InstalledServer(sipnet.SerServer):
    """sipnet's SerServer, running ROOT/usr/bin/ser under python3-light with serlite from ROOT
    only (env sets PYTHONPATH over the harness's), listening where the config says."""

    def __init__(self, root, workdir, config_text, port):
        super().__init__(workdir, config_text, python=PYTHON3_LIGHT, name="installed", port=port)
        self.root = Path(root)

    def command(self):
        return ["env", f"PYTHONPATH={self.root / SITE}", "PYTHONDONTWRITEBYTECODE=1",
                *self.python, str(self.root / "usr/bin/ser"), "-D", "-E", "-f", str(self.cfg)]


@pytest.fixture(scope="module")
def sipp():
    if shutil.which("sipp") is None:
        pytest.fail("sipp missing: run tests/run, which installs it")


def test_installed_server_registers_and_calls(installed, tmp_path, sipp):
    port = sipnet.free_port_pair()
    cfg = installed_uci(installed, tmp_path, port, tmp_path / "usrloc")
    assert installed_check(installed, cfg).returncode == 0
    # the router's /etc/ser files (nonce secret, call history) in the test's directory
    text = sipnet.localize_generated(cfg.read_text(), tmp_path)
    server = InstalledServer(installed, tmp_path / "server", text, port)
    try:
        server.start()
        assert "listening on udp:127.0.0.1:" in server.log()
        with sipnet.start_uas(workdir=tmp_path) as uas:
            # every phone logs in: bob registers with his password, alice calls with hers
            row = ("bob", sipnet.contact_uri("bob", uas.host, uas.port), "udp", 600)
            inf = sipnet.users_csv(tmp_path / "bob.csv", [row])
            sipnet.run_sipp(["-sf", sipnet.SCENARIOS / "auth_register.xml", "-inf", inf,
                             "-au", "bob", "-ap", USERS["bob"], "-t", "u1", "-i", "127.0.0.1",
                             "-p", sipnet.free_port("udp"), "-m", 1,
                             sipnet.hostport(*server.addr)],
                            workdir=tmp_path, timeout=10).assert_ok(1)
            uac = sipnet.run_uac(server.addr, workdir=tmp_path, service="bob", calls=1,
                                 scenario="auth_invite.xml",
                                 extra=["-au", "alice", "-ap", USERS["alice"], "-auth_uri",
                                        f"bob@{sipnet.hostport(*server.addr)}"])
            uas_result = uas.wait(timeout=None if uac.ok(1) else 5)
        uac.assert_ok(1)
        uas_result.assert_ok(1)
        assert (tmp_path / "usrloc").exists(), "the registration went to the configured table"
        assert server.running(), server.tail()
    finally:
        status = server.stop()
    assert status == 0, server.tail()


def installed_check(root, cfg):
    run = run_installed(root, "ser", "-c", "-f", cfg)
    assert run.returncode == 0, run.stderr
    return run


def test_the_installed_tree_imports_nothing_python3_light_lacks(installed):
    # every module of the package imports under python3-light (the CGI's and ser-ctl's too)
    names = sorted(".".join(p.relative_to(installed / SITE).with_suffix("").parts)
                   for p in (installed / SITE / "serlite").rglob("*.py")
                   if p.name != "__main__.py")
    code = ("import importlib, sys\n"
            "for n in sys.argv[1:]:\n"
            "    importlib.import_module(n.removesuffix('.__init__'))\n")
    run = subprocess.run([str(PYTHON3_LIGHT), "-c", code, *names], capture_output=True,
                         text=True, cwd="/", timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(installed / SITE),
                                  PYTHONDONTWRITEBYTECODE="1"))
    assert run.returncode == 0, run.stderr


def test_installed_commands_find_their_library_from_where_they_are(ipk, tmp_path):
    # installed under a root that is not /, run with nothing on PYTHONPATH and from /: ser,
    # ser-ctl and the CGI find <root>/usr/lib/serlite from their own real path (also through
    # a symlink), never another serlite
    root = tmp_path / "opt" / "router"
    assert install(ipk, root).returncode == 0
    init = root / SITE / "serlite" / "__init__.py"
    version = ipk.fields()["Version"]
    init.write_text(init.read_text().replace(f'"{version}"', '"0.0.0+this-root"'))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "ser").symlink_to(root / "usr/bin/ser")

    def run(*argv):
        return subprocess.run([str(PYTHON3_LIGHT), *map(str, argv)], capture_output=True,
                              text=True, env=env, cwd="/", timeout=60)

    for ser in (root / "usr/bin/ser", tmp_path / "bin" / "ser"):
        got = run(ser, "-V")
        assert got.returncode == 0, got.stderr
        assert got.stdout.startswith("serlite 0.0.0+this-root "), got.stdout
    got = run(root / "usr/bin/ser", "-c", "-f", root / "etc/ser/ser.cfg")
    assert got.returncode == 0 and got.stderr.endswith("ser.cfg: ok\n"), got.stderr
    got = run(root / "usr/bin/ser-ctl", "-h")
    assert got.returncode == 0 and "ser-ctl" in got.stdout + got.stderr, got.stderr
    cgi = subprocess.run(
        [str(PYTHON3_LIGHT), str(root / "www/cgi-bin/ser")], capture_output=True, cwd="/",
        timeout=60, env=dict(env, REQUEST_METHOD="DELETE", SER_WEBUI_CONF=os.devnull))
    assert cgi.returncode == 0 and cgi.stdout.startswith(b"Status: 405 "), cgi.stderr


def test_a_site_packages_serlite_still_wins(ipk, tmp_path):
    # the feed package's layout: serlite where python3 looks (here PYTHONPATH stands in for
    # site-packages); the launcher's own lib/serlite comes after it
    root = tmp_path / "router"
    assert install(ipk, root).returncode == 0
    site = tmp_path / "site"
    shutil.copytree(root / SITE / "serlite", site / "serlite")
    init = site / "serlite" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{ipk.fields()["Version"]}"', '"0.0.0+site"'))
    got = subprocess.run([str(PYTHON3_LIGHT), str(root / "usr/bin/ser"), "-V"], cwd="/",
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(site),
                                  PYTHONDONTWRITEBYTECODE="1"))
    assert got.returncode == 0 and got.stdout.startswith("serlite 0.0.0+site "), got.stderr
