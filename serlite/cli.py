"""The ``ser`` command line, with SER's flags:

  -f FILE   config file (default /etc/ser/ser.cfg)
  -c        check the config and exit (0, or 1 with ``file:line:col: message`` and a hint)
  -l ADDR   listen on ADDR (repeatable; overrides listen= in the config)
  -D        stay in the foreground (fork=yes never daemonises with -D, as procd needs)
  -E        log to stderr
  -d        more debug output (repeatable)
  -P FILE   write the pid to FILE
  -V        print the version
  -h        this help

getopt, as SER's own main.c, rather than argparse: the server's start and its resident memory
are what a router pays for (argparse and what it imports hold about 0.4 MB for nothing).
"""

import getopt
import sys

from . import __version__

DEFAULT_CONFIG = "/etc/ser/ser.cfg"


class Options:
    """The parsed command line."""

    def __init__(self):
        self.config = DEFAULT_CONFIG
        self.check = self.foreground = self.stderr = self.version = self.help = False
        self.listen = []
        self.debug = 0
        self.pidfile = None


def parse_args(argv):
    """Options from ``argv``; raises getopt.GetoptError for an unknown flag or a missing value."""
    opts, rest = getopt.getopt(argv, "f:cl:DEdP:Vh", ["help"])
    if rest:
        raise getopt.GetoptError(f"unexpected argument {rest[0]!r}")
    o = Options()
    for flag, value in opts:
        if flag == "-f":
            o.config = value
        elif flag == "-c":
            o.check = True
        elif flag == "-l":
            o.listen.append(value)
        elif flag == "-D":
            o.foreground = True
        elif flag == "-E":
            o.stderr = True
        elif flag == "-d":
            o.debug += 1
        elif flag == "-P":
            o.pidfile = value
        elif flag == "-V":
            o.version = True
        else:
            o.help = True
    return o


def usage():
    flags = __doc__.split("\n\n")[1]      # the list of flags in this module's docstring
    return f"usage: ser [-f FILE] [-c] [-l ADDR]... [-D] [-E] [-d]... [-P FILE] [-V] [-h]\n\n{flags}"


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else list(argv))
    except getopt.GetoptError as exc:
        print(f"ser: {exc}\n{usage()}", file=sys.stderr)
        return 2
    if args.help:
        print(usage())
        return 0
    if args.version:
        print(f"serlite {__version__} (SER-compatible SIP server, Python {sys.version.split()[0]})")
        return 0
    from .script.errors import ConfigError
    if args.check:
        from .script.compiler import compile_file
        try:
            script = compile_file(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        for note in script.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"{args.config}: ok", file=sys.stderr)
        return 0
    from .server import Server, StartError
    server = Server(args.config, listen=args.listen, pidfile=args.pidfile,
                    foreground=args.foreground, debug_extra=args.debug, force_stderr=args.stderr)
    try:
        server.start()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except StartError as exc:
        print(f"ser: {exc}", file=sys.stderr)
        return 1
    return server.run()
