"""Per-message cost of a compiled route: ``python3 -m tests.script.bench_script``.

The route has 6 conditions (method twice, a function result twice, uri == myself, an IP network)
and runs 4 calls of trivial module functions for an INVITE.  Not a test: prints microseconds.
"""

import sys
import timeit

import serlite.modules
from serlite.modules.export import Function, Module, ModuleSpec
from serlite.proxy.context import Context, Source
from serlite.script.compiler import compile_config

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


def main():
    spec = ModuleSpec("core", Trivial, [Function("f0", "f0"), Function("f1", "f1", (1,)),
                                        Function("neg", "neg")])
    serlite.modules.spec = lambda name: spec
    script = compile_config(CONFIG, "bench.cfg")
    ctx = Context(Msg(), Source("udp", "10.0.0.1", 5060), Core())
    n = 100000
    best = min(timeit.repeat(lambda: script.run_request(ctx), number=n, repeat=5)) / n
    print(f"Python {sys.version.split()[0]}: {best * 1e6:.2f} us per run_request")


if __name__ == "__main__":
    main()
