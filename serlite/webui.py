"""The router's status page: a CGI program for uhttpd (OpenWrt) and busybox httpd.

``webui/www/cgi-bin/ser`` (installed as ``/www/cgi-bin/ser``) only finds this module and calls
``main()``.  A request goes:

    GET/HEAD   the page: ps, stats and ul show from the control socket, /proc/uptime,
               /proc/loadavg, the WAN and LAN addresses; rendered by serlite.control.page
    POST       action=reload (the control socket's ``reload``) or action=restart (the
               configured command, ``/etc/init.d/ser restart``) or action=lift with
               address=A (the control socket's ``ban_del A``: secfilter's ban lifted),
               then 303 back to the page
    otherwise  405

An action needs all of: a user the web server authenticated (REMOTE_USER; or
SER_WEBUI_ALLOW_ANONYMOUS=1), an Origin (or Referer) naming this host, and a CSRF token from
the page (an HMAC of a per-install secret, the time it was made and the user; valid for
TOKEN_TTL).  Request data never reaches a shell: the restart command is a fixed argument list
from the settings, run with a clean environment.

Settings (``KEY=value`` lines in /etc/ser/webui.conf, or $SER_WEBUI_CONF; the environment
overrides the file -- uhttpd starts CGIs with an environment of its own, so the file is the
dependable place):

    SER_UNIX_SOCK               control socket (default /var/run/ser/ser.sock)
    SER_RESTART_CMD             restart command, shell-like words (default /etc/init.d/ser restart;
                                one that is not there or not executable: a 503 that says so)
    SER_WEBUI_SECRET            the CSRF secret, created 0600 at first use
                                (default /etc/ser/webui.secret)
    SER_WEBUI_ALLOW_ANONYMOUS   1: actions without a web-server login (default 0)
    SER_WEBUI_WAN, SER_WEBUI_LAN  interface names (OpenWrt's "wan wan6" / "lan", or kernel
                                devices "eth0.2" / "br-lan"); without a match the interface
                                of the default route is the WAN
    SER_WEBUI_UBUS              ubus binary ("" to never ask ubus; default: found in /bin,
                                /sbin, /usr/bin, /usr/sbin)

Only the standard library of OpenWrt's python3-light: no cgi, no urllib, no html.  The form
and query parsers are written out here; imports a request does not need are made lazily.
"""

import os
import sys
import time

from .control import page
from .store.files import read_or_make_secret

CONF_PATH = "/etc/ser/webui.conf"
DEFAULTS = {
    "SER_UNIX_SOCK": "/var/run/ser/ser.sock",
    "SER_RESTART_CMD": "/etc/init.d/ser restart",
    "SER_WEBUI_SECRET": "/etc/ser/webui.secret",
    "SER_WEBUI_ALLOW_ANONYMOUS": "0",
    "SER_WEBUI_WAN": "wan wan6",
    "SER_WEBUI_LAN": "lan",
    "SER_WEBUI_UBUS": None,         # None: look in UBUS_PATHS
    "SER_UCI": "/etc/config/ser",   # for option trust_lan (a warning on the page)
}
UBUS_PATHS = ("/bin/ubus", "/sbin/ubus", "/usr/bin/ubus", "/usr/sbin/ubus")

TOKEN_TTL = 12 * 3600      # a page left open overnight still works; older tokens are refused
TOKEN_SKEW = 300           # tokens "from the future" (the clock was set after NTP) accepted
MAX_BODY = 4096
CONTROL_TIMEOUT = 3.0
RESTART_TIMEOUT = 60.0
RESTART_SETTLE = 15.0      # after the restart command: wait this long for the new server
RESTART_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"     # the restart command's whole environment
ACTIONS = {"reload": "Configuration reloaded.", "restart": "SIP server restarted.",
           "lift": "Ban lifted."}
REFRESH_RANGE = (5, 3600)

REASON = {200: "OK", 303: "See Other", 400: "Bad Request", 403: "Forbidden",
          405: "Method Not Allowed", 413: "Content Too Large", 415: "Unsupported Media Type",
          500: "Internal Server Error", 503: "Service Unavailable"}
SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
)


# --- settings --------------------------------------------------------------------------------

def parse_conf(text):
    """``KEY=value`` lines, ``#`` comments, optional quotes around the value (so a shell can
    source the same file)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if key.startswith("export "):
            key = key[7:].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out


def settings(environ):
    """DEFAULTS, then the conf file, then the environment."""
    conf = dict(DEFAULTS)
    path = environ.get("SER_WEBUI_CONF") or CONF_PATH
    try:
        with open(path) as f:
            conf.update(parse_conf(f.read()))
    except OSError:
        pass
    for key in DEFAULTS:
        if key in environ:
            conf[key] = environ[key]
    conf["SER_WEBUI_CONF"] = path          # named in messages: where to change a setting
    return conf


def truthy(value):
    return str(value).strip().lower() in ("1", "yes", "true", "on")


# --- the request: query strings and forms by hand (no urllib on python3-light) ---------------

_HEXDIGITS = frozenset(b"0123456789abcdefABCDEF")


def percent_decode(raw):
    """application/x-www-form-urlencoded value (bytes) -> str: '+' is a space, %XX a byte, the
    bytes UTF-8 (invalid sequences replaced).  A '%' without two hex digits stays as it is."""
    raw = raw.replace(b"+", b" ")
    pieces = raw.split(b"%")
    out = bytearray(pieces[0])
    for piece in pieces[1:]:
        if len(piece) >= 2 and piece[0] in _HEXDIGITS and piece[1] in _HEXDIGITS:
            out.append(int(piece[:2], 16))
            out += piece[2:]
        else:
            out += b"%" + piece
    return out.decode("utf-8", "replace")


def parse_pairs(raw):
    """``a=1&b=2`` (bytes or str) -> {name: value}; the first of repeated names wins."""
    if isinstance(raw, str):
        raw = raw.encode("latin-1", "replace")
    out = {}
    for pair in raw.replace(b";", b"&").split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        key = percent_decode(name)
        if key not in out:
            out[key] = percent_decode(value)
    return out


def refresh_of(value):
    """?refresh=N: seconds within REFRESH_RANGE, else None (off)."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    low, high = REFRESH_RANGE
    return max(low, min(high, n)) if n > 0 else None


def read_body(environ, stdin):
    """The POST body, CONTENT_LENGTH bytes.  Returns (bytes, None) or (None, (status, text))."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None, (400, "Bad Content-Length.")
    if length < 0:
        return None, (400, "Bad Content-Length.")
    if length > MAX_BODY:
        return None, (413, f"The form is larger than {MAX_BODY} bytes.")
    ctype = (environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
    if length and ctype != "application/x-www-form-urlencoded":
        return None, (415, "Expected a form (application/x-www-form-urlencoded).")
    chunks, left = [], length
    while left > 0:
        chunk = stdin.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks), None


# --- CSRF: an HMAC of the secret, the time and the user --------------------------------------

def load_secret(path):
    """The per-install CSRF secret (hex text), made 0600 at first use."""
    return read_or_make_secret(path, 32, shortest=32)


def _mac(secret, issued, user):
    import hmac
    return hmac.new(secret, f"serlite-webui|{issued}|{user}".encode(), "sha256").hexdigest()


def make_token(secret, user, now):
    issued = int(now)
    return f"{issued}-{_mac(secret, issued, user)}"


def check_token(secret, token, user, now):
    """None when the token is good, else why not."""
    import hmac
    issued, _, mac = (token or "").partition("-")
    # str.isdigit() is true for "²" and other Unicode digits int() refuses: ASCII only
    if not (issued.isascii() and issued.isdigit()) or len(issued) > 12 or not mac:
        return "the form carries no valid token: reload the page and try again"
    age = now - int(issued)
    if age > TOKEN_TTL or age < -TOKEN_SKEW:
        return "the page is too old: reload it and try again"
    if not hmac.compare_digest(mac.encode(), _mac(secret, int(issued), user).encode()):
        return "the token does not match: reload the page and try again"
    return None


def check_origin(environ):
    """None when Origin (else Referer) names this host, else why not."""
    host = (environ.get("HTTP_HOST") or "").strip().lower()
    if not host:
        return "the request has no Host header"
    https = (environ.get("HTTPS") or "").lower() in ("on", "1") or \
        environ.get("REQUEST_SCHEME") == "https"
    expected = ("https://" if https else "http://") + host
    origin = (environ.get("HTTP_ORIGIN") or "").strip().lower()
    if origin:
        if origin != expected:
            return f"the request comes from another site (Origin {origin})"
        return None
    referer = (environ.get("HTTP_REFERER") or "").strip().lower()
    if referer:
        scheme, sep, rest = referer.partition("://")
        if not sep or f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0]}" != expected:
            return "the request comes from another site (Referer)"
        return None
    return "the request carries neither Origin nor Referer"


# --- what the page shows: the server, the router, the addresses ------------------------------

def ask_server(conf, st):
    """Fill st from the control socket: version, ps, stats, ul show."""
    from .control.client import Client, CommandFailed, NotRunning
    try:
        with Client(conf["SER_UNIX_SOCK"], timeout=CONTROL_TIMEOUT) as client:
            st.version = client.call("version")
            st.procs = client.call("ps")
            st.stats = client.call("stats")
            try:
                st.phones = client.call("ul", "show")
            except CommandFailed:           # usrloc not loaded: no phones to show
                st.phones = []
            try:
                st.accounts = client.call("accounts")
            except CommandFailed:           # auth_db not loaded (an expert's config)
                st.accounts = None
            try:
                st.calls = client.call("calls", 50)
            except CommandFailed:           # acc not loaded: no calls to show
                st.calls = None
            st.relay = relay_totals(client, st.calls)
            try:
                st.bans = client.call("bans")
            except CommandFailed:           # secfilter not loaded: no bans to show
                st.bans = None
            try:
                st.registrations = client.call("uac.reg_dump")
            except CommandFailed:           # no provider registrations
                st.registrations = None
            try:
                st.presence = client.call("presence")
            except CommandFailed:           # presence not loaded
                st.presence = None
        st.running = True
    except NotRunning as exc:
        st.running = False
        why = str(exc)                      # "serlite is not running (no answer on ...)"
        prefix = "serlite is not running ("
        st.down_reason = why[len(prefix):-1] if why.startswith(prefix) and why.endswith(")") \
            else why
    except (OSError, ValueError, CommandFailed) as exc:
        st.running = False
        st.down_reason = f"the control socket gave no usable answer: {exc}"


def relay_totals(client, calls):
    """The media relay's totals: ``calls`` carries them (joined there with the calls); without
    acc, ``rtpproxy``'s; None when no relay is loaded."""
    from .control.client import CommandFailed
    if calls is not None:
        return calls.get("relay")
    try:
        return client.call("rtpproxy").get("totals")
    except CommandFailed:                   # rtpproxy not loaded: no relay
        return None


def trust_lan(path):
    """Whether the UCI file sets ``option trust_lan`` true in ``config ser 'main'`` (and no
    ``option config``, which the option would not reach).  Read by hand, as serlite.uci
    reads it, without importing the generator (the CGI starts at every request)."""
    import shlex
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return False
    main = False
    found = {}
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words[:1] == ["config"]:
            main = words[1:] == ["ser", "main"]
        elif main and len(words) == 3 and words[0] == "option":
            found[words[1]] = words[2]
    return truthy(found.get("trust_lan", "0")) and not found.get("config")


def read_first_line(path):
    try:
        with open(path) as f:
            return f.readline()
    except OSError:
        return ""


def router_info(st):
    fields = read_first_line("/proc/uptime").split()
    if fields:
        st.router_uptime = float(fields[0])
    fields = read_first_line("/proc/loadavg").split()
    if len(fields) >= 4:
        st.loadavg = tuple(fields[:4])


def addresses(conf):
    """The router's addresses, from ubus (OpenWrt) when there is one, else from the kernel."""
    return addresses_and_reasons(conf)[0]


def addresses_and_reasons(conf):
    """(the router's addresses, {"wan"|"lan": why none is known}): from ubus (OpenWrt) when
    there is one, else from the kernel; a role with addresses has no entry in the reasons."""
    wan = set(conf["SER_WEBUI_WAN"].split())
    lan = set(conf["SER_WEBUI_LAN"].split())
    ubus = conf["SER_WEBUI_UBUS"]
    if ubus is None:
        ubus = next((p for p in UBUS_PATHS if os.access(p, os.X_OK)), "")
        asked = "no ubus found (not OpenWrt?), so the kernel was asked"
    else:
        asked = "ubus is off (SER_WEBUI_UBUS), so the kernel was asked"
    if ubus:
        dump = ubus_dump(ubus)
        if dump is not None:
            found = parse_ubus_dump(dump, wan, lan)
            return found, ubus_reasons(dump, wan, found)
        asked = f"{ubus} gave no interface dump, so the kernel was asked"
    found = kernel_addresses(wan, lan)
    return found, {role: f"{why}; {asked}"
                   for role, why in kernel_reasons(wan, lan, found).items()}


def ubus_dump(ubus):
    """``ubus call network.interface dump`` as JSON, None when ubus fails."""
    import json
    import subprocess
    try:
        out = subprocess.run([ubus, "call", "network.interface", "dump"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=3,
                             env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}).stdout
        return json.loads(out)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def parse_ubus_dump(dump, wan, lan):
    found = []
    for iface in dump.get("interface", []) if isinstance(dump, dict) else []:
        if not isinstance(iface, dict) or not iface.get("up"):
            continue
        name = str(iface.get("interface", ""))
        device = str(iface.get("l3_device") or iface.get("device") or "")
        if device == "lo" or name == "loopback":
            continue
        role = "wan" if (name in wan or device in wan) else "lan"
        entries = list(iface.get("ipv4-address") or []) + list(iface.get("ipv6-address") or [])
        for assignment in iface.get("ipv6-prefix-assignment") or []:
            if isinstance(assignment, dict) and isinstance(assignment.get("local-address"), dict):
                entries.append(assignment["local-address"])
        for entry in entries:
            if isinstance(entry, dict) and entry.get("address"):
                found.append(page.Address(str(entry["address"]), entry.get("mask", ""), role,
                                          name, device))
    return found


def kernel_addresses(wan, lan):
    """The interfaces' addresses as the kernel has them (serlite.netif); the WAN is what
    SER_WEBUI_WAN names, else the device of the default route."""
    from . import netif
    rows = netif.addresses()                               # (address, prefix, device)
    named_wan = {d for _, _, d in rows if d in wan}
    defaults = netif.default_route_devices() if not named_wan else set()
    found = []
    for address, prefix, device in rows:
        if device == "lo":
            role = "lo"
        elif device in wan or (device in defaults and device not in lan):
            role = "wan"
        else:
            role = "lan"
        found.append(page.Address(address, prefix, role, "", device))
    return found


def _names(names):
    return ", ".join(sorted(names)) or "none"


def ubus_reasons(dump, wan, found):
    """Why ubus's dump gives no WAN or no LAN address: the named interfaces are not there,
    are down, or are up without an address."""
    ifaces = [i for i in (dump.get("interface", []) if isinstance(dump, dict) else [])
              if isinstance(i, dict)]

    def state(iface):
        name = str(iface.get("interface", "?"))
        return f"{name} is down" if not iface.get("up") else f"{name} is up without an address"

    roles = {a.role for a in found}
    reasons = {}
    if "wan" not in roles:
        named = [i for i in ifaces if str(i.get("interface", "")) in wan
                 or str(i.get("l3_device") or i.get("device") or "") in wan]
        if named:
            reasons["wan"] = "; ".join(state(i) for i in named) + " (ubus)"
        else:
            reasons["wan"] = (f"ubus has no interface {_names(wan)} (SER_WEBUI_WAN); it has "
                              f"{_names(str(i.get('interface', '?')) for i in ifaces)}")
    if "lan" not in roles:
        others = [i for i in ifaces if str(i.get("interface", "")) not in wan
                  and str(i.get("interface", "")) != "loopback"
                  and str(i.get("l3_device") or i.get("device") or "") not in ("lo", *wan)]
        reasons["lan"] = ("; ".join(state(i) for i in others) + " (ubus)" if others else
                          "ubus has no interface but the WAN and loopback")
    return reasons


def kernel_reasons(wan, lan, found):
    """Why the kernel's addresses give no WAN or no LAN: no device of those names, no default
    route, or devices without an address."""
    from . import netif
    roles = {a.role for a in found}
    devices = set(netif.names()) - {"lo"}           # loopback is neither
    wan_devices = {a.device for a in found if a.role == "wan"}
    reasons = {}
    if "wan" not in roles:
        named = wan & devices
        defaults = netif.default_route_devices() - {"lo"}
        if named:
            reasons["wan"] = _no_address(named)
        elif "lo" in wan:           # kernel_addresses then never looks at the default route
            reasons["wan"] = "SER_WEBUI_WAN names the loopback (lo)"
        elif not defaults:
            reasons["wan"] = (f"no device is named {_names(wan)} (SER_WEBUI_WAN) and there is "
                              f"no default route")
        elif defaults <= lan:
            reasons["wan"] = (f"the default route's device {_names(defaults)} is the LAN "
                              f"(SER_WEBUI_LAN)")
        else:
            reasons["wan"] = f"the default route's device {_names(defaults)} has no address"
    if "lan" not in roles:
        others = devices - wan - wan_devices
        if not others:
            reasons["lan"] = ("there is no network device but loopback" +
                              (" and the WAN" if wan_devices else ""))
        else:
            reasons["lan"] = _no_address(others)
    return reasons


def _no_address(devices):
    return f"{_names(devices)} {'has' if len(devices) == 1 else 'have'} no address"


# --- actions ---------------------------------------------------------------------------------

def server_pid(conf):
    """The running server's pid from ``ps``, None when it does not answer."""
    from .control.client import Client, CommandFailed, NotRunning
    try:
        with Client(conf["SER_UNIX_SOCK"], timeout=CONTROL_TIMEOUT) as client:
            procs = client.call("ps")
    except (NotRunning, CommandFailed, OSError, ValueError):
        return None
    return procs[0]["pid"] if procs else None


def do_reload(conf):
    """None on success, else (status, text)."""
    from .control.client import Client, CommandFailed, NotRunning
    try:
        with Client(conf["SER_UNIX_SOCK"], timeout=30.0) as client:
            client.call("reload")
    except NotRunning as exc:
        return 503, f"Nothing to reload: {exc}"
    except CommandFailed as exc:
        return 500, f"Reload failed, the running configuration stays: {exc}"
    return None


def ban_address(text):
    """The address of a Lift form when ``ipaddress`` takes it as one IP address (no
    network, no IPv6 zone), else None: nothing else goes to the control socket.  The text is
    kept as the page showed it (the server's own spelling, which its table is keyed by)."""
    import ipaddress
    text = (text or "").strip()
    if not text or len(text) > 45:          # the longest IPv6 text form
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if getattr(address, "scope_id", None) else text


def do_lift(conf, address):
    """``ban_del ADDRESS``.  (None, removed 0|1) on success, else ((status, text), None)."""
    from .control.client import Client, CommandFailed, NotRunning
    try:
        with Client(conf["SER_UNIX_SOCK"], timeout=CONTROL_TIMEOUT) as client:
            answer = client.call("ban_del", address)
    except NotRunning as exc:
        return (503, f"Cannot lift the ban: {exc}"), None
    except (CommandFailed, OSError, ValueError) as exc:
        return (500, f"Lifting the ban on {address} failed: {exc}"), None
    removed = answer.get("removed", 0) if isinstance(answer, dict) else 0
    return None, int(removed or 0)


def restart_unavailable(argv):
    """Why the restart command cannot run (not there, not executable), else None: off the
    router /etc/init.d/ser does not exist, and that deserves words, not a 500."""
    if not argv:
        return "no restart command is configured (SER_RESTART_CMD is empty)"
    program = argv[0]
    if "/" not in program:                 # looked up in the command's own PATH
        if not any(os.access(os.path.join(d, program), os.X_OK)
                   for d in RESTART_PATH.split(":")):
            return f"{program} is not found in {RESTART_PATH}"
        return None
    if not os.path.exists(program):
        return f"{program} does not exist"
    if os.path.isdir(program) or not os.access(program, os.X_OK):
        return f"{program} is not an executable file"
    return None


def do_restart(conf, clock=time.monotonic, pause=time.sleep):
    """Run the restart command (a fixed argument list, a clean environment, no shell), then
    wait for a server with a new pid.  None on success, else (status, text)."""
    import shlex
    import subprocess
    try:
        argv = shlex.split(conf["SER_RESTART_CMD"])
    except ValueError as exc:               # an unmatched quote
        argv, why = [], f"SER_RESTART_CMD cannot be split into words ({exc})"
    else:
        why = restart_unavailable(argv)
    if why:
        return 503, (f"Restart is not available here: {why}. Set SER_RESTART_CMD in "
                     f"{conf['SER_WEBUI_CONF']} to the command that restarts serlite on this "
                     f"machine (on OpenWrt: /etc/init.d/ser restart).")
    before = server_pid(conf)
    try:
        # stdout to a pipe read only after the command exits: a daemon it starts may keep the
        # pipe open, and must not hold the web server's connection either
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, close_fds=True,
                                start_new_session=True,
                                env={"PATH": RESTART_PATH})
    except OSError as exc:
        return 500, f"Cannot run {argv[0]}: {exc.strerror or exc}"
    try:
        rc = proc.wait(RESTART_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        return 500, f"{' '.join(argv)} did not finish within {RESTART_TIMEOUT:.0f} s."
    os.set_blocking(proc.stdout.fileno(), False)
    try:
        output = (proc.stdout.read(2000) or b"").decode("utf-8", "replace").strip()
    except OSError:
        output = ""
    proc.stdout.close()
    if rc != 0:
        return 500, f"{' '.join(argv)} failed (exit status {rc}). {output}".strip()
    deadline = clock() + RESTART_SETTLE
    while True:                             # the command returned: wait for the new server
        pid = server_pid(conf)
        if pid is not None and pid != before:
            return None
        if clock() > deadline:
            return 503, (f"{' '.join(argv)} ran, but no new serlite answers on "
                         f"{conf['SER_UNIX_SOCK']} after {RESTART_SETTLE:.0f} s: see the "
                         f"system log (logread). {output}").strip()
        pause(0.05)


# --- one request -----------------------------------------------------------------------------

# RFC 9110 5.6.2: a method is a token
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def clean_environ(environ):
    """The CGI variables as text that encodes: os.environ carries a byte that is not UTF-8
    (a header, the method, the query) as a lone surrogate, which no later .encode() takes;
    such a byte becomes U+FFFD here, once, so that every answer can be written."""
    out = {}
    for key, value in environ.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                try:
                    raw = value.encode("utf-8", "surrogateescape")
                except UnicodeEncodeError:
                    raw = value.encode("utf-8", "replace")
                value = raw.decode("utf-8", "replace")
        out[key] = value
    return out


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status, body="", headers=()):
        self.status = status
        self.headers = list(headers)
        self.body = body

    def encode(self, head_only=False):
        """CGI output: Status first (busybox httpd reads it only there), then the headers."""
        lines = [f"Status: {self.status} {REASON.get(self.status, '')}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        if self.body:
            lines.append("Content-Type: text/html; charset=utf-8")
        lines += [f"{k}: {v}" for k, v in SECURITY_HEADERS]
        body = b"" if head_only else self.body.encode("utf-8")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def refuse(status, text, script, headers=()):
    return Response(status, page.message_page(f"{status} {REASON.get(status, '')}", text,
                                              script), headers)


def handle(environ, stdin, now, perf=time.perf_counter):
    """One CGI request -> a Response."""
    started = perf()
    conf = settings(environ)
    method = environ.get("REQUEST_METHOD") or "GET"
    script = environ.get("SCRIPT_NAME") or "/cgi-bin/ser"
    if len(method) > 20 or not set(method) <= _TOKEN_CHARS:
        return refuse(400, "The request method is not an HTTP token.", script)
    method = method.upper()
    user = environ.get("REMOTE_USER") or ""
    anonymous_ok = truthy(conf["SER_WEBUI_ALLOW_ANONYMOUS"])
    if method in ("GET", "HEAD"):
        query = parse_pairs(environ.get("QUERY_STRING") or "")
        return show(conf, script, user, anonymous_ok, query, now, started, perf)
    if method != "POST":
        return refuse(405, f"{method} is not allowed here: GET shows the page, the buttons "
                           f"POST.", script, [("Allow", "GET, HEAD, POST")])
    if not user and not anonymous_ok:
        return refuse(403, "Actions need a login: protect /cgi-bin/ser with the web server's "
                           "basic auth, or set SER_WEBUI_ALLOW_ANONYMOUS=1 in "
                           "/etc/ser/webui.conf.", script)
    why = check_origin(environ)
    if why:
        return refuse(403, f"Refused: {why}.", script)
    body, error = read_body(environ, stdin)
    if error:
        return refuse(error[0], error[1], script)
    form = parse_pairs(body)
    try:
        secret = load_secret(conf["SER_WEBUI_SECRET"])
    except OSError as exc:
        return refuse(500, f"Cannot read or create the secret {conf['SER_WEBUI_SECRET']}: "
                           f"{exc.strerror or exc}.", script)
    why = check_token(secret, form.get("token"), user, now)
    if why:
        return refuse(403, f"Refused: {why}.", script)
    action = form.get("action")
    if action not in ACTIONS:
        return refuse(400, "Unknown action (reload, restart, lift).", script)
    extra = ""
    if action == "lift":
        address = ban_address(form.get("address"))
        if address is None:
            return refuse(400, "Lift needs the IP address of a ban.", script)
        failed, removed = do_lift(conf, address)
        # an IP address: hex digits, dots and colons, nothing to escape in the Location
        extra = f"&address={address}" + ("" if removed else "&gone=1")
    else:
        failed = do_reload(conf) if action == "reload" else do_restart(conf)
    if failed:
        return refuse(failed[0], failed[1], script)
    refresh = refresh_of(form.get("refresh"))
    location = f"{script}?done={action}{extra}" + (f"&refresh={refresh}" if refresh else "")
    return Response(303, "", [("Location", location)])


def show(conf, script, user, anonymous_ok, query, now, started, perf):
    st = page.Status(script, now)
    st.refresh = refresh_of(query.get("refresh"))
    if query.get("done") in ACTIONS:
        st.notice = ("ok", ACTIONS[query["done"]])
        lifted = ban_address(query.get("address")) if query["done"] == "lift" else None
        if lifted:
            st.notice = ("ok", f"{lifted} was not banned any more (its ban had ended)."
                         if query.get("gone") else f"Ban on {lifted} lifted.")
    ask_server(conf, st)
    st.trust_lan = trust_lan(conf["SER_UCI"])
    router_info(st)
    st.addresses, st.nets_unknown = addresses_and_reasons(conf)
    if user or anonymous_ok:
        try:
            st.token = make_token(load_secret(conf["SER_WEBUI_SECRET"]), user, now)
        except OSError as exc:
            st.actions_note = (f"Actions are off: cannot read or create the secret "
                               f"{conf['SER_WEBUI_SECRET']} ({exc.strerror or exc}).")
    else:
        st.actions_note = ("Restart and Reload need a login: protect /cgi-bin/ser with the web "
                           "server's basic auth (or set SER_WEBUI_ALLOW_ANONYMOUS=1).")
    st.made_ms = lambda: (perf() - started) * 1000
    return Response(200, page.render(st, time.localtime))


# the answer when even the error page cannot be made: plain bytes, nothing computed
LAST_RESORT = (b"Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8"
               b"\r\nCache-Control: no-store\r\n\r\nThe status page failed; the web server's "
               b"log has the details.\n")


def main(environ=None, stdin=None, stdout=None):
    """One CGI run.  Whatever happens, one HTTP answer goes out: a bug of ours is a 500 with a
    short text (the traceback to stderr, the web server's log), never a broken connection."""
    stdin = sys.stdin.buffer if stdin is None else stdin
    stdout = sys.stdout.buffer if stdout is None else stdout
    try:
        environ = clean_environ(os.environ if environ is None else environ)
        head_only = (environ.get("REQUEST_METHOD") or "").upper() == "HEAD"
        try:
            response = handle(environ, stdin, time.time())
        except Exception:                   # a bug of ours: say so, details to the server log
            import traceback
            traceback.print_exc(file=sys.stderr)
            response = refuse(500, "The status page failed: the web server's log has the "
                                   "details.", environ.get("SCRIPT_NAME") or "/cgi-bin/ser")
        out = response.encode(head_only)
    except Exception:
        import traceback
        traceback.print_exc(file=sys.stderr)
        out = LAST_RESORT
    stdout.write(out)
    stdout.flush()
    return 0
