"""tls: SIP over TLS (RFC 3261 26.2), with the parameters of Kamailio's tls module.

``loadmodule "tls.so"`` with ``modparam("tls", "certificate", ...)`` and ``private_key`` for
``listen=tls:ADDR:PORT``; ``ca_list`` the CAs that sign the peers' certificates (a provider's,
or with ``require_certificate`` the clients'); ``verify_certificate`` (on by default, unlike
Kamailio: a request routed to ``sips:`` or ``;transport=tls`` goes only to a server whose
certificate chains to ``ca_list``, else to the system's CAs, and names the URI's host);
``tls_method`` the versions offered.  The contexts are made when the config is compiled, so
``ser -c`` reads the files and says what is wrong with them (it writes nothing).  The
connections themselves are ``serlite/transport.py``'s, the TLS state ``serlite/tls.py``'s.
"""

from .. import tls as _tls
from .export import Module, ModuleSpec, Param


class Tls(Module):
    name = "tls"

    def __init__(self, params):
        super().__init__(params)
        p = params
        # ValueError (the compiler reports it at the loadmodule line): no ssl, a file missing
        # or unreadable, a key that is not the certificate's, an unknown tls_method
        self.contexts = _tls.TlsContexts(p["certificate"], p["private_key"], p["ca_list"],
                                         p["verify_certificate"], p["require_certificate"],
                                         p["tls_method"])

    def start(self, core, previous=None):
        super().start(core, previous)
        # SIGHUP: the new connections get the new files
        if getattr(core, "transport", None) is not None:
            core.transport.tls = self.contexts


EXPORTS = ModuleSpec(
    name="tls",
    doc="SIP over TLS: listen=tls:ADDR:PORT, and sips:/transport=tls next hops "
        "(needs Python's ssl: python3-openssl).",
    factory=Tls,
    params={
        "certificate": Param(str, "", "our certificate (PEM; the chain after it); needed "
                                      "for listen=tls"),
        "private_key": Param(str, "", "its private key (PEM); empty: in the certificate file"),
        "ca_list": Param(str, "", "CA certificates (PEM) the peers' certificates are checked "
                                  "against; empty: the system's"),
        "verify_certificate": Param(int, 1, "1: check the certificate of a server we connect "
                                            "to (chain and name); 0: accept any", min=0, max=1),
        "require_certificate": Param(int, 0, "1: a client must present a certificate signed "
                                             "by ca_list", min=0, max=1),
        "tls_method": Param(str, "TLSv1.2+", "TLSv1.2+, TLSv1.3+, TLSv1.2 or TLSv1.3"),
    },
)
