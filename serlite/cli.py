"""The ``ser`` command line, with SER's flags:

  -f FILE   config file (default /etc/ser/ser.cfg)
  -c        check the config and exit (0, or 1 with ``file:line:col: message`` and a hint)
  -l ADDR   listen on ADDR (repeatable; overrides listen= in the config)
  -D        stay in the foreground (fork=yes never daemonises with -D, as procd needs)
  -E        log to stderr
  -d        more debug output (repeatable)
  -P FILE   write the pid to FILE
  -V        print the version
"""

import argparse
import sys

from . import __version__

DEFAULT_CONFIG = "/etc/ser/ser.cfg"


def build_parser():
    p = argparse.ArgumentParser(prog="ser", description="serlite: SER, the SIP Express Router, "
                                "for home routers")
    p.add_argument("-f", dest="config", default=DEFAULT_CONFIG, metavar="FILE",
                   help=f"configuration file (default {DEFAULT_CONFIG})")
    p.add_argument("-c", dest="check", action="store_true", help="check the config and exit")
    p.add_argument("-l", dest="listen", action="append", default=[], metavar="ADDR",
                   help="listen address: udp:127.0.0.1:5060, tcp:[::1]:5070, 127.0.0.1, eth0 "
                        "(repeatable)")
    p.add_argument("-D", dest="foreground", action="store_true", help="do not daemonise")
    p.add_argument("-E", dest="stderr", action="store_true", help="log to stderr")
    p.add_argument("-d", dest="debug", action="count", default=0, help="more debug output")
    p.add_argument("-P", dest="pidfile", metavar="FILE", help="write the pid to FILE")
    p.add_argument("-V", dest="version", action="store_true", help="print the version")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
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
    server.run()
    return 0
