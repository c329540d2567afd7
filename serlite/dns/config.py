"""The resolver's two files, parsed from their text (the edge reads them): /etc/resolv.conf
(resolv.conf(5)) and /etc/hosts (hosts(5)).

resolv.conf: ``nameserver`` lines in order (at most ``MAX_NAMESERVERS``, as the C library),
``options timeout:N attempts:N``.  ``search``, ``domain`` and ``ndots`` are read but not
used: SIP hosts are fully qualified names (RFC 3263 4: the host part is looked up as it is),
and trying "provider.example.lan" first would only cost a query per request.  A file without
a nameserver means the local one (127.0.0.1, as the C library does); unknown lines are
skipped, as the C library skips them.
"""

import ipaddress

MAX_NAMESERVERS = 3             # glibc's MAXNS
DEFAULT_TIMEOUT = 2.0           # seconds per try (glibc: 5; a SIP request cannot wait that)
DEFAULT_ATTEMPTS = 2
MAX_TIMEOUT = 30.0              # glibc's RES_MAXRETRANS
MAX_ATTEMPTS = 5                # glibc's RES_MAXRETRY


class ResolvConf:
    """``nameservers`` [(ip, 53)], ``timeout`` (s), ``attempts``, ``search`` (unused)."""

    __slots__ = ("nameservers", "timeout", "attempts", "search", "ndots")

    def __init__(self, nameservers=(), timeout=DEFAULT_TIMEOUT, attempts=DEFAULT_ATTEMPTS,
                 search=(), ndots=1):
        self.nameservers = list(nameservers) or [("127.0.0.1", 53)]
        self.timeout = timeout
        self.attempts = attempts
        self.search = list(search)
        self.ndots = ndots

    def __repr__(self):
        return (f"ResolvConf({self.nameservers!r}, timeout={self.timeout}, "
                f"attempts={self.attempts})")


def _number(text, low, high, default):
    try:
        return max(low, min(high, int(text)))
    except ValueError:
        return default


def parse_resolv_conf(text, port=53):
    """A ``ResolvConf`` from resolv.conf text.  ``port``: where the name servers listen (53;
    tests run theirs elsewhere)."""
    servers, search = [], []
    timeout, attempts, ndots = DEFAULT_TIMEOUT, DEFAULT_ATTEMPTS, 1
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        key, args = words[0], words[1:]
        if key == "nameserver" and args and len(servers) < MAX_NAMESERVERS:
            addr = args[0].split("%", 1)[0]     # a link-local's scope: not for us
            try:
                servers.append((str(ipaddress.ip_address(addr)), port))
            except ValueError:
                continue
        elif key in ("search", "domain"):
            search = args if key == "search" else args[:1]
        elif key == "options":
            for opt in args:
                name, _, value = opt.partition(":")
                if name == "timeout":
                    timeout = float(_number(value, 1, int(MAX_TIMEOUT), int(timeout)))
                elif name == "attempts":
                    attempts = _number(value, 1, MAX_ATTEMPTS, attempts)
                elif name == "ndots":
                    ndots = _number(value, 0, 15, ndots)
    return ResolvConf(servers, timeout, attempts, search, ndots)


def parse_hosts(text):
    """{name (lower-case): (IPv4 addresses, IPv6 addresses)} from hosts text: every name and
    alias of a line maps to its address, in file order; bad addresses are skipped."""
    table = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2:
            continue
        try:
            ip = ipaddress.ip_address(words[0].split("%", 1)[0])
        except ValueError:
            continue
        family = 1 if ip.version == 6 else 0
        for name in words[1:]:
            entry = table.setdefault(name.lower().rstrip("."), ([], []))
            if str(ip) not in entry[family]:
                entry[family].append(str(ip))
    return {name: (tuple(v4), tuple(v6)) for name, (v4, v6) in table.items()}
