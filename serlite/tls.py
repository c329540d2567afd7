"""TLS for SIP (RFC 3261 26.2.1, 18; RFC 5922 for what a certificate must name), sans-I/O.

Owns the ``SSLContext`` set-up from the tls module's parameters (Kamailio's names:
``certificate``, ``private_key``, ``ca_list``, ``verify_certificate``, ``require_certificate``,
``tls_method``) and the per-connection TLS state machine: an ``ssl.SSLObject`` between two
``ssl.MemoryBIO``s, fed the bytes the transport read and giving back the bytes to write.  It
never touches a socket: ``transport.py`` owns the socket, the framing, the limits and the
deadlines, exactly as for TCP, and calls ``TlsSession`` to turn ciphertext into plaintext and
back.  So the handshake runs inside the one poll loop and never blocks it.

OpenWrt's python3-light has no ``ssl`` (python3-openssl adds it): this module still imports
there; ``AVAILABLE`` is False and ``NEEDS`` says what to install.
"""

try:
    import ssl
except ImportError:         # python3-light: the server runs without TLS
    ssl = None

AVAILABLE = ssl is not None
NEEDS = "TLS needs Python's ssl module: opkg install python3-openssl"
DEFAULT_PORT = 5061         # RFC 3261 19.1.2: sips: and transport=tls

# Kamailio's tls_method values (also written with '_' for '.') -> (lowest, highest) version
# name; the versions below TLS 1.2 are refused by the default OpenSSL policy anyway, so the
# "any version" spellings mean TLS 1.2 and up.
_METHODS = {
    "tlsv1.2+": ("TLSv1_2", None), "tlsv1.3+": ("TLSv1_3", None),
    "tlsv1.2": ("TLSv1_2", "TLSv1_2"), "tlsv1.3": ("TLSv1_3", "TLSv1_3"),
    "sslv23": ("TLSv1_2", None), "tlsv1+": ("TLSv1_2", None), "any": ("TLSv1_2", None),
}
METHOD_NAMES = ("TLSv1.2+", "TLSv1.3+", "TLSv1.2", "TLSv1.3", "SSLv23")


class TlsError(Exception):
    """The TLS layer of a connection failed (handshake, certificate, a bad record): the
    connection is closed.  ``verify`` is True when the peer's certificate was refused."""

    def __init__(self, reason, verify=False):
        super().__init__(reason)
        self.reason = reason
        self.verify = verify


class TlsClosed(Exception):
    """The peer ended TLS (close_notify)."""


def _versions(method):
    key = str(method).strip().lower().replace("_", ".")
    try:
        low, high = _METHODS[key]
    except KeyError:
        raise ValueError(f"tls_method {method!r} is not one of {', '.join(METHOD_NAMES)}")
    return (getattr(ssl.TLSVersion, low),
            getattr(ssl.TLSVersion, high) if high else ssl.TLSVersion.MAXIMUM_SUPPORTED)


class TlsContexts:
    """The server and client ``SSLContext`` of the server, made once at start-up (and again
    on SIGHUP: new connections take the new certificate).  ValueError with the file and the
    reason when a file cannot be used, so that ``ser -c`` says it.

    Server side: our ``certificate``/``private_key``; a client certificate is asked for and
    checked against ``ca_list`` only with ``require_certificate`` (phones rarely have one;
    they authenticate by digest).  Client side (to a provider): ``verify_certificate`` (on
    by default, unlike Kamailio) checks the server's chain against ``ca_list`` (else the
    system's CAs) and its name against the host of the URI (RFC 5922 7.2: the SAN; an IP
    literal against an IP SAN); our certificate is offered if there is one."""

    __slots__ = ("server", "client", "certificate", "verify", "require")

    def __init__(self, certificate="", private_key="", ca_list="", verify_certificate=True,
                 require_certificate=False, tls_method="TLSv1.2+"):
        if ssl is None:
            raise ValueError(NEEDS)
        low, high = _versions(tls_method)
        self.certificate = certificate
        self.verify = bool(verify_certificate)
        self.require = bool(require_certificate)
        key = private_key or certificate        # Kamailio: the key may be in the cert file
        self.server = None
        if certificate:
            server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server.minimum_version, server.maximum_version = low, high
            _load_chain(server, certificate, key)
            if self.require:
                if not ca_list:
                    raise ValueError("require_certificate needs ca_list (the CAs that sign "
                                     "the clients' certificates)")
                _load_cas(server, ca_list)
                server.verify_mode = ssl.CERT_REQUIRED
            self.server = server
        elif self.require:
            raise ValueError("require_certificate needs a certificate of our own")
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.minimum_version, client.maximum_version = low, high
        if self.verify:
            client.check_hostname = True
            client.verify_mode = ssl.CERT_REQUIRED
            if ca_list:
                _load_cas(client, ca_list)
            else:
                client.load_default_certs()
        else:
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE
        if certificate:
            _load_chain(client, certificate, key)
        self.client = client

    def server_session(self):
        return TlsSession(self.server, True)

    def client_session(self, server_name):
        return TlsSession(self.client, False, server_name)


def _load_chain(context, certificate, key):
    try:
        context.load_cert_chain(certificate, key)
    except OSError as exc:
        raise ValueError(f"certificate {certificate} / private_key {key}: "
                         f"{exc.strerror or exc}")
    except ssl.SSLError as exc:
        raise ValueError(f"certificate {certificate} / private_key {key}: {_why(exc)} "
                         f"(PEM files; is the key the certificate's?)")


def _load_cas(context, ca_list):
    try:
        context.load_verify_locations(cafile=ca_list)
    except OSError as exc:
        raise ValueError(f"ca_list {ca_list}: {exc.strerror or exc}")
    except ssl.SSLError as exc:
        raise ValueError(f"ca_list {ca_list}: {_why(exc)} (PEM certificates)")


def _why(exc):
    """What went wrong, in OpenSSL's words without Python's decoration."""
    text = getattr(exc, "verify_message", None)
    if text:
        return f"certificate verify failed: {text}"
    return exc.reason.replace("_", " ").lower() if getattr(exc, "reason", None) else str(exc)


class TlsSession:
    """One connection's TLS: ``start()`` (client: the ClientHello), ``receive(data)`` ->
    (plaintext, bytes to write), ``send(plaintext)`` -> bytes to write.  Plaintext sent
    before the handshake is done waits in ``pending`` and goes out when it is (the
    transport bounds it as it bounds its own buffer).  Raises TlsError/TlsClosed."""

    __slots__ = ("_obj", "_in", "_out", "established", "pending", "server_name")

    def __init__(self, context, server_side, server_name=None):
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_side=server_side,
                                     server_hostname=server_name)
        self.established = False
        self.pending = bytearray()
        self.server_name = server_name

    def start(self):
        """The first flight (a client's ClientHello; nothing for a server)."""
        self._handshake()
        return self._out.read()

    def _handshake(self):
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLCertVerificationError as exc:
            raise TlsError(_why(exc), verify=True)
        except ssl.SSLError as exc:
            raise TlsError(_why(exc))
        self.established = True

    def receive(self, data):
        self._in.write(data)
        if not self.established:
            self._handshake()
            if not self.established:
                return b"", self._out.read()
            if self.pending:
                self._write(self.pending)
                self.pending = bytearray()
        chunks = []
        read = self._obj.read
        while True:
            try:
                chunk = read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                raise TlsClosed()
            except ssl.SSLError as exc:
                raise TlsError(_why(exc))
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), self._out.read()

    def send(self, plaintext):
        if not self.established:
            self.pending += plaintext
            return b""
        self._write(plaintext)
        return self._out.read()

    def _write(self, plaintext):
        try:
            self._obj.write(plaintext)
        except ssl.SSLError as exc:
            raise TlsError(_why(exc))

    def peer(self):
        """What the peer's certificate names (its subject's CN), for the log."""
        try:
            cert = self._obj.getpeercert()
        except (ValueError, ssl.SSLError):
            return ""
        for rdn in (cert or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return value
        return ""
