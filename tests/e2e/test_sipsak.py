"""sipsak's usrloc mode (-U) against serlite's registrar: register, list, remove.

sipsak 0.9.8 writes only the first four digits of a five-digit port into the Request-URI
and To, so serlite listens on a four-digit port here. -Z 100 (T1 = 100 ms) keeps sipsak's
own give-up time near 6 s; the subprocess timeout bounds it anyway.
"""

import subprocess

from . import sipnet
from .sipnet import V4

SEED = sipnet.SEED_CFG.read_text()


def start(ser):
    return ser(SEED, port=sipnet.free_port_pair(V4, below=10000))


def sipsak(server, user, contact, *args, timeout=15):
    """sipsak -U for sip:user@serlite with Contact `contact` ("empty" lists, "*" is all)."""
    cmd = ["sipsak", "-U", "-s", f"sip:{user}@127.0.0.1:{server.port}", "-C", contact,
           "-H", "127.0.0.1", "-k", "127.0.0.1", "-i", "-Z", "100", "-vvv", *args]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)
    proc.report = f"{' '.join(cmd)}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_sipsak_registers_a_contact(ser):
    server = start(ser)
    reg = sipsak(server, "alice", "sip:alice@127.0.0.1:7777", "-x", "600")
    assert reg.returncode == 0, reg.report
    assert sipnet.query_bindings(server.addr, "alice") == ["sip:alice@127.0.0.1:7777"]


def test_sipsak_lists_bindings(ser):
    server = start(ser)
    for port in (7777, 7778):
        reg = sipsak(server, "alice", f"sip:alice@127.0.0.1:{port}", "-x", "600")
        assert reg.returncode == 0, reg.report
    # A REGISTER without Contact: the 200 lists the bindings. -q makes sipsak fail
    # unless the reply matches.
    for port in (7777, 7778):
        listed = sipsak(server, "alice", "empty", "-q", rf"sip:alice@127\.0\.0\.1:{port}")
        assert listed.returncode == 0, listed.report
    assert sorted(sipnet.query_bindings(server.addr, "alice")) == [
        "sip:alice@127.0.0.1:7777", "sip:alice@127.0.0.1:7778"]
    # Another user's bindings are not listed.
    assert sipnet.query_bindings(server.addr, "bob") == []


def test_sipsak_removes_one_binding_then_all(ser):
    server = start(ser)
    for port in (7777, 7778, 7779):
        reg = sipsak(server, "alice", f"sip:alice@127.0.0.1:{port}", "-x", "600")
        assert reg.returncode == 0, reg.report

    one = sipsak(server, "alice", "sip:alice@127.0.0.1:7777", "-x", "0")
    assert one.returncode == 0, one.report
    assert sorted(sipnet.query_bindings(server.addr, "alice")) == [
        "sip:alice@127.0.0.1:7778", "sip:alice@127.0.0.1:7779"]

    star = sipsak(server, "alice", "*", "-x", "0")
    assert star.returncode == 0, star.report
    assert sipnet.query_bindings(server.addr, "alice") == []
