"""/etc/config/ser (UCI) -> the ser.cfg the router runs: ``python3 -m serlite.uci``.

The init script calls this at every start and reload.  It reads the UCI file, writes the
generated config and the accounts' ``subscriber`` table (the ``config user`` sections, as HA1
only; the shipped ser.cfg reads it too) to a directory in RAM (``/var/etc/ser``), and prints the path of the config to run: the generated one, or the expert's
own file when ``option config`` is set.  Notes go to stderr, one line each, and the init script
sends them to the system log: an option this file does not know is reported, never dropped in
silence.  A value it cannot use is an error (exit status 1), and the server is not started;
so it is not when no interface has an address yet (exit status 2, at boot).

    python3 -m serlite.uci -c /etc/config/ser -o /var/etc/ser -a lan=192.168.1.1/24 -a wan=...

``-a IFACE=ADDRESS[/PREFIX]`` gives the addresses of a UCI interface (the init script asks netifd
for them): the server listens on the addresses of the listed interfaces, and the networks of the
non-WAN ones are "the LAN": not rate-limited, no NAT handling, and, only with ``option
trust_lan '1'``, no password.  Every other phone logs in.

``ser-ctl user ...`` edits the same ``config user`` sections and rewrites the table with
``write_accounts`` (the running server notices it; no reload).

The pieces are pure functions: ``parse(text)`` (the UCI file syntax), ``settings(sections)``,
``generate(sections, addresses)`` (the config text) and ``subscribers(...)`` (the table text).
"""

import argparse
import hashlib
import ipaddress
import os
import re
import shlex
import sys

from .media.rtpp import parse_sock
from .store.files import make_dirs

RUN_DIR = "/var/etc/ser"                 # RAM: written at each start, never on flash
UCI_FILE = "/etc/config/ser"
SECRET_FILE = "/etc/ser/auth_secret"     # made once by auth (flash), so nonces outlive restarts
DEFAULT_LOCATION_DB = "dbtext:///etc/ser/usrloc"
PRESENCE_DB = "dbtext:///etc/ser/presence"     # presence: publications and subscriptions
DEFAULT_REALM = "serlite"
MODULE_DIR = "/usr/lib/ser/modules"      # SER's paths, as in files/etc/ser/ser.cfg
LOOPBACK = ("127.0.0.0/8", "::1/128")


class UciError(Exception):
    """A UCI file or value that cannot be used; the message says where and why."""


class NoAddress(UciError):
    """None of the interfaces to listen on has an address yet (at boot, before netifd brought
    them up): exit status 2, and the init script starts the server when one comes up."""


# --- the UCI file ---------------------------------------------------------------------------

class Section:
    """``config TYPE ['NAME']`` and its options: ``option`` values are str, ``list`` values
    lists of str (in file order)."""

    def __init__(self, type_, name=None, line=0):
        self.type = type_
        self.name = name
        self.line = line
        self.end = line             # the line of its last option/list (for editing in place)
        self.option_lines = {}      # option name -> the line numbers that set it
        self.options = {}

    def label(self):
        return f"{self.type} '{self.name}'" if self.name else f"unnamed {self.type} (line {self.line})"

    def __repr__(self):
        return f"Section({self.type!r}, {self.name!r}, {self.options!r})"


def parse(text, filename="<uci>"):
    """The sections of a UCI file, as ``uci`` itself reads it: one statement a line
    (``package``, ``config``, ``option``, ``list``), words quoted as in the shell, ``#`` comments."""
    sections = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise UciError(f"{filename}:{lineno}: {exc}") from None
        if not words:
            continue
        keyword, args = words[0], words[1:]
        if keyword == "package":
            continue
        if keyword == "config":
            if len(args) not in (1, 2):
                raise UciError(f"{filename}:{lineno}: write config TYPE ['NAME']")
            sections.append(Section(args[0], args[1] if len(args) == 2 else None, lineno))
        elif keyword in ("option", "list"):
            if not sections:
                raise UciError(f"{filename}:{lineno}: {keyword} before any config line")
            if len(args) != 2:
                raise UciError(f"{filename}:{lineno}: write {keyword} NAME 'VALUE'")
            name, value = args
            sections[-1].end = lineno
            sections[-1].option_lines.setdefault(name, []).append(lineno)
            options = sections[-1].options
            if keyword == "option":
                options[name] = value
            else:
                previous = options.get(name)
                options[name] = (previous if isinstance(previous, list) else
                                 [] if previous is None else [previous]) + [value]
        else:
            raise UciError(f"{filename}:{lineno}: unknown keyword {keyword!r} "
                           f"(config, option, list)")
    return sections


# --- what the options mean ------------------------------------------------------------------

# The options of the 'ser' section named 'main', with what they do (the README repeats this).
MAIN_OPTIONS = {
    "enabled": "start the server (the init script reads it)",
    "interface": "UCI interfaces to listen on (lan, guest, ...)",
    "port": "SIP port, UDP and TCP",
    "domain": "the SIP domain the phones use; also the digest realm",
    "wan_open": "also listen on the WAN interface (every phone logs in, wherever it is)",
    "trust_lan": "1: phones on the LAN call and register without a password (not safe)",
    "wan": "the UCI name of the WAN interface",
    "log_level": "SER's debug=: 2 notices, 3 info, 4 debug",
    "location_db": "where registrations are kept (dbtext:///dir)",
    "user_db": "your own auth_db table directory instead of 'user' sections",
    "config": "run this ser.cfg as it is (experts); other options are then ignored",
    # secfilter (docs/security.md): failed logins ban their source, scanners get nothing
    "ban_failures": "failed logins within ban_window that ban the source address (5)",
    "ban_window": "seconds in which ban_failures failed logins ban (600)",
    "ban_time": "seconds of the first ban, doubled per repeat offence (900)",
    "ban_time_max": "longest ban, in seconds (86400)",
    "trusted": "addresses/networks never banned, e.g. your provider's (list)",
    "scanner_agents": "User-Agent parts whose requests are dropped unanswered (list; given, "
                      "it replaces the default list)",
    # rtpproxy (docs/modules.md): the audio of calls that cross the router's NAT
    "relay": "relay calls' audio through the router: auto (calls between the LAN and "
             "elsewhere), on (every call), off",
    "rtp_ports": "the relay's UDP ports, FIRST-LAST (16384-16483: 4 a call)",
    # tls (docs/architecture.md): SIP over TLS, needs python3-openssl
    "tls_cert": "our certificate (PEM file): SIP over TLS on tls_port of every address",
    "tls_key": "its private key (PEM file; empty: in tls_cert)",
    "tls_port": "SIP over TLS port (5061)",
    "tls_ca": "CA certificates (PEM file) for the servers serlite connects to over TLS (a "
              "provider's); empty: the system's",
    "presence_house": "1: a phone may watch the presence and calls of every user of the "
                      "house (its contacts, busy lamps); 0: only its own",
    "relay_sock": "an external relay instead (rtpengine --listen-udp with interfaces named "
                  "internal and external, or rtpproxy): udp:HOST:PORT; empty: the router's own",
}
USER_OPTIONS = ("name", "password")
_TRUE = ("1", "yes", "on", "true", "enabled")
_FALSE = ("0", "no", "off", "false", "disabled")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_IFACE = re.compile(r"^[A-Za-z0-9_.-]+$")


class Settings:
    """The 'main' section's options, checked, with their defaults."""

    def __init__(self):
        self.enabled = False
        self.interfaces = ["lan"]
        self.port = 5060
        self.domain = ""
        self.wan_open = False
        self.trust_lan = False
        self.wan = "wan"
        self.log_level = 2
        self.location_db = DEFAULT_LOCATION_DB
        self.user_db = ""
        self.config = ""
        self.users = []          # (name, password)
        self.ban_failures = 5
        self.ban_window = 600
        self.ban_time = 900
        self.ban_time_max = 86400
        self.trusted = []        # ip_network
        self.scanner_agents = None      # None: secfilter's default list
        self.relay = "auto"
        self.rtp_ports = RTP_PORTS
        self.tls_cert = ""
        self.tls_key = ""
        self.tls_port = 5061
        self.tls_ca = ""
        self.relay_sock = ""     # an external relay's rtpproxy_sock, "": the built-in one
        self.provider = None     # uci_provider.Provider of the config provider section
        self.presence_house = True      # SUBSCRIBE to the house's other users (presence)

    @property
    def listen_interfaces(self):
        names = [i for i in self.interfaces if i != self.wan]
        # a provider: its answers and calls come to the WAN address (wan_open 0: only its)
        return names + [self.wan] if self.wan_open or self.provider else names

    @property
    def realm(self):
        return self.domain or DEFAULT_REALM


def _bool(where, value):
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise UciError(f"{where}: {value!r} is not a boolean (1/0, yes/no, on/off)")


def _int(where, value, low, high):
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise UciError(f"{where}: {value!r} is not a number from {low} to {high}")
    return number


def _single(where, value):
    if isinstance(value, list):
        raise UciError(f"{where}: give one value (option), not a list")
    return value


def _quotable(where, value):
    if any(c in value for c in '"\\\n\r'):
        raise UciError(f"{where}: {value!r} may not hold quotes, backslashes or line breaks")
    return value


def _db_url(where, value):
    _quotable(where, value)
    if not (value.startswith("dbtext:///") or value.startswith("/")):
        raise UciError(f"{where}: {value!r} is neither dbtext:///directory nor /directory")
    return value if value.startswith("dbtext:") else "dbtext://" + value


def settings(sections, notes=None):
    """The checked Settings of parsed sections; what is ignored is appended to ``notes``."""
    notes = [] if notes is None else notes
    s = Settings()
    main = None
    for section in sections:
        if section.type == "ser" and section.name == "main" and main is None:
            main = section
        elif section.type == "ser":
            notes.append(f"section {section.label()} ignored: the options live in "
                         f"config ser 'main'")
        elif section.type == "user":
            s.users.append(_user(section, notes))
        elif section.type == "provider":
            pass                # uci_provider, below (it needs the accounts)
        else:
            notes.append(f"section {section.label()} ignored: unknown type "
                         f"(ser 'main', user)")
    if main is None:
        notes.append("no config ser 'main' section: using the defaults")
        main = Section("ser", "main")
    for name, value in main.options.items():
        where = f"option {name}"
        if name not in MAIN_OPTIONS:
            notes.append(f"option {name!r} in ser 'main' is not understood, ignored "
                         f"(known: {', '.join(MAIN_OPTIONS)})")
        elif name == "interface":
            words = value if isinstance(value, list) else [value]
            names = [w for item in words for w in item.split()]
            for n in names:
                if not _IFACE.match(n):
                    raise UciError(f"{where}: {n!r} is not an interface name")
            s.interfaces = names
        elif name in ("enabled", "wan_open", "trust_lan", "presence_house"):
            setattr(s, name, _bool(where, _single(where, value)))
        elif name == "port":
            s.port = _int(where, _single(where, value), 1, 65535)
        elif name == "log_level":
            s.log_level = _int(where, _single(where, value), -3, 4)
        elif name == "domain":
            domain = _single(where, value).strip()
            if domain and not _HOST.match(domain):
                raise UciError(f"{where}: {domain!r} is not a domain name")
            s.domain = domain
        elif name == "wan":
            s.wan = _single(where, value)
            if not _IFACE.match(s.wan):
                raise UciError(f"{where}: {s.wan!r} is not an interface name")
        elif name in ("location_db", "user_db"):
            value = _single(where, value)
            setattr(s, name, _db_url(where, value) if value else "")
        elif name == "config":
            s.config = _quotable(where, _single(where, value))
        elif name in BAN_OPTIONS:
            _ban_option(s, name, where, value)
        elif name == "relay":
            s.relay = _relay_mode(where, _single(where, value))
        elif name == "rtp_ports":
            s.rtp_ports = _port_range(where, _single(where, value))
        elif name == "tls_port":
            s.tls_port = _int(where, _single(where, value), 1, 65535)
        elif name in ("tls_cert", "tls_key", "tls_ca"):
            path = _quotable(where, _single(where, value).strip())
            if path and not path.startswith("/"):
                raise UciError(f"{where}: {path!r} is not an absolute path")
            setattr(s, name, path)
        elif name == "relay_sock":
            s.relay_sock = _relay_sock(where, _single(where, value))
    tls_set = [n for n in ("tls_key", "tls_port", "tls_ca") if n in main.options]
    if tls_set and not s.tls_cert and not s.config:
        notes.append("option tls_cert is not set: no SIP over TLS ("
                     + ", ".join(f"option {n}" for n in tls_set) + " ignored)")
    from . import uci_provider
    s.provider = uci_provider.provider(sections, [name for name, _ in s.users], notes)
    if s.provider and s.trust_lan and not s.config:
        notes.append("trust_lan is set: any device on the LAN can call out through the "
                     "provider, at your cost")
    if s.ban_time_max < s.ban_time:
        raise UciError(f"option ban_time_max: {s.ban_time_max} is shorter than ban_time "
                       f"({s.ban_time})")
    if s.relay != "off" and s.rtp_ports[0] <= s.port <= s.rtp_ports[1]:
        raise UciError(f"option rtp_ports: {s.rtp_ports[0]}-{s.rtp_ports[1]} holds the SIP "
                       f"port {s.port} (option port): the relay's ports must be others")
    if not s.location_db:
        s.location_db = DEFAULT_LOCATION_DB
    if s.config:
        # the accounts (user sections, realm = domain) still fill the table the shipped
        # ser.cfg reads; the rest is the config's business
        ignored = [n for n in main.options if n in MAIN_OPTIONS and n not in (
            "enabled", "config", "interface", "wan", "wan_open", "domain", "user_db")]
        if ignored:
            notes.append(f"option config is set: {s.config} runs as it is; "
                         + ", ".join(f"option {n}" for n in ignored) + " ignored")
    elif s.wan_open and not s.domain:
        notes.append(f"option domain is not set: the digest realm is {DEFAULT_REALM!r}")
    if s.user_db and s.users:
        notes.append(f"option user_db is set: the user sections are ignored, "
                     f"accounts come from {s.user_db}")
    elif not s.user_db and not s.users:
        notes.append("no accounts yet: no phone can register or call until one is added "
                     "(ser-ctl user add 100 PASSWORD, or a config user section)")
    if s.trust_lan and not s.config:
        notes.append("trust_lan is set: phones on the LAN register and call without a "
                     "password (any device on the LAN can use any extension)")
    if s.wan in s.interfaces and not s.wan_open:
        notes.append(f"interface {s.wan!r} is the WAN and wan_open is 0: not listening on it")
    return s


BAN_OPTIONS = ("ban_failures", "ban_window", "ban_time", "ban_time_max", "trusted",
               "scanner_agents")
_BAN_RANGES = {"ban_failures": (1, 1000), "ban_window": (1, 86400),
               "ban_time": (1, 31536000), "ban_time_max": (1, 31536000)}


def _ban_option(s, name, where, value):
    """secfilter's options, checked as its modparams are (the same ranges)."""
    if name in _BAN_RANGES:
        setattr(s, name, _int(where, _single(where, value), *_BAN_RANGES[name]))
        return
    words = [w for item in (value if isinstance(value, list) else [value])
             for w in item.replace(",", " ").split()] if name == "trusted" else \
        [item.strip() for item in (value if isinstance(value, list) else [value])]
    if name == "trusted":
        nets = []
        for w in words:
            try:
                nets.append(ipaddress.ip_network(w, strict=True))
            except ValueError as exc:
                raise UciError(f"{where}: {w!r} is not an address or network "
                               f"(192.168.1.10, 203.0.113.0/24): {exc}") from None
        s.trusted = nets
        return
    agents = []
    for w in words:
        if not w or "," in w:
            raise UciError(f"{where}: {w!r}: give one user agent part per list line, "
                           f"without commas")
        agents.append(_quotable(where, w))
    s.scanner_agents = agents


RELAY_MODES = ("auto", "on", "off")
RTP_PORTS = (16384, 16483)


def _relay_sock(where, value):
    """option relay_sock: an external relay's control socket, as rtpproxy_sock reads it."""
    if not value.strip():
        return ""
    try:
        return str(parse_sock(value))
    except ValueError as exc:
        raise UciError(f"{where}: {exc}") from None


def _relay_mode(where, value):
    mode = value.strip().lower()
    if mode in _TRUE:
        mode = "on"
    elif mode in _FALSE:
        mode = "off"
    if mode not in RELAY_MODES:
        raise UciError(f"{where}: {value!r} is not auto, on or off")
    return mode


def _port_range(where, value):
    """'16384-16483' -> (16384, 16483), as the rtpproxy module's rtp_port_min/max allow."""
    low, sep, high = value.strip().partition("-")
    try:
        first, last = int(low), int(high)
    except ValueError:
        first = last = None
    if not sep or first is None:
        raise UciError(f"{where}: {value!r} is not a port range FIRST-LAST (16384-16483)")
    if not 1024 <= first < last <= 65535:
        raise UciError(f"{where}: {value!r}: the ports must be from 1024 to 65535, the first "
                       f"below the last")
    if last - first + 1 < 4:
        raise UciError(f"{where}: {value!r} holds {last - first + 1} ports: a call needs 4")
    # RTP on an even port, RTCP on the one above (RFC 3550 11), as the relay's PortPool takes
    # them; a relayed call's audio takes a pair facing each side
    pairs = len(range(first + (first & 1), last, 2))
    if pairs < 2:
        raise UciError(f"{where}: {value!r} holds {pairs} RTP/RTCP pair (an even port and the "
                       f"next): a call needs 2, 4 ports from an even one ({first + (first & 1)}"
                       f"-{first + (first & 1) + 3})")
    return first, last


def is_user_name(name):
    """One SIP user name as an account's name: no ':', '@', white space, backslash or control
    character (the table, the digest username and the AOR all hold it)."""
    return isinstance(name, str) and bool(name) and not any(
        c in ":@\\" or c.isspace() or ord(c) < 32 or ord(c) == 127 for c in name)


def user_sections(sections):
    """[(section, name, password)] of the ``config user`` sections, in file order."""
    return [(sec, sec.options.get("name", sec.name or ""), sec.options.get("password", ""))
            for sec in sections if sec.type == "user"]


def _user(section, notes):
    where = f"section {section.label()}"
    for name in section.options:
        if name not in USER_OPTIONS:
            notes.append(f"option {name!r} in {where} is not understood, ignored "
                         f"(known: {', '.join(USER_OPTIONS)})")
    name = section.options.get("name", section.name or "")
    password = section.options.get("password", "")
    if not is_user_name(name):
        raise UciError(f"{where}: option name must be one SIP user name "
                       f"(no ':', '@', spaces or backslashes)")
    if not isinstance(password, str) or not password:
        raise UciError(f"{where}: option password is missing")
    return name, password


# --- the generated config -------------------------------------------------------------------

def _interfaces(addresses):
    """{iface: [ip_interface]} from {iface: ['192.168.1.1/24', 'fd00::1/64', ...]}."""
    out = {}
    for iface, items in addresses.items():
        parsed = []
        for item in items:
            try:
                parsed.append(ipaddress.ip_interface(item))
            except ValueError:
                raise UciError(f"address {item!r} of interface {iface!r} is not an IP "
                               f"address[/prefix]") from None
        out[iface] = parsed
    return out


def listen_addresses(s, addresses, notes=None):
    """The addresses to listen on, in interface order, without duplicates or link-local ones
    (they need a scope the config cannot give)."""
    notes = [] if notes is None else notes
    found = _interfaces(addresses)
    out = []
    for iface in s.listen_interfaces:
        ips = [a.ip for a in found.get(iface, []) if not a.ip.is_link_local]
        if not ips:
            notes.append(f"interface {iface!r} has no address now: not listening on it "
                         f"(the init script starts again when it comes up)")
        for ip in ips:
            if ip not in out:
                out.append(ip)
    return out


def lan_networks(s, addresses):
    """The networks whose phones need no password: those of the listened non-WAN interfaces,
    and the router itself."""
    found = _interfaces(addresses)
    nets = []
    for iface in s.listen_interfaces:
        if iface == s.wan:
            continue
        for a in found.get(iface, []):
            # link-local sources are left out: one on the WAN's link would pass as the LAN
            if a.ip.is_link_local:
                continue
            if a.network not in nets:
                nets.append(a.network)
    for text in LOOPBACK:
        net = ipaddress.ip_network(text)
        if net not in nets:
            nets.append(net)
    return nets


def _listen_word(ip):
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _net_word(net):
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def generate(sections, addresses, run_dir=RUN_DIR, notes=None):
    """The text of the ser.cfg for the UCI ``sections`` on the interfaces' ``addresses``
    ({'lan': ['192.168.1.1/24', ...], 'wan': [...]}).  ``option config`` is not looked at here
    (``main`` decides between the generated file and the expert's own).  UciError when there is
    nothing to listen on."""
    notes = [] if notes is None else notes
    s = settings(sections, notes)
    listen = listen_addresses(s, addresses, notes)
    if not listen:
        raise NoAddress(f"no address to listen on yet (interfaces: "
                       f"{', '.join(s.listen_interfaces) or 'none'})")
    out = [
        "# Generated by serlite.uci from /etc/config/ser at each start and reload, in RAM:",
        "# edits here are lost.  Change /etc/config/ser, or run your own config with",
        "#   uci set ser.main.config=/etc/ser/ser.cfg; uci commit ser",
        "",
        f"debug={s.log_level}",
        f"port={s.port}",
    ]
    out += [f"listen={_listen_word(ip)}" for ip in listen]
    if s.tls_cert:
        out += [f"listen=tls:{_listen_word(ip)}:{s.tls_port}" for ip in listen]
    if len(listen) > 1:
        # SER's mhomed: send from the address facing the destination (the WAN one to the
        # Internet), not the first one, which the WAN's masquerade would rewrite
        out.append("mhomed=1")
    if s.domain:
        out.append(f'alias="{s.domain}"')
    # every phone logs in, LAN included (trust_lan aside); textops for remove_hf
    modules = ["sl", "tm", "rr", "maxfwd", "textops", "usrloc", "registrar", "auth", "auth_db",
               "nathelper", "pike", "acc", "secfilter"]
    modules.append("msilo")        # texts for phones that are off
    modules.append("presence")
    if s.relay != "off":
        modules.append("rtpproxy")
    if s.tls_cert:
        modules.append("tls")
    if s.provider:
        modules.append("uac")
    if "presence" in modules:
        modules.append("pua_dialoginfo")    # busy lamps: calls shown to dialog watchers
    out.append("")
    out += [f'loadmodule "{MODULE_DIR}/{m}.so"' for m in modules]
    user_db = s.user_db or "dbtext://" + os.path.join(run_dir, "db")
    out += [
        "",
        "# registrations are written through to a small journal: phones stay registered",
        "# across restarts and power cuts",
        'modparam("usrloc", "db_mode", 1)',
        f'modparam("usrloc", "db_url", "{s.location_db}")',
        'modparam("registrar", "max_expires", 3600)',
        'modparam("rr", "enable_full_rr", 1)',
        "# requests inside a call follow only a route set we signed (a To tag is easy to forge)",
        'modparam("rr", "sign_routes", 1)',
        "# the accounts: the user sections of /etc/config/ser (ser-ctl user ...), as HA1 only",
        f'modparam("auth_db", "db_url", "{user_db}")',
        f'modparam("auth", "secret_file", "{SECRET_FILE}")',
        'modparam("nathelper", "natping_interval", 30)',
    ]
    out += _ACC_PARAMS
    out += _MSILO_PARAMS
    out += _secfilter_params(s)
    out += _PRESENCE_PARAMS
    if s.relay != "off" and s.relay_sock:
        out += [
            "# the audio of calls that cross the router's NAT goes through an external relay",
            f"# (rtpengine, rtpproxy; option relay '{s.relay}', option relay_sock), on its ports",
            f'modparam("rtpproxy", "rtpproxy_sock", "{s.relay_sock}")',
        ]
    elif s.relay != "off":
        out += [
            "# the audio of calls that cross the router's NAT goes through the router's own",
            f"# relay (rtpproxy; option relay '{s.relay}'), on these UDP ports",
            f'modparam("rtpproxy", "rtp_port_min", {s.rtp_ports[0]})',
            f'modparam("rtpproxy", "rtp_port_max", {s.rtp_ports[1]})',
        ]
    if s.tls_cert:
        out += _tls_params(s)
    if s.provider:
        from . import uci_provider
        out += uci_provider.modparams(os.path.join(run_dir, "db"))
    out += _routes(s, lan_networks(s, addresses))
    if "pua_dialoginfo" in modules:
        out = _with_dialoginfo(out)
    return "\n".join(out) + "\n"


# msilo: a MESSAGE to a phone that is off is kept on flash and sent when it registers again
_MSILO_PARAMS = [
    "# a text to a phone that is off is kept (3 days, 50 a user, 1000 in all) until it registers",
    'modparam("msilo", "db_url", "dbtext:///etc/ser/msilo")',
]


# busy lamps: each new call is shown to the watchers of its caller and callee (RFC 4235),
# marked once lookup() found the callee (as the shipped ser.cfg does)
_DIALOGINFO = [
    "    # busy lamps: the watchers of the caller and of the callee see the call",
    "    if (method == \"INVITE\" && !has_totag()) {",
    "        dialoginfo_set();",
    "    }",
]


def _with_dialoginfo(lines):
    """``lines`` with _DIALOGINFO after the main route's lookup block."""
    lookup = lines.index("        if (!lookup(\"location\")) {")
    end = lines.index("    }", lookup)
    return lines[:end + 1] + _DIALOGINFO + lines[end + 1:]


_PRESENCE_PARAMS = [
    "# presence (SIMPLE): what the phones publish and who watches whom, kept on flash",
    f'modparam("presence", "db_url", "{PRESENCE_DB}")',
    'modparam("presence", "min_expires", 60)',
]


def _presence_route(s):
    """route[presence]: a logged-in phone publishes its own state only; it watches the
    house's users (``presence_house`` 1) or only itself (0); a From of another domain is
    nobody of the house."""
    out = ["", "# presence (RFC 3903 PUBLISH, RFC 6665 SUBSCRIBE) for the house's users",
           "route[presence] {",
           "    if (!(from_uri == myself)) {",
           "        sl_send_reply(\"403\", \"Forbidden\");",
           "        exit;",
           "    }",
           "    if (method == \"PUBLISH\") {",
           "        if ($rU != $fU) {",
           "            sl_send_reply(\"403\", \"Forbidden: publish your own presence\");",
           "            exit;",
           "        }",
           "        handle_publish();",
           "        exit;",
           "    }"]
    if not s.presence_house:
        out += ["    # option presence_house '0': a phone watches itself only",
                "    if (!has_totag() && $rU != $fU) {",
                "        sl_send_reply(\"403\", \"Forbidden: watch yourself only\");",
                "        exit;",
                "    }"]
    return out + ["    handle_subscribe();", "}"]


def _tls_params(s):
    """The tls module's modparams from the tls options (Kamailio's names)."""
    out = [
        f"# SIP over TLS on port {s.tls_port} (phones); to a provider over TLS (sips: or",
        "# ;transport=tls) its certificate is checked against tls_ca, else the system's CAs",
        f'modparam("tls", "certificate", "{s.tls_cert}")',
        f'modparam("tls", "private_key", "{s.tls_key or s.tls_cert}")',
    ]
    if s.tls_ca:
        out.append(f'modparam("tls", "ca_list", "{s.tls_ca}")')
    return out


# the call log (syslog) and the call history (the status page, ser-ctl calls): see ser.cfg
CALL_HISTORY = "/etc/ser/calls"
_ACC_PARAMS = [
    'modparam("acc", "log_flag", 10)',
    'modparam("acc", "log_missed_flag", 11)',
    'modparam("acc", "failed_transaction_flag", 12)',
    f'modparam("acc", "history_file", "{CALL_HISTORY}")',
    'modparam("acc", "history_size", 500)',
]
_ACC_FLAGS = [
    "    # the call log (acc): new calls, missed calls, hang-ups",
    "    if (method == \"INVITE\" && !has_totag()) {",
    "        setflag(10);",
    "        setflag(11);",
    "    } else if (method == \"BYE\") {",
    "        setflag(10);",
    "        setflag(12);",
    "    }",
]
BAN_FILE = "/etc/ser/bans"          # flash: written when a ban is made or lifted


def _secfilter_params(s):
    """secfilter's modparams from the ban options (docs/security.md)."""
    out = [
        "# failed logins ban their source address, doubling per repeat offence (secfilter);",
        "# ser-ctl ban list | add ADDRESS [SECONDS] | del ADDRESS",
        f'modparam("secfilter", "ban_failures", {s.ban_failures})',
        f'modparam("secfilter", "ban_window", {s.ban_window})',
        f'modparam("secfilter", "ban_time", {s.ban_time})',
        f'modparam("secfilter", "ban_time_max", {s.ban_time_max})',
        f'modparam("secfilter", "ban_file", "{BAN_FILE}")',
    ]
    if s.trusted:
        out.append(f'modparam("secfilter", "trusted", "{",".join(_net_word(n) for n in s.trusted)}")')
    if s.scanner_agents is not None:
        out.append(f'modparam("secfilter", "scanner_agents", "{",".join(s.scanner_agents)}")')
    return out


_SCANNERS = [
    "    # scanners (SIPVicious's friendly-scanner and the like) learn nothing: no answer",
    "    if (!secf_check_ua()) {",
    "        drop;",
    "    }",
]
_KEEPALIVE = [
    "        # OPTIONS to the router itself (no user part): phones use it as a keepalive",
    "        if (method == \"OPTIONS\" && uri =~ \"^sips?:[^@]*$\") {",
    "            sl_send_reply(\"200\", \"OK\");",
    "            exit;",
    "        }",
]


def _octets_regex(first, last):
    """A regular expression for the decimal numbers first..last (one octet)."""
    if first == last:
        return str(first)
    if (first, last) == (0, 255):
        return "[0-9]+"
    return "(" + "|".join(str(n) for n in range(first, last + 1)) + ")"


def _ipv4_regex(net):
    """``^...$`` matching the dotted-quad text of the addresses of IPv4 ``net`` (what $rd holds
    when a phone's Contact names one): the script compares addresses with networks only for
    src_ip, so the destination is matched as text."""
    octets = str(net.network_address).split(".")
    parts = []
    for i in range(4):
        bits = min(max(net.prefixlen - 8 * i, 0), 8)
        low = int(octets[i])
        parts.append(_octets_regex(low, low + (1 << (8 - bits)) - 1))
    return "^" + r"\.".join(parts) + "$"


def _ipv6_regex(net):
    """``^...$`` matching the RFC 5952 text (lower case, zeros compressed) of the addresses of
    IPv6 ``net``, bracketed or not (what $rd holds when a phone's Contact names one), for a
    prefix of whole 16-bit groups (/64, /48...); None for another (its calls are relayed).
    The alternatives: the prefix's groups written out; or a run of its zero groups written
    "::", then the rest of the prefix and exactly as many groups as fill 8 (or, when the run
    reaches the prefix's end, up to as many as the interface part holds)."""
    if net.prefixlen % 16 or net.prefixlen in (0, 128):
        return None
    n = net.prefixlen // 16
    groups = [f"{int(g, 16):x}" for g in net.exploded.split(":")[:n]]
    hexg = "[0-9a-f]{1,4}"
    alts = [":".join(groups) + ":"]
    for start in range(n):
        for end in range(start + 1, n + 1):
            if any(g != "0" for g in groups[start:end]):
                break
            head = ":".join(groups[:start]) + "::"
            if end < n:
                alts.append(head + ":".join(groups[end:]) + f"(:{hexg}){{{8 - n}}}\\]?$")
            else:
                alts.append(head + f"({hexg}(:{hexg}){{0,{8 - n - 1}}})?\\]?$")
    return "^\\[?(" + "|".join(alts) + ")"


def _relay_route(nets):
    """route[relay_needed] (option relay 'auto'): true when the call's audio crosses between
    the LAN and elsewhere (Kamailio's default config relays when either side is NATed; here
    the router's own NAT is the one that matters).  Calls between two LAN phones keep direct
    media, over IPv6 too (its LAN networks of whole 16-bit groups, /64 as netifd gives them;
    a callee named otherwise, e.g. with leading zeros, is relayed: audio still works)."""
    out = ["", "# does the call's audio cross the router's NAT (option relay 'auto')?  Calls",
           "# between two phones of the house keep their direct media", "route[relay_needed] {",
           "    if (!route(from_lan)) return(1);     # the caller is outside",
           "    # lookup found a phone registered from behind a NAT outside: its received address",
           "    if ($du != null) return(1);"]
    out += [f'    if ($rd =~ "{_ipv4_regex(n)}") return(-1);' for n in nets if n.version == 4]
    out += [f'    if ($rd =~ "{_ipv6_regex(n)}") return(-1);' for n in nets
            if n.version == 6 and _ipv6_regex(n)]
    out += ["    return(1);", "}"]
    return out


def _relay_call(s, indent):
    """The rtpproxy_manage() call of option relay (none when off)."""
    pad = " " * indent
    if s.relay == "off":
        return []
    call = "route(relay_ext);" if s.relay_sock else "rtpproxy_manage();"
    if s.relay == "on":
        return [f"{pad}{call}      # option relay 'on': every call"]
    return [f"{pad}if (route(relay_needed)) {{", f"{pad}    {call}", f"{pad}}}"]


def _relay_ext_routes(nets):
    """option relay_sock: the external relay is told each SDP's way (Kamailio's flags ``i``,
    the house, and ``e``, outside: rtpengine's interfaces ``internal`` and ``external``), from
    its sender to its receiver.  A request's receiver is its destination; a reply goes back
    to where the request came from, which its onreply_route (armed with the INVITE) knows."""
    out = ["", "# the external relay (option relay_sock): each SDP's way, i (the house) or e",
           "# (outside), from its sender to its receiver", "route[to_lan] {",
           "    if ($du != null) return(-1);     # a phone registered from behind a NAT"]
    out += [f'    if ($rd =~ "{_ipv4_regex(n)}") return(1);' for n in nets if n.version == 4]
    out += ["    return(-1);", "}", "route[relay_ext] {"]
    for side, first in (("from_lan", "i"), ("from_out", "e")):
        out += [f"    {'if (route(from_lan))' if first == 'i' else '} else'} {{",
                f'        if (method == "INVITE") {{ t_on_reply("relay_{side}"); }}',
                f'        if (route(to_lan)) {{ rtpproxy_manage("{first}i"); }} '
                f'else {{ rtpproxy_manage("{first}e"); }}']
    out += ["    }", "}"]
    for side, last in (("from_lan", "i"), ("from_out", "e")):
        out += [f"onreply_route[relay_{side}] {{",
                f'    if (route(from_lan)) {{ rtpproxy_manage("i{last}"); }} '
                f'else {{ rtpproxy_manage("e{last}"); }}', "}"]
    return out


# a phone switched off while still registered: its text times out (8 s), failure_route
# [msilo] keeps it (202)
_MSILO_TIMEOUT = [
    "        # a phone switched off while still registered: its text times out and is kept",
    "        if (method == \"MESSAGE\") {",
    "            t_on_failure(\"msilo\");",
    "            t_set_fr(60000, 8000);",
    "        }",
]
_MSILO_FAILURE = [
    "",
    "# msilo: a text the phone did not take (switched off, still registered) waits for it",
    "failure_route[msilo] {",
    "    if (t_check_status(\"408|480\")) {",
    "        if (m_store()) {",
    "            t_reply(\"202\", \"Accepted\");",
    "        }",
    "    }",
    "}",
]

# a text to a phone that is off: stored (202), sent at its next REGISTER (m_dump); 480 when full
_MSILO_STORE = [
    "            if (method == \"MESSAGE\") {",
    "                if (m_store()) {",
    "                    sl_send_reply(\"202\", \"Accepted\");",
    "                } else {",
    "                    sl_send_reply(\"480\", \"Temporarily Unavailable\");",
    "                }",
    "                exit;",
    "            }",
]


def _routes(s, nets):
    """The routing: every REGISTER needs a subscriber's password (www_authorize), and so does
    every other new request but ACK and CANCEL (proxy_authorize), from any address, unless
    ``trust_lan`` exempts the LAN.  Requests inside a call follow their route set; a new
    request's pre-loaded Route is never followed (toll fraud through a gateway).  Sources
    outside the LAN are rate-limited (pike) and their NATs handled (nathelper)."""
    realm = s.realm
    # with trust_lan the checks are skipped for the LAN: "if (!route(from_lan)) { ... }"
    guard = "!route(from_lan) && " if s.trust_lan else ""
    lan = ["", "# the phones of the house and the router itself (pike and NAT handling are for "
           "the others)", "route[from_lan] {"]
    lan += [f"    if (src_ip == {_net_word(n)}) return(1);" for n in nets]
    lan += ["    return(-1);", "}"]
    if s.relay == "auto":
        lan += _relay_route(nets)
    if s.relay != "off" and s.relay_sock:
        lan += _relay_ext_routes(nets)
    lan += _presence_route(s)
    register = [
        f"        if (!www_authorize(\"{realm}\", \"subscriber\")) {{",
        f"            www_challenge(\"{realm}\", \"1\");",
        "            exit;",
        "        }",
        "        # a subscriber registers its own name only",
        "        if (!check_to()) {",
        "            sl_send_reply(\"403\", \"Forbidden\");",
        "            exit;",
        "        }",
        "        consume_credentials();",
    ]
    if s.trust_lan:
        register = ["        if (!route(from_lan)) {    # trust_lan: the LAN needs no password"] \
            + ["    " + line for line in register] + ["        }"]
    if s.provider:
        from . import uci_provider
    main = [
        "",
        "route {",
    ] + _SCANNERS + (uci_provider.wan_guard(s.wan_open) if s.provider else []) + _ACC_FLAGS + [
        "    if (!mf_process_maxfwd_header(\"10\")) {",
        "        sl_send_reply(\"483\", \"Too Many Hops\");",
        "        exit;",
        "    }",
        "",
        "    if (!route(from_lan)" + (f" && !isflag({uci_provider.FROM_PROVIDER_FLAG})"
                                     if s.provider else "") + ") {",
        "        if (!pike_check_req()) {",
        "            drop;       # flooding: pike logs it once, and filters the address for a while",
        "        }",
        "        # a phone behind a NAT (a hotel, an office): answer where it sent from",
        "        if (nat_uac_test(\"19\")) {",
        "            if (method == \"REGISTER\") {",
        "                fix_nated_register();",
        "            } else {",
        "                fix_nated_contact();",
        "            }",
        "        }",
        "    }",
        "",
        "    # requests inside a call (To tag) follow the route set the INVITE recorded",
        "    if (has_totag()) {",
        "        if (loose_route()) {",
    ] + (["            # a re-INVITE's SDP (hold, resume), its ACK, a BYE: the call's relay"]
         if s.relay != "off" else []) + _relay_call(s, 12) + [
        "            t_relay();",
        "            exit;",
        "        }",
        "    }",
    ] + (uci_provider.incoming_lines() if s.provider else []) + [
        "",
        "    if (uri == myself && method == \"REGISTER\") {",
    ] + register + [
        "        save(\"location\");",
        "        m_dump();",
        "        exit;",
        "    }",
        "    if (uri == myself) {",
    ] + _KEEPALIVE + [
        "    }",
        "",
        "    # every other new request (calls, MESSAGE): a subscriber's password",
        f"    if ({guard}method != \"ACK\" && method != \"CANCEL\") {{",
        f"        if (!proxy_authorize(\"{realm}\", \"subscriber\")) {{",
        f"            proxy_challenge(\"{realm}\", \"1\");",
        "            exit;",
        "        }",
        "        # a phone calls as itself: the From user is the account that logged in",
        "        if (!check_from()) {",
        "            sl_send_reply(\"403\", \"Forbidden: call as yourself\");",
        "            exit;",
        "        }",
        "        consume_credentials();",
        "    }",
        "    # presence: PUBLISH and SUBSCRIBE to the house's users are the router's own",
        "    if (uri == myself && (method == \"PUBLISH\" || method == \"SUBSCRIBE\")) {",
        "        route(presence);",
        "        exit;",
        "    }",
        "    # a new request's pre-loaded Route (a phone's outbound proxy, or a gateway someone",
        "    # wants to reach through us) is not followed: the Request-URI decides (Kamailio's",
        "    # default config does the same)",
        "    remove_hf(\"Route\");",
        "    if (method == \"INVITE\" || method == \"SUBSCRIBE\") {",
        "        record_route();",
        "    }",
        "",
        "    if (uri == myself) {",
        "        if (!lookup(\"location\")) {",
    ] + (["            route(provider_out);     # a number: out through the provider"]
         if s.provider else []) + _MSILO_STORE + [
        "            sl_send_reply(\"404\", \"Not Found\");",
        "            exit;",
        "        }",
    ] + _MSILO_TIMEOUT + [
        "    }",
    ] + ([
        "    # the audio of a call across the router's NAT goes through the relay (rtpproxy);",
        "    # the session ends with the call (BYE, CANCEL, failure: the dialog tracker)",
        "    if (method == \"INVITE\") {",
    ] + _relay_call(s, 8) + ["    }"] if s.relay != "off" else []) + [
        "    t_relay();",
        "}",
        "",
        "onreply_route {",
        "    # the answer of a phone behind a NAT: its Contact becomes where the answer came from",
        "    if (!route(from_lan) && nat_uac_test(\"1\")) {",
        "        fix_nated_contact();",
        "    }",
    ] + ([
        "    # the answer's SDP, for a call the relay carries (others are left alone)",
        "    rtpproxy_manage();",
    ] if s.relay != "off" and not s.relay_sock else []) + [
        "}",
    ]
    if s.provider:
        # provider calls cross the NAT: relayed whenever the relay is on
        relay = ["    rtpproxy_manage();"] if s.relay != "off" else []
        main += uci_provider.routes(s.provider, s, relay)
    return lan + main + _MSILO_FAILURE


# --- the subscriber table -------------------------------------------------------------------

def _md5(text):
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _dbtext_escape(value):
    return (value.replace("\\", "\\\\").replace(":", "\\:").replace("\n", "\\n")
            .replace("\r", "\\r").replace("\t", "\\t"))


def subscribers(users, realm):
    """SER's dbtext ``subscriber`` table (the format serlite/store/dbtext.py reads) for
    ``users`` [(name, password)]: HA1 = MD5(name:realm:password), and HA1B for phones that send
    name@domain as their digest user name.  The clear password is not written."""
    lines = ["username(str) domain(str) ha1(str) ha1b(str)"]
    for name, password in users:
        fields = [name, realm, _md5(f"{name}:{realm}:{password}"),
                  _md5(f"{name}@{realm}:{realm}:{password}")]
        lines.append(":".join(_dbtext_escape(f) for f in fields))
    return "\n".join(lines) + "\n"


def accounts_path(run_dir=RUN_DIR):
    """The subscriber table the generated and the shipped config read."""
    return os.path.join(run_dir, "db", "subscriber")


def write_accounts(s, run_dir=RUN_DIR):
    """Write the ``subscriber`` table of Settings ``s`` (mode 0600, directory 0700) and return
    its path; None when ``user_db`` names the expert's own table instead."""
    if s.user_db:
        return None
    make_dirs(os.path.join(run_dir, "db"), 0o700)
    path = accounts_path(run_dir)
    _write(path, subscribers(s.users, s.realm), 0o600)
    return path


def write_provider(s, run_dir=RUN_DIR):
    """Write the ``uacreg`` table of the provider section (mode 0600: its password) and its
    ``version`` beside the subscriber table; remove them when there is no provider.  The
    path, or None."""
    from . import uci_provider
    db = os.path.join(run_dir, "db")
    path = os.path.join(db, "uacreg")
    if s.provider is None:
        for name in ("uacreg", "version"):
            try:
                os.unlink(os.path.join(db, name))
            except FileNotFoundError:
                pass
        return None
    make_dirs(db, 0o700)
    _write(path, uci_provider.uacreg(s.provider, s.realm), 0o600)
    _write(os.path.join(db, "version"), uci_provider.VERSION_TEXT, 0o600)
    return path


# --- the command ----------------------------------------------------------------------------

def _write(path, text, mode=0o644):
    """Replace ``path`` with ``text`` (RAM: no fsync), so a SIGHUP never reads half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with open(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _address_arg(text):
    iface, sep, address = text.partition("=")
    if not sep or not iface or not address:
        raise argparse.ArgumentTypeError(f"{text!r}: write IFACE=ADDRESS[/PREFIX]")
    return iface, address


def build_parser():
    p = argparse.ArgumentParser(prog="python3 -m serlite.uci",
                                description="Write the ser.cfg for /etc/config/ser and print "
                                            "the path of the config to run.")
    p.add_argument("-c", dest="uci", default=UCI_FILE, metavar="FILE",
                   help=f"UCI file (default {UCI_FILE})")
    p.add_argument("-o", dest="out", default=RUN_DIR, metavar="DIR",
                   help=f"where to write ser.cfg and db/subscriber (default {RUN_DIR}, in RAM)")
    p.add_argument("-a", dest="addresses", action="append", default=[], type=_address_arg,
                   metavar="IFACE=ADDR[/LEN]", help="an address of a UCI interface (repeatable)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    addresses = {}
    for iface, address in args.addresses:
        addresses.setdefault(iface, []).append(address)
    notes = []
    try:
        try:
            with open(args.uci, encoding="utf-8") as f:
                sections = parse(f.read(), args.uci)
        except OSError as exc:
            raise UciError(f"cannot read {args.uci}: {exc.strerror}") from None
        s = settings(sections, [])
        if s.config:
            settings(sections, notes)
            if not os.path.isfile(s.config):
                raise UciError(f"option config: {s.config} is not a file")
            path = s.config
        else:
            text = generate(sections, addresses, run_dir=args.out, notes=notes)
            make_dirs(args.out)
            path = os.path.join(args.out, "ser.cfg")
            _write(path, text)
        try:
            write_accounts(s, args.out)
            write_provider(s, args.out)
        except OSError as exc:
            raise UciError(f"cannot write to {os.path.join(args.out, 'db')}: "
                           f"{exc.strerror}") from None
    except UciError as exc:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"{'note' if isinstance(exc, NoAddress) else 'error'}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, NoAddress) else 1
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
