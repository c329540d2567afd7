"""serlite/tls.py: the sans-I/O TLS session (two MemoryBIO ends fed by hand, no socket), the
contexts made from the tls module's parameters, and what a next hop of sips:/transport=tls is."""

import shutil
import subprocess
from pathlib import Path

import pytest

from serlite import tls
from serlite.proxy.forward import uri_target, via_target
from serlite.proxy.context import Source
from serlite.sip.headers import Via

REPO = Path(__file__).resolve().parents[1]
LIGHT = REPO / "tools" / "python3-light"


def _openssl(*args, cwd):
    run = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    assert shutil.which("openssl"), "the openssl command is needed (tests/run installs it)"
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                 "-subj", f"/CN=test {ca}", cwd=d)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=provider.test", cwd=d)
    (d / "ext").write_text("subjectAltName=DNS:provider.test,IP:192.0.2.7\n")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext", cwd=d)
    return d


def _pump(client, server, first):
    """Carry the records between two sessions until neither has anything to say; the
    plaintext each received."""
    got = {"client": b"", "server": b""}
    to_server, to_client = first, b""
    for _ in range(20):
        if not to_server and not to_client:
            return got
        if to_server:
            data, to_client_more = server.receive(to_server)
            got["server"] += data
            to_client += to_client_more
            to_server = b""
        if to_client:
            data, to_server = client.receive(to_client)
            got["client"] += data
            to_client = b""
    raise AssertionError("the handshake did not settle in 20 flights")


def _contexts(pki, **kw):
    return tls.TlsContexts(str(pki / "srv.pem"), str(pki / "srv.key"), str(pki / "ca.pem"),
                           **kw)


@pytest.mark.parametrize("name", ["provider.test", "192.0.2.7"])
def test_a_session_pair_shakes_hands_in_memory_and_carries_what_waited(pki, name):
    ctx = _contexts(pki)
    server, client = ctx.server_session(), ctx.client_session(name)
    hello = client.start()
    assert hello and not client.established
    assert client.send(b"OPTIONS early") == b""          # kept until the handshake is done
    got = _pump(client, server, hello)
    assert client.established and server.established
    assert got["server"] == b"OPTIONS early"
    data, _ = client.receive(server.send(b"SIP/2.0 200 OK"))
    assert data == b"SIP/2.0 200 OK"
    assert client.peer() == "provider.test"


@pytest.mark.parametrize("name, why", [("other.test", "Hostname mismatch"),
                                       ("192.0.2.8", "IP address mismatch")])
def test_a_certificate_for_another_name_is_refused(pki, name, why):
    ctx = _contexts(pki)
    server, client = ctx.server_session(), ctx.client_session(name)
    with pytest.raises(tls.TlsError) as err:
        _pump(client, server, client.start())
    assert err.value.verify and why in err.value.reason


def test_a_certificate_from_another_ca_is_refused_unless_verification_is_off(pki):
    theirs = _contexts(pki)
    ours = tls.TlsContexts("", "", str(pki / "other.pem"))
    client = ours.client_session("provider.test")
    with pytest.raises(tls.TlsError) as err:
        _pump(client, theirs.server_session(), client.start())
    assert err.value.verify
    assert err.value.reason == "certificate verify failed: unable to get local issuer certificate"
    trusting = tls.TlsContexts("", "", str(pki / "other.pem"), verify_certificate=0)
    client = trusting.client_session("provider.test")
    _pump(client, theirs.server_session(), client.start())
    assert client.established


def test_bad_parameters_say_what_is_wrong(pki, tmp_path):
    with pytest.raises(ValueError, match="No such file"):
        tls.TlsContexts(str(tmp_path / "none.pem"))
    with pytest.raises(ValueError, match="tls_method 'TLSv1' is not one of"):
        _contexts(pki, tls_method="TLSv1")
    with pytest.raises(ValueError, match="require_certificate needs ca_list"):
        tls.TlsContexts(str(pki / "srv.pem"), str(pki / "srv.key"), require_certificate=1)
    with pytest.raises(ValueError, match="key values mismatch|is the key the certificate's"):
        tls.TlsContexts(str(pki / "srv.pem"), str(pki / "ca.key"))
    assert _contexts(pki, tls_method="TLSv1_3+").server is not None


def test_tls_next_hops_and_replies():
    assert uri_target("sips:p@provider.test") == ("tls", "provider.test", 5061)
    assert uri_target("sip:p@192.0.2.7:5071;transport=TLS") == ("tls", "192.0.2.7", 5071)
    assert uri_target("sip:p@192.0.2.7;transport=tcp") == ("tcp", "192.0.2.7", 5060)
    assert via_target(Via.parse("SIP/2.0/TLS 192.0.2.7:5071;branch=z9hG4bK1")) == \
        ("tls", "192.0.2.7", 5071)
    conn = object()
    assert via_target(Via.parse("SIP/2.0/TLS phone.invalid;branch=z9hG4bK1"),
                      Source("tls", "192.0.2.9", 40000, None, conn)) == ("tls", "192.0.2.9", 40000)


def test_without_ssl_the_server_still_imports_and_says_what_tls_needs(tmp_path):
    """python3-light (no ssl): tls.AVAILABLE is False; a config asking for TLS is refused at
    its line with what to install; one that does not starts as before (test_layers)."""
    cfg = tmp_path / "ser.cfg"
    cfg.write_text('listen="tls:127.0.0.1:5061"\nroute { drop; }\n')
    run = subprocess.run([str(LIGHT), "-m", "serlite", "-c", "-f", str(cfg)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.startswith(f"{cfg}:1:8: listen=\"tls:127.0.0.1:5061\": TLS needs Python's "
                                 "ssl module: opkg install python3-openssl"), run.stderr
    cfg.write_text('loadmodule "tls.so"\nroute { drop; }\n')
    run = subprocess.run([str(LIGHT), "-m", "serlite", "-c", "-f", str(cfg)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.startswith(f"{cfg}:1:12: module 'tls': TLS needs Python's ssl module: "
                                 "opkg install python3-openssl"), run.stderr


def test_require_certificate_refuses_a_client_without_one(pki):
    """require_certificate=1: a client must show a certificate that ca_list signs (here the
    test CA's own server certificate serves as the client's)."""
    theirs = _contexts(pki, require_certificate=1)
    anonymous = tls.TlsContexts("", "", str(pki / "ca.pem"))
    client, server = anonymous.client_session("provider.test"), theirs.server_session()
    _, hello_back = server.receive(client.start())
    _, finished = client.receive(hello_back)
    assert client.established       # TLS 1.3: the client is done before the server decides
    with pytest.raises(tls.TlsError, match="peer did not return a certificate"):
        server.receive(finished)
    server = theirs.server_session()
    client = _contexts(pki).client_session("provider.test")
    _pump(client, server, client.start())
    assert server.established and server.peer() == "provider.test"
