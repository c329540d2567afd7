"""``config provider`` of /etc/config/ser -> uac's ``uacreg`` table and the generated routes.

One VoIP provider account: serlite registers it (uac's outbound registration), the house's
phones dial numbers out through it, and its calls to the home number ring the chosen
extensions.  ``serlite.uci`` calls ``provider(sections, notes)`` for the checked Provider,
``uacreg(p, realm)`` for the table text (written 0600 beside the subscriber table: the
password lives there and nowhere else), and the ``*_lines`` functions for the config.

Toll fraud (the reason most of this file is checks): only a phone of the house that logged in
(the generated config challenges every new request) reaches ``route[provider_out]``, and only
from the LAN; a request is taken as the provider's, without a password, only when it comes
from the provider's addresses (``route[from_provider]``), and such a request only ever rings
the house's extensions, never the trunk.
"""

import ipaddress
import re

PROVIDER_OPTIONS = {
    "enabled": "use this provider (1)",
    "server": "the provider's registrar and SIP domain, HOST[:PORT] (sip.example.net)",
    "proxy": "its outbound proxy, HOST[:PORT], when it has one (requests go there)",
    "user": "the account's user name (the From and To of its REGISTERs and calls)",
    "auth_user": "the digest user name, when not the user",
    "password": "the account's password (kept in /var/etc/ser/db/uacreg, mode 0600)",
    "realm": "the digest realm the provider asks with (empty: the server's host)",
    "transport": "udp, tcp or tls (tls: option tls_ca and python3-openssl)",
    "expires": "seconds a registration lasts (600)",
    "number": "the home number, as the provider sends it in its calls",
    "ring": "the extensions its calls ring (list; none: every user section)",
    "dial": "the numbers that go out: all (any number that is no extension) or a prefix "
            "the phones dial first, e.g. 0 (stripped before the number goes out)",
    "strip": "0: keep the dial prefix in the number sent to the provider (1)",
    "address": "the provider's addresses or networks its calls come from (list; the "
               "server's and proxy's IP addresses are always taken)",
}
TRANSPORTS = ("udp", "tcp", "tls")
FROM_PROVIDER_FLAG = 6          # set in route{} for the provider's requests
_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)"
                       r"(:(\d{1,5}))?$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_DIGITS = re.compile(r"^\+?[0-9]{1,32}$")
# RFC 3261 25.1's user characters, without ";?/" (they would end the user in our URIs)
_USER = re.compile(r"^[A-Za-z0-9_.!~*'()&=+$,%-]{1,64}$")


class Provider:
    """The checked options of one ``config provider`` section."""

    def __init__(self, name):
        self.name = name            # the section's name: uacreg's l_uuid, our Contact's user
        self.server_host = ""
        self.server_port = None
        self.proxy = ""             # HOST[:PORT] or ""
        self.proxy_host = ""
        self.user = ""
        self.auth_user = ""
        self.password = ""
        self.realm = ""
        self.transport = "udp"
        self.expires = 600
        self.number = ""
        self.ring = []              # extensions; [] -> every account
        self.dial_prefix = ""       # "" -> all numbers
        self.strip = True
        self.addresses = []         # ip_network

    @property
    def auth_proxy(self):
        """uacreg's auth_proxy: where REGISTERs and calls go (the outbound proxy, else the
        server), as a SIP URI with the transport."""
        target = self.proxy or (f"{self.server_host}:{self.server_port}" if self.server_port
                                else self.server_host)
        scheme = "sips" if self.transport == "tls" else "sip"
        return f"{scheme}:{target}" + (f";transport={self.transport}"
                                       if self.transport == "tcp" else "")

    def source_networks(self):
        """Where its requests may come from: the listed addresses, and the server's and
        proxy's hosts when they are IP literals.  A name is not resolved here (no lookup at
        config time): route[from_provider] asks uac_reg_from_provider() for the addresses
        it resolved to in the loop, for the REGISTER."""
        nets = list(self.addresses)
        for host in (self.server_host, self.proxy_host):
            ip = _ip(host.strip("[]")) if host else None
            if ip is not None:
                net = ipaddress.ip_network(ip)
                if net not in nets:
                    nets.append(net)
        return nets


def _ip(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _hostport(where, value):
    m = _HOSTPORT.match(value.strip())
    if not m:
        raise _error(f"{where}: {value!r} is not HOST[:PORT] (sip.example.net, 192.0.2.2:5060)")
    port = int(m.group(4)) if m.group(4) else None
    if port is not None and not 1 <= port <= 65535:
        raise _error(f"{where}: port {port} is not from 1 to 65535")
    return m.group(1), port


def _error(text):
    from .uci import UciError
    return UciError(text)


def provider(sections, users, notes):
    """The Provider of the first enabled ``config provider`` section (None without one);
    ``users`` the account names (the default ring list, and what is not a number to dial)."""
    from .uci import _bool, _int, _quotable, _single
    found = [sec for sec in sections if sec.type == "provider"]
    chosen = None
    for sec in found:
        where = f"section {sec.label()}"
        enabled = _bool(f"{where}: option enabled",
                        _single(where, sec.options.get("enabled", "1")))
        if not enabled:
            continue
        if chosen is not None:
            notes.append(f"{where} ignored: serlite registers one provider ({chosen.name})")
            continue
        name = sec.name or "provider"
        if not _TOKEN.match(name):
            raise _error(f"{where}: the section's name is the registration's id: letters, "
                         f"digits, '-' and '_' (config provider 'myprovider')")
        p = Provider(name)
        for opt, value in sec.options.items():
            w = f"{where}: option {opt}"
            if opt not in PROVIDER_OPTIONS:
                notes.append(f"option {opt!r} in {where} is not understood, ignored "
                             f"(known: {', '.join(PROVIDER_OPTIONS)})")
            elif opt in ("ring", "address"):
                words = [x for item in (value if isinstance(value, list) else [value])
                         for x in item.replace(",", " ").split()]
                if opt == "ring":
                    for x in words:
                        _quotable(w, x)
                        # (with option user_db the accounts are not known here)
                        if users and x not in users:
                            raise _error(f"{w}: {x!r} is no account (config user)")
                    p.ring = words
                else:
                    for x in words:
                        try:
                            p.addresses.append(ipaddress.ip_network(x, strict=True))
                        except ValueError as exc:
                            raise _error(f"{w}: {x!r} is not an address or network: "
                                         f"{exc}") from None
            elif opt == "enabled":
                pass
            elif opt == "password":
                # only in the table (dbtext escapes it): any character but a line break
                p.password = _single(w, value)
            else:
                value = _quotable(w, _single(w, value).strip())
                if opt == "server":
                    p.server_host, p.server_port = _hostport(w, value)
                elif opt == "proxy":
                    p.proxy_host = _hostport(w, value)[0] if value else ""
                    p.proxy = value
                elif opt in ("user", "auth_user"):
                    if value and not _USER.match(value):
                        raise _error(f"{w}: {value!r} is not a SIP user name")
                    setattr(p, opt, value)
                elif opt == "realm":
                    p.realm = value
                elif opt == "transport":
                    if value.lower() not in TRANSPORTS:
                        raise _error(f"{w}: {value!r} is not udp, tcp or tls")
                    p.transport = value.lower()
                elif opt == "expires":
                    p.expires = _int(w, value, 60, 86400)
                elif opt == "number":
                    if value and not _DIGITS.match(value):
                        raise _error(f"{w}: {value!r} is not a number (digits, a leading +)")
                    p.number = value
                elif opt == "dial":
                    if value.lower() in ("all", ""):
                        p.dial_prefix = ""
                    elif re.fullmatch(r"[0-9]{1,4}", value):
                        p.dial_prefix = value
                    else:
                        raise _error(f"{w}: {value!r} is neither 'all' nor a prefix of up "
                                     f"to 4 digits (0)")
                elif opt == "strip":
                    p.strip = _bool(w, value)
        for opt in ("server", "user", "password"):
            if not getattr(p, opt if opt != "server" else "server_host"):
                raise _error(f"{where}: option {opt} is missing")
        p.auth_user = p.auth_user or p.user
        if not p.ring:
            p.ring = list(users)
        if not p.ring:
            notes.append(f"{where}: no account to ring: the provider's calls get 480 until "
                         f"a config user section is added")
        if not p.source_networks():
            notes.append(f"{where}: the server is a name and no list address is given: the "
                         f"provider's calls are refused (add its addresses: list address "
                         f"'203.0.113.10')")
        chosen = p
    return chosen


# --- the uacreg table -----------------------------------------------------------------------

UACREG_COLUMNS = ("id(int,auto) l_uuid(string) l_username(string) l_domain(string) "
                  "r_username(string) r_domain(string) realm(string) auth_username(string) "
                  "auth_password(string,null) auth_ha1(string,null) auth_proxy(string) "
                  "expires(int) flags(int) reg_delay(int) contact_addr(string,null) "
                  "socket(string,null)")


def uacreg(p, local_domain):
    """Kamailio 5.6's ``uacreg`` dbtext table (one record) for Provider ``p``; the
    ``version`` table's text is VERSION_TEXT."""
    from .uci import _dbtext_escape
    fields = ["1", p.name, p.ring[0] if p.ring else p.name, local_domain, p.user,
              p.server_host, p.realm, p.auth_user, p.password, "", p.auth_proxy,
              str(p.expires), "0", "0", "", ""]
    return UACREG_COLUMNS + "\n" + ":".join(_dbtext_escape(f) for f in fields) + "\n"


VERSION_TEXT = "table_name(str) table_version(int)\nuacreg:5\n"


# --- the generated config -------------------------------------------------------------------

def modparams(run_dir_db):
    return [
        "# the provider account (config provider): registered from the uacreg table (its",
        "# password is there, mode 0600, never here); ser-ctl uac shows the registration",
        f'modparam("uac", "reg_db_url", "dbtext://{run_dir_db}")',
        'modparam("uac", "reg_timer_interval", 60)',
        "# a refused registration (a wrong password) is tried again after 30 min, not at",
        "# once: the provider is not hammered (each retry doubles, up to 30 min)",
        'modparam("uac", "reg_retry_interval", 1800)',
    ]


def _word(net):
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def wan_guard(wan_open):
    """route{}'s first lines: the provider's requests are marked; with option wan_open 0 the
    WAN address listens for the provider only, everything else from outside is dropped."""
    out = [
        "    # the provider's requests (its addresses only: route[from_provider])",
        "    if (route(from_provider)) {",
        f"        setflag({FROM_PROVIDER_FLAG});",
    ]
    if not wan_open:
        out += [
            "    } else if (!route(from_lan)) {",
            "        drop;       # option wan_open 0: the WAN is open to the provider only",
        ]
    return out + ["    }"]


def incoming_lines():
    """route{}, after the in-dialog requests: a new request from the provider's addresses
    goes to route[provider_in] (never on to the trunk, never past the password checks)."""
    return [
        "",
        "    # the provider's calls to the home number ring the house's phones (no password:",
        "    # it is the provider, known by its address); nothing it sends goes out again",
        f"    if (isflag({FROM_PROVIDER_FLAG})) {{",
        "        route(provider_in);",
        "        exit;",
        "    }",
    ]


def _ring(exts, domain, indent):
    """The chosen extensions' phones: the first registered one's in the R-URI, the others'
    appended to the destination set (lookup_to_dset): tm forks the call to them all."""
    pad = " " * indent
    first, rest = exts[0], exts[1:]
    out = [f'{pad}$ru = "sip:{first}@{domain}";', f'{pad}if (lookup("location")) {{']
    out += [f'{pad}    lookup_to_dset("location", "sip:{r}@{domain}");' for r in rest]
    out += [f"{pad}}} else {{"]
    if rest:
        out += _ring(rest, domain, indent + 4)
    else:
        out += [f'{pad}    sl_send_reply("480", "Temporarily Unavailable");', f"{pad}    exit;"]
    return out + [f"{pad}}}"]


def routes(p, s, relay_lines):
    """route[from_provider], route[provider_in], route[provider_out] and
    failure_route[provider_auth] for Provider ``p`` of Settings ``s``; ``relay_lines`` the
    rtpproxy_manage() lines of option relay (indented 4), none when the relay is off."""
    domain = s.realm
    nets = p.source_networks()
    out = ["", "# is the request from the provider?  Its addresses only: the IP addresses of",
           "# option server and proxy, and list address",
           "route[from_provider] {"]
    out += [f"    if (src_ip == {_word(n)}) return(1);" for n in nets]
    out += ["    # a server or proxy by name: the addresses it resolved to for the REGISTER",
            "    if (uac_reg_from_provider()) return(1);",
            "    return(-1);", "}"]
    match = [f'uac_reg_lookup("$rU", "$ru")']
    if p.number:
        match += [f'$rU == "{p.number}"', f'$tU == "{p.number}"']
    out += ["", "# the provider's request: its calls to the house's registration (our Contact)",
            "# or to the home number ring the chosen extensions (forking, with the relay)",
            "route[provider_in] {",
            '    if (method == "OPTIONS") {',
            '        sl_send_reply("200", "OK");',
            "        exit;",
            "    }",
            '    if (method == "CANCEL" || method == "ACK") {',
            "        t_relay();",
            "        exit;",
            "    }",
            '    if (method != "INVITE") {',
            '        sl_send_reply("405", "Method Not Allowed");',
            "        exit;",
            "    }",
            f"    if (!({' || '.join(match)})) {{",
            '        sl_send_reply("404", "Not Found");',
            "        exit;",
            "    }",
            "    remove_hf(\"Route\");",
            "    record_route();"]
    if p.ring:
        out += _ring(p.ring, domain, 4)
    else:
        out += ['    sl_send_reply("480", "Temporarily Unavailable");', "    exit;"]
    out += relay_lines + ["    t_relay();", "}"]
    rx = "^" + re.escape(p.dial_prefix) + r"\+?[0-9]+$"
    extensions = [name for name, _ in s.users if _DIGITS.match(name)]
    out += ["", "# a number dialled by a phone of the house that logged in: out through the",
            "# provider (option dial); anything else returns (404)", "route[provider_out] {",
            '    if (method != "INVITE") return(-1);',
            f'    if ($rU !~ "{rx}") return(-1);']
    if extensions:
        out += ["    # an extension of the house that is not registered now is not a number",
                f'    if ($rU =~ "^({"|".join(extensions)})$") return(-1);']
    out += ["    # toll fraud: only the phones of the house (on the LAN) dial out",
            "    if (!route(from_lan)) {",
            '        sl_send_reply("403", "Forbidden: numbers only from the house");',
            "        exit;",
            "    }"]
    if p.dial_prefix and p.strip:
        out.append(f"    strip({len(p.dial_prefix)});")
    host = p.server_host
    out += ["    # a call out that nobody answers is no missed call of the house (acc's flag 11;",
            "    # the provider's 407 would log one before uac_auth answers it)",
            "    resetflag(11);"]
    out += [f'    rewritehostport("{host}");' if not p.server_port else
            f'    rewritehostport("{host}:{p.server_port}");',
            f'    $du = "{p.auth_proxy}";',
            "    # the provider knows the call by its account (the caller's display name stays)",
            f'    uac_replace_from("sip:{p.user}@{host}");',
            '    t_on_failure("provider_auth");']
    out += relay_lines + ["    t_relay();", "    exit;", "}"]
    out += ["", "# the provider's 401/407: answered with the account's credentials (once a",
            "# call: a wrong password gives the challenge to the phone)",
            "failure_route[provider_auth] {",
            '    if (t_check_status("401|407")) {',
            "        if (uac_auth()) {",
            '            t_on_failure("provider_auth");',
            "            t_relay();",
            "        }",
            "    }",
            "}"]
    return out

