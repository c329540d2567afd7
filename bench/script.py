"""Per-message cost of a compiled route: ``python3 -m bench.script``.

The route has 6 conditions (method twice, a function result twice, uri == myself, an IP network)
and runs 4 calls of trivial module functions for an INVITE.  The second route reads 3
pseudo-variables in conditions (``$rU ==``, ``$si =~``, ``$hdr(User-Agent) =~``) of a parsed
INVITE and calls one trivial function.  Not a test: prints microseconds.
"""

import sys
import timeit

import serlite.modules
from serlite.modules.export import Function, Module, ModuleSpec
from serlite.proxy.context import Context, Source
from serlite.script.compiler import compile_config
from serlite.sip.message import parse

CONFIG = '''
route {
    if (!method == "REGISTER") f0();
    if (neg()) { f0(); break; }
    if (uri == myself) {
        if (method == "REGISTER") { f0(); break; }
        if (!f1("location")) { f0(); break; }
    }
    if (src_ip == 192.168.0.0/16) f0();
    f1("x");
}
'''

PV_CONFIG = r'''
route {
    if ($rU == "100" && $si =~ "^192\.168\." && $hdr(User-Agent) =~ "Yealink") f0();
}
'''

INVITE = (
    b"INVITE sip:100@home.lan SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:100@home.lan>\r\n"
    b"From: Alice <sip:alice@home.lan>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.home.lan\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"User-Agent: Yealink SIP-T46S 66.85.0.5\r\n"
    b"Contact: <sip:alice@192.168.1.20:5062>\r\n"
    b"Content-Length: 0\r\n\r\n")


class Trivial(Module):
    def f0(self, ctx):
        return 1

    def f1(self, ctx, a):
        return 1

    def neg(self, ctx):
        return -1


class Core:
    def is_myself_uri(self, uri):
        return True

    def is_myself_ip(self, ip):
        return False


class Msg:
    method = "INVITE"
    ruri = "sip:bob@home.lan"
    uri = None


def main():
    spec = ModuleSpec("core", Trivial, [Function("f0", "f0"), Function("f1", "f1", (1,)),
                                        Function("neg", "neg")])
    serlite.modules.spec = lambda name: spec
    script = compile_config(CONFIG, "bench.cfg")
    ctx = Context(Msg(), Source("udp", "10.0.0.1", 5060), Core())
    n = 100000
    best = min(timeit.repeat(lambda: script.run_request(ctx), number=n, repeat=5)) / n
    print(f"Python {sys.version.split()[0]}: {best * 1e6:.2f} us per run_request")
    script = compile_config(PV_CONFIG, "bench.cfg")
    ctx = Context(parse(INVITE), Source("udp", "192.168.1.20", 5062), Core())
    best = min(timeit.repeat(lambda: script.run_request(ctx), number=n, repeat=5)) / n
    print(f"Python {sys.version.split()[0]}: {best * 1e6:.2f} us per run_request "
          f"reading 3 pseudo-variables")


if __name__ == "__main__":
    main()
