"""SIP over TLS (serlite/tls.py, the tls module, transport.py's TLS connections), with real
peers on loopback: Python's ssl client as a phone on serlite's TLS listener, and Kamailio
(Debian's kamailio + kamailio-tls-modules) as the provider's TLS endpoint serlite forwards to.
The certificates are made at test time with the openssl command line: a test CA, a server
certificate it signs for localhost/127.0.0.1, one it signs for another name, and one from
another CA.
"""

import select
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from . import sipnet
from .sipnet import UdpPeer, hostport, is_final, make_request, status_of

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
KAM_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"


# --- the test PKI -----------------------------------------------------------------------------

def _openssl(*args, cwd):
    run = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr


def _ca(d, name):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN=serlite test {name}", cwd=d)


def _cert(d, name, ca, cn, san):
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                                   "extendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
             "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is missing: tests/run installs it")
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "otherca")
    _cert(d, "server", "ca", "localhost", "DNS:localhost,IP:127.0.0.1")
    _cert(d, "wrongname", "ca", "wrong.example", "DNS:wrong.example")
    _cert(d, "stranger", "otherca", "localhost", "DNS:localhost,IP:127.0.0.1")
    return d


# --- serlite with a TLS listener --------------------------------------------------------------

def tls_config(pki, *lines):
    return "\n".join([
        'loadmodule "tls.so"',
        f'modparam("tls", "certificate", "{pki / "server.pem"}")',
        f'modparam("tls", "private_key", "{pki / "server.key"}")',
        f'modparam("tls", "ca_list", "{pki / "ca.pem"}")',
        *lines, sipnet.SEED_CFG.read_text()])


@pytest.fixture
def tls_ser(request, tmp_path, tools):
    servers = []
    request.node._serlite_servers = servers

    def start(config):
        tls_port = sipnet.free_port("tcp")
        server = sipnet.SerServer(tmp_path / "serlite", config, name="serlite",
                                  extra_args=["-l", f"tls:127.0.0.1:{tls_port}"])
        server.tls_port = tls_port
        servers.append(server)
        return server.start()

    yield start
    sipnet.stop_servers(servers)


class TlsPeer(sipnet.TcpPeer):
    """A phone on serlite's TLS listener: Python's ssl client, the test CA trusted."""

    def __init__(self, addr, cafile, server_name="localhost", timeout=5.0):
        ctx = ssl.create_default_context(cafile=str(cafile))
        raw = socket.create_connection(addr, timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=server_name)
        self.host, self.port = self.sock.getsockname()[:2]
        self.buf = b""
        self.eof = False

    def _fill(self, left):
        if not self.sock.pending():     # bytes already decrypted wait in the SSL object
            ready, _, _ = select.select([self.sock], [], [], max(0, left))
            if not ready:
                return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            data = b""
        if not data:
            self.eof = True
        self.buf += data
        return True


def _request(method, ruri, peer, transport, **kw):
    return make_request(method, ruri, via=(peer.host, peer.port), to=ruri,
                        transport=transport, **kw)


def _final(peer, req, timeout=5.0):
    peer.send(req)
    call_id = sipnet.header_values(req, "call-id")[0]
    got = peer.recv_until(lambda m: is_final(m) and
                          sipnet.header_values(m, "call-id") == [call_id], timeout)
    return got[-1] if got and is_final(got[-1]) else None


def test_a_phone_registers_over_tls_and_is_called_on_its_connection(tls_ser, pki):
    """REGISTER over TLS; an INVITE from a UDP phone to that user reaches it over the same
    TLS connection (RFC 3261 18: serlite reuses it, the phone listens nowhere), with serlite's
    Via saying TLS and its Record-Route ;transport=tls for the TLS leg."""
    server = tls_ser(tls_config(pki))
    tls_addr = ("127.0.0.1", server.tls_port)
    domain = hostport(*server.addr)
    with TlsPeer(tls_addr, pki / "ca.pem") as phone:
        contact = f"<sip:alice@{hostport(phone.host, phone.port)};transport=tls>"
        reg = _request("REGISTER", f"sip:alice@{domain}", phone, "TLS",
                       headers=[f"Contact: {contact}", "Expires: 60"])
        answer = _final(phone, reg)
        assert answer is not None and status_of(answer) == 200, answer
        assert b"SIP/2.0/TLS" in answer
        with UdpPeer() as caller:
            invite = _request("INVITE", f"sip:alice@{domain}", caller, "UDP",
                              headers=[f"Contact: <sip:bob@{hostport(caller.host, caller.port)}>"])
            caller.send(invite, server.addr)
            got = phone.recv_until(sipnet.is_request("INVITE"), 5.0)
            assert got and got[0].startswith(b"INVITE "), got
            via = sipnet.header_values(got[0], "via")[0]
            assert via.startswith(f"SIP/2.0/TLS 127.0.0.1:{server.tls_port};"), via
            rr = sipnet.header_values(got[0], "record-route")
            assert any(";transport=tls" in r for r in rr), rr
            phone.send(sipnet.response_to(got[0], 486, "Busy Here"))
            finals = caller.recv_until(is_final, 5.0)
            assert finals and status_of(finals[-1]) == 486, finals


def test_a_handshake_never_finished_is_cut_at_the_deadline(tls_ser, pki):
    """Slowloris over TLS: connections that send a TLS record header and nothing more are
    closed after tcp_msg_data_timeout (the handshake has that long), and a real phone is
    served meanwhile."""
    server = tls_ser(tls_config(pki, "tcp_msg_data_timeout=2"))
    tls_addr = ("127.0.0.1", server.tls_port)
    slow = [socket.create_connection(tls_addr, timeout=5) for _ in range(3)]
    try:
        for s in slow:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")      # a ClientHello's first bytes
        opened = time.monotonic()
        with TlsPeer(tls_addr, pki / "ca.pem") as phone:
            ruri = f"sip:ping@{hostport(*server.addr)}"
            answer = _final(phone, _request("OPTIONS", ruri, phone, "TLS"))
            assert answer is not None, "a TLS phone is answered while the slow ones wait"
        for s in slow:
            ready, _, _ = select.select([s], [], [], 6.0)
            assert ready, "the unfinished handshake was never cut"
            assert s.recv(100) == b""
        took = time.monotonic() - opened
        assert 1.5 < took < 5.0, took
    finally:
        for s in slow:
            s.close()
    sipnet.wait_log(server, r"closing TLS connection 127\.0\.0\.1:\d+: TLS handshake "
                            r"unfinished after 2 s")


def test_a_client_that_does_not_trust_the_server_is_refused_and_nothing_breaks(tls_ser, pki):
    """A client that rejects serlite's certificate (it trusts another CA) ends the handshake;
    serlite logs it, closes, and serves the next client."""
    server = tls_ser(tls_config(pki))
    tls_addr = ("127.0.0.1", server.tls_port)
    with pytest.raises(ssl.SSLCertVerificationError):
        TlsPeer(tls_addr, pki / "otherca.pem")
    with TlsPeer(tls_addr, pki / "ca.pem") as phone:
        ruri = f"sip:ping@{hostport(*server.addr)}"
        assert _final(phone, _request("OPTIONS", ruri, phone, "TLS")) is not None
    sipnet.wait_log(server, r"TLS from 127\.0\.0\.1:\d+: TLS failed: .*alert")


# --- Kamailio as the provider's TLS endpoint ------------------------------------------------

KAM_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
tcp_children=1
enable_tls=yes
listen=tls:127.0.0.1:{port}
mpath="{modules}"
loadmodule "tls.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
modparam("tls", "config", "{dir}/tls.cfg")
request_route {{
    xlog("L_NOTICE", "KAM got $rm over $pr via $hdr(Via)\\n");
    sl_send_reply("480", "Kamailio got $pr");
}}
"""


class Kamailio:
    """kamailio -DD -E in the foreground (its own process group), on a TLS port with the
    given certificate; stopped with SIGTERM (then SIGKILL) in teardown."""

    def __init__(self, workdir, pki, cert):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = sipnet.free_port("tcp")
        (self.dir / "tls.cfg").write_text(
            f"[server:default]\nmethod = TLSv1.2+\ncertificate = {pki / (cert + '.pem')}\n"
            f"private_key = {pki / (cert + '.key')}\n")
        (self.dir / "kamailio.cfg").write_text(KAM_CFG.format(port=self.port, dir=self.dir,
                                                              modules=KAM_MODULES))
        self.logfile = self.dir / "kamailio.log"
        self.proc = None

    def start(self):
        with open(self.logfile, "wb") as out:
            self.proc = subprocess.Popen(
                [KAMAILIO, "-DD", "-E", "-f", str(self.dir / "kamailio.cfg"),
                 "-P", str(self.dir / "kamailio.pid"), "-Y", str(self.dir / "run")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        sipnet.wait_bound("tcp", sipnet.V4, self.port, 10.0, self.proc, "kamailio")
        return self

    def log(self):
        return self.logfile.read_bytes().decode("utf-8", "replace")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def kamailio(tmp_path, pki):
    if not shutil.which(KAMAILIO) and not shutil.os.path.exists(KAMAILIO):
        pytest.fail("kamailio is missing: tests/run installs kamailio-tls-modules")
    started = []

    def start(cert="server"):
        kam = Kamailio(tmp_path / f"kamailio{len(started) + 1}", pki, cert)
        started.append(kam)
        return kam.start()

    yield start
    for kam in started:
        kam.stop()


def _call(server, ruri, timeout=10.0):
    """An INVITE from a UDP phone to ``ruri`` through serlite: its final answer and how long
    it took."""
    with UdpPeer() as caller:
        invite = _request("INVITE", ruri, caller, "UDP",
                          headers=[f"Contact: <sip:bob@{hostport(caller.host, caller.port)}>"])
        began = time.monotonic()
        caller.send(invite, server.addr)
        got = caller.recv_until(is_final, timeout)
        return (got[-1] if got and is_final(got[-1]) else None), time.monotonic() - began


@pytest.mark.parametrize("ruri", ["sip:provider@127.0.0.1:{port};transport=tls",
                                  "sips:provider@localhost:{port}"])
def test_a_call_goes_to_the_provider_over_verified_tls(tls_ser, kamailio, pki, ruri):
    """serlite forwards a call to Kamailio over TLS, the certificate checked against the test
    CA (by its IP SAN for an IP literal, by name for localhost): Kamailio sees it arrive over
    TLS with serlite's TLS Via, and its answer comes back to the UDP caller; a second call
    reuses the connection."""
    kam = kamailio()
    server = tls_ser(tls_config(pki))
    for _ in range(2):
        answer, _ = _call(server, ruri.format(port=kam.port))
        assert answer is not None and status_of(answer) == 480, answer
        assert b"Kamailio got tls" in answer.split(b"\r\n")[0]
    log = kam.log()
    assert log.count("KAM got INVITE over tls via SIP/2.0/TLS 127.0.0.1:") == 2, log
    accepted = log.count("tcpconn_new") or None      # informative only
    del accepted
    assert "certificate refused" not in server.log()


@pytest.mark.parametrize("cert, why", [
    ("stranger", "certificate verify failed: unable to get local issuer certificate"),
    ("wrongname", "certificate verify failed: IP address mismatch"),
])
def test_a_provider_with_a_bad_certificate_is_refused_and_logged(tls_ser, kamailio, pki,
                                                                   cert, why):
    """Kamailio with a certificate from another CA, or from the test CA for another name: the
    handshake is refused, the log says who and why, nothing reaches Kamailio, and the caller
    gets an answer at once (RFC 3261 16.9: the branch's 503, a 500 upstream per 16.7 step 6)
    instead of waiting for timer B."""
    kam = kamailio(cert)
    server = tls_ser(tls_config(pki))
    answer, took = _call(server, f"sip:provider@127.0.0.1:{kam.port};transport=tls")
    assert answer is not None and status_of(answer) in (500, 503), answer
    assert took < 3.0, took
    sipnet.wait_log(server, rf"TLS to 127\.0\.0\.1:{kam.port} \(127\.0\.0\.1\): certificate "
                            rf"refused: {why}")
    assert "KAM got" not in kam.log()


def test_verify_certificate_0_accepts_any(tls_ser, kamailio, pki):
    """modparam("tls", "verify_certificate", 0): the owner's explicit choice to trust any
    certificate (Kamailio's default; serlite's is to check)."""
    kam = kamailio("stranger")
    server = tls_ser(tls_config(pki, 'modparam("tls", "verify_certificate", 0)'))
    answer, _ = _call(server, f"sip:provider@127.0.0.1:{kam.port};transport=tls")
    assert answer is not None and status_of(answer) == 480, answer


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_a_refused_connection_fails_the_branch_at_once(tls_ser, pki, transport):
    """Nobody listens at the next hop: the connection is refused, and the branch fails then
    (RFC 3261 16.9: as a 503; 500 upstream) rather than at timer B (fr_inv_timer)."""
    server = tls_ser(tls_config(pki))
    closed = sipnet.free_port("tcp")
    answer, took = _call(server, f"sip:provider@127.0.0.1:{closed};transport={transport}")
    assert answer is not None and status_of(answer) in (500, 503), answer
    assert took < 3.0, took


@pytest.mark.parametrize("action", ['t_relay_to_tls("localhost", "{port}")',
                                    'forward_tls("localhost", {port})'])
def test_the_scripts_tls_relay_functions(tls_ser, kamailio, pki, action):
    """Kamailio's t_relay_to_tls(host, port) and the core's forward_tls(host, port): to the
    provider over TLS, its certificate checked against the name written (localhost), and
    $proto/proto==tls tell the TLS leg in the script (a phone's request over UDP is not)."""
    kam = kamailio()
    config = "\n".join([
        'loadmodule "tls.so"',
        f'modparam("tls", "certificate", "{pki / "server.pem"}")',
        f'modparam("tls", "private_key", "{pki / "server.key"}")',
        f'modparam("tls", "ca_list", "{pki / "ca.pem"}")',
        'loadmodule "sl.so"', 'loadmodule "tm.so"',
        "route {",
        '    if (proto == tls && $proto == "tls" && $pr == "tls") {',
        '        sl_send_reply("403", "came over tls"); exit;',
        "    }",
        f"    {action.format(port=kam.port)};",
        "}", ""])
    server = tls_ser(config)
    answer, _ = _call(server, "sip:provider@example.invalid")
    assert answer is not None and status_of(answer) == 480, answer
    assert b"Kamailio got tls" in answer
    with TlsPeer(("127.0.0.1", server.tls_port), pki / "ca.pem") as phone:
        answer = _final(phone, _request("OPTIONS", "sip:x@example.invalid", phone, "TLS"))
    assert answer is not None and answer.startswith(b"SIP/2.0 403 came over tls"), answer
