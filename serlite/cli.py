"""The ``ser`` command line, with SER's flags (``HELP`` below is what ``ser -h`` prints: plain
text in the layout of SER's own ``ser -h``, for a terminal, not Markdown).

``-c`` runs what the start checks before it binds anything (the config, the listen addresses of
``-l`` or ``listen=``, the port), so a config that passes ``-c`` does not fail to start for a
reason ``-c`` could have seen; only what needs the system (a port in use, a pid file) is left
to the start.

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


USAGE = "Usage: ser [-f file] [-c] [-l address]... [-D] [-E] [-d]... [-P file] [-V] [-h]"
HELP = f"""version: serlite {__version__}
{USAGE}
Options:
    -f file      Configuration file (default {DEFAULT_CONFIG})
    -c           Check the configuration file and the listen addresses for
                  errors, then exit (0: ok; 1: file:line:col: message)
    -l address   Listen on the specified address/interface (multiple -l
                  mean listening on more addresses; -l replaces listen= of
                  the config). The address format is [proto:]addr[:port],
                  where proto=udp|tcp and addr=ip_address|interface_name.
                  E.g: -l 127.0.0.1, -l udp:127.0.0.1:5080, -l tcp:[::1],
                  -l eth0. Without a protocol both udp and tcp are used.
    -D           Do not fork into daemon mode (fork=yes is ignored)
    -E           Log to stderr
    -d           Debugging mode (multiple -d increase the level)
    -P file      Create a pid file
    -V           Version number
    -h           This help message
"""


def usage():
    return HELP


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else list(argv))
    except getopt.GetoptError as exc:
        print(f"ser: {exc}\n{USAGE}\nser -h lists the options.", file=sys.stderr)
        return 2
    if args.help:
        print(usage(), end="")
        return 0
    if args.version:
        print(f"serlite {__version__} (SER-compatible SIP server, Python {sys.version.split()[0]})")
        return 0
    from .script.errors import ConfigError
    from .server import Server, StartError
    server = Server(args.config, listen=args.listen, pidfile=args.pidfile,
                    foreground=args.foreground, debug_extra=args.debug, force_stderr=args.stderr)
    try:
        if args.check:
            script = server.check()
            for note in script.notes:
                print(f"note: {note}", file=sys.stderr)
            print(f"{args.config}: ok", file=sys.stderr)
            return 0
        server.start()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except StartError as exc:
        print(f"ser: {exc}", file=sys.stderr)
        return 1
    return server.run()
