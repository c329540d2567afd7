"""The status page as HTML: what ``ps``, ``stats`` and ``ul show`` return, turned into one page.

Pure: ``render(status)`` takes a ``Status`` (gathered by ``serlite.webui``, the CGI) and returns
the page as a string; it does no I/O and reads no clock.  Every value that reaches the page
goes through ``esc``: AORs, contacts and user agents come from the network.

The page works without JavaScript (the buttons are plain forms) and needs nothing from
outside: the style sheet is inline, the favicon an empty data: URI.
"""

# SIP methods in the order a reader expects them; any other method follows alphabetically
METHOD_ORDER = ("INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "SUBSCRIBE", "NOTIFY",
                "PUBLISH", "MESSAGE", "INFO", "PRACK", "UPDATE", "REFER")
REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
           300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 407: "Proxy Authentication Required",
           408: "Request Timeout", 415: "Unsupported Media Type", 420: "Bad Extension",
           423: "Interval Too Brief", 480: "Temporarily Unavailable",
           481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
           486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
           500: "Server Internal Error", 503: "Service Unavailable", 504: "Server Time-out",
           513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline"}
REFRESH_CHOICES = (10, 30, 60)
# bans listed on the page at most (the longest first): a flood of spoofed addresses fills
# secfilter's table (max_bans, 4096), and 4096 rows are 2.5 MB of HTML for a phone
MAX_BAN_ROWS = 100


class Status:
    """Everything the page shows.  ``running`` False: only ``down_reason``, the router and the
    addresses are known."""

    __slots__ = ("script", "now", "running", "down_reason", "version", "procs", "stats",
                 "nets_unknown",
                 "phones", "router_uptime", "loadavg", "addresses", "refresh", "notice",
                 "token", "actions_note", "made_ms", "accounts", "trust_lan",
                 "calls", "bans", "relay", "registrations", "presence")

    def __init__(self, script="/cgi-bin/ser", now=0.0):
        self.script = script            # the CGI's own URL path (SCRIPT_NAME)
        self.now = now                  # wall clock, epoch seconds
        self.running = False
        self.down_reason = ""
        self.version = {}               # ``version``
        self.procs = []                 # ``ps`` rows
        self.stats = {}                 # ``stats``
        self.phones = []                # ``ul show`` rows
        self.router_uptime = None       # seconds, /proc/uptime
        self.loadavg = None             # ("0.10", "0.05", "0.01", "1/80"), /proc/loadavg
        self.addresses = []             # Address rows
        self.nets_unknown = {}          # {"wan"|"lan": why no address is known}
        self.refresh = None             # auto-refresh period in seconds, or None
        self.notice = None              # ("ok" | "error", text)
        self.token = None               # CSRF token for the forms; None: actions disabled
        self.actions_note = ""          # why actions are disabled
        self.made_ms = None             # a callable returning the milliseconds spent so far
        self.accounts = None            # ``accounts`` rows (user, registered; never a secret);
                                        # None: the server has no auth_db, no section
        self.trust_lan = False          # UCI option trust_lan: the LAN needs no password
        self.calls = None               # ``calls``: {"active", "history"}; None: no acc
        self.bans = None                # ``bans``: {"bans", "alarms", "trusted"}; None: the
                                        # server has no secfilter, no section
        self.relay = None               # the media relay's totals (``calls``' "relay", or
                                        # ``rtpproxy``'s "totals"); None: no relay, no card
        self.registrations = None       # ``uac.reg_dump`` rows; None: no provider account
        self.presence = None            # ``presence``: {"presentities", "subscriptions",
                                        # ...}; None: no presence module, no section


class Address:
    """One address of the router: ``role`` is "wan", "lan" or "lo"; ``name`` the logical
    interface (OpenWrt's "wan", "lan") when known, ``device`` the kernel's ("br-lan")."""

    __slots__ = ("address", "prefix", "role", "name", "device")

    def __init__(self, address, prefix, role, name="", device=""):
        self.address = address
        self.prefix = prefix
        self.role = role
        self.name = name
        self.device = device

    def label(self):
        if self.name and self.device and self.name != self.device:
            return f"{self.name} ({self.device})"
        return self.name or self.device

    def __repr__(self):
        return f"Address({self.address}/{self.prefix} {self.role} {self.label()})"


# --- small formatters ------------------------------------------------------------------------

def esc(value):
    """HTML-escape anything (quotes too: values go into attributes)."""
    return (str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#x27;"))


def duration(seconds):
    """3 d 4 h, 2 h 5 min, 5 min 3 s, 42 s."""
    s = max(0, int(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m} min"
    if m:
        return f"{m} min {s} s"
    return f"{s} s"


def size(n):
    """Bytes for people: 357 B, 3.4 kB, 1.2 MB."""
    if n < 1000:
        return f"{n} B"
    if n < 1000000:
        return f"{n / 1000:.1f} kB"
    if n < 1000000000:
        return f"{n / 1000000:.1f} MB"
    return f"{n / 1000000000:.1f} GB"


def clock(epoch, localtime):
    return "%04d-%02d-%02d %02d:%02d:%02d" % localtime(epoch)[:6]


def hostport(host, port):
    host = str(host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host


def uri_hostport(uri):
    """host:port of a SIP URI (``sip:alice@192.168.1.20:5062;transport=udp``)."""
    rest = uri.split(":", 1)[1] if ":" in uri[:5] else uri
    rest = rest.rsplit("@", 1)[-1]
    for stop in ";?>":
        rest = rest.split(stop, 1)[0]
    return rest


def _url(script, refresh=None):
    return f"{script}?refresh={refresh}" if refresh else script


# --- the page -------------------------------------------------------------------------------

def render(st, localtime):
    """The whole page.  ``localtime`` is ``time.localtime`` (passed in: no clock here)."""
    parts = [_head(st), _top(st), '<main class="wrap">']
    if st.notice:
        kind, text = st.notice
        parts.append(f'<p class="notice {esc(kind)}" id="notice" role="status">{esc(text)}</p>')
    if not st.running:
        parts.append(f'<p class="notice error" id="down"><b>serlite is not running</b>: '
                     f'{esc(st.down_reason)}. Restart SIP starts it again.</p>')
    if st.trust_lan:
        parts.append('<p class="notice error" id="trust-lan"><b>The LAN is trusted</b>: '
                     'phones on the LAN register and call without a password, so any device '
                     'on it (a guest\'s phone, a gadget on the Wi-Fi) can take over any '
                     'extension. Set <code>option trust_lan \'0\'</code> in /etc/config/ser '
                     'and give each phone its password.</p>')
    if st.running and st.bans is not None:
        parts.append(_ban_alarms(st, localtime))
    parts.append(_cards(st, localtime))
    if st.running and st.relay is not None:
        parts.append(_relay(st.relay))
    if st.running and st.calls is not None:
        parts.append(_calls(st, localtime))
    if st.running:
        parts += [_registrations(st), _phones(st), _accounts(st), _presence(st), _bans(st),
                  _messages(st), _procs(st)]
    parts.append(_foot(st, localtime))
    return "".join(parts)


def _head(st):
    refresh = ""
    if st.refresh:
        refresh = (f'<meta http-equiv="refresh" '
                   f'content="{st.refresh};url={esc(_url(st.script, st.refresh))}">')
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<meta name="color-scheme" content="light dark">'
            f'{refresh}<title>SIP status</title><link rel="icon" href="data:,">'
            f'<style>{CSS}</style></head><body>')


def _top(st):
    if st.running:
        badge = '<span id="status" class="badge ok">running</span>'
        version = st.version.get("version", "?")
        pid = st.procs[0]["pid"] if st.procs else "?"
        up = st.stats.get("uptime")
        sub = (f'serlite {esc(version)} · pid <span id="pid">{esc(pid)}</span>'
               + (f" · up {esc(duration(up))}" if up is not None else ""))
    else:
        badge = '<span id="status" class="badge down">not running</span>'
        sub = "The SIP server does not answer on its control socket."
    return (f'<header class="top"><div class="wrap"><div class="title"><h1>SIP server</h1>'
            f'{badge}</div><p class="sub">{sub}</p>{_actions(st)}</div></header>')


def _actions(st):
    here = esc(_url(st.script, st.refresh))
    buttons = [f'<a class="btn" id="refresh" href="{here}">Refresh</a>']
    hidden, disabled, title = _form_bits(st)
    if st.running:
        buttons.append(f'<form method="post" action="{esc(st.script)}">{hidden}'
                       f'<button class="btn" name="action" value="reload"{disabled}{title}>'
                       f'Reload config</button></form>')
    buttons.append(f'<form method="post" action="{esc(st.script)}">{hidden}'
                   f'<button class="btn danger" name="action" value="restart"{disabled}{title}>'
                   f'Restart SIP</button></form>')
    choices = ['<a href="%s"%s>off</a>' % (esc(st.script), "" if st.refresh
                                          else ' aria-current="true"')]
    for n in REFRESH_CHOICES:
        current = ' aria-current="true"' if st.refresh == n else ""
        choices.append(f'<a href="{esc(_url(st.script, n))}"{current}>{n} s</a>')
    note = (f'<p class="note" id="actions-note">{esc(st.actions_note)}</p>'
            if st.actions_note else "")
    return (f'<div class="actions">{"".join(buttons)}'
            f'<span class="auto">Auto-refresh {"".join(choices)}</span></div>{note}')


def _card(ident, title, body, extra=""):
    return (f'<div class="card" id="{ident}"><h3>{title}</h3>'
            f'<div class="big">{body}</div>{extra}</div>')


def _cards(st, localtime):
    cards = []
    if st.running:
        stats = st.stats
        cards.append(_card("sip-uptime", "SIP server up",
                           esc(duration(stats.get("uptime", 0))),
                           f'<p>since {esc(clock(stats.get("started", 0), localtime)[:16])}</p>'))
        contacts = stats.get("registered_contacts", len(st.phones))
        cards.append(_card("phones-count", "Phones", esc(contacts),
                           f'<p>{esc(stats.get("registered_aors", 0))} AORs registered</p>'))
        cards.append(_card("transactions", "Transactions", esc(stats.get("transactions", 0)),
                           "<p>active now</p>"))
    if st.router_uptime is not None:
        cards.append(_card("router-uptime", "Router up", esc(duration(st.router_uptime))))
    if st.loadavg is not None:
        one, five, fifteen = st.loadavg[:3]
        cards.append(_card("load", "Load average", esc(one),
                           f"<p>5, 15 min: {esc(five)}, {esc(fifteen)}</p>"))
    nets = (_addr_card("wan", "WAN", [a for a in st.addresses if a.role == "wan"],
                       st.nets_unknown.get("wan"))
            + _addr_card("lan", "LAN", [a for a in st.addresses if a.role == "lan"],
                         st.nets_unknown.get("lan")))
    return (f'<section class="cards">{"".join(cards)}</section>'
            f'<section class="cards nets">{nets}</section>')


def _addr_card(ident, title, addrs, why=None):
    if not addrs:           # unknown, and why: what was asked and what it lacked
        body = (f'<li class="muted" id="{ident}-why">unknown: {esc(why)}</li>' if why
                else '<li class="muted">unknown</li>')
    else:
        body = "".join(f'<li><span class="addr">{esc(a.address)}/{esc(a.prefix)}</span> '
                       f'<span class="muted">{esc(a.label())}</span></li>' for a in addrs)
    return f'<div class="card addrs" id="{ident}"><h3>{title}</h3><ul>{body}</ul></div>'


def _table(ident, head, rows, empty, cls="stack"):
    if not rows:
        return f'<p class="empty" id="{ident}-empty">{empty}</p>'
    th = "".join(f"<th>{h}</th>" for h in head)
    return (f'<div class="tablewrap"><table id="{ident}" class="{cls}"><thead><tr>{th}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div>')


def _td(label, value, cls=""):
    cls = f' class="{cls}"' if cls else ""
    return f'<td data-label="{label}"{cls}>{value}</td>'


def _phones(st):
    rows = []
    for p in sorted(st.phones, key=lambda p: (p.get("aor", ""), p.get("contact", ""))):
        contact = p.get("contact", "")
        source = p.get("received") or uri_hostport(contact)
        nat = ('<span class="tag warn">NAT</span>' if p.get("nat")
               else '<span class="tag">no</span>')
        expires = int(p.get("expires", 0))
        rows.append("<tr>" + _td("AOR", esc(p.get("aor", "")), "strong")
                    + _td("Contact", esc(contact), "mono")
                    + _td("Source", esc(source), "mono")
                    + _td("NAT", nat)
                    + _td("User agent", esc(p.get("user_agent") or "—"))
                    + _td("Expires in", f'<span data-s="{expires}">{esc(duration(expires))}'
                                        f'</span>', "num")
                    + "</tr>")
    table = _table("phones", ("AOR", "Contact", "Source", "NAT", "User agent", "Expires in"),
                   rows, "No phone is registered.")
    return (f'<section><h2>Registered phones <span class="count">{len(st.phones)}</span></h2>'
            f'{table}</section>')


_REG_STATE = {"registered": "", "registering": "", "waiting": " warn", "failed": " bad",
              "disabled": " warn"}


def _registrations(st):
    """The provider accounts serlite registers (uac's uacreg table): state, last answer (a
    wrong password shows as failed with the provider's 401/403), time left."""
    if not st.registrations:
        return ""
    rows = []
    for r in st.registrations:
        state = str(r.get("state", ""))
        last = (f'{int(r.get("last_status") or 0)} {r.get("last_reason", "")}'
                if r.get("last_status") else "—")
        left = int(r.get("expires_in") or 0)
        rows.append("<tr>" + _td("Account", esc(f'{r.get("r_username", "")}@'
                                                 f'{r.get("r_domain", "")}'), "strong")
                    + _td("State", f'<span class="tag{_REG_STATE.get(state, " warn")}">'
                                   f'{esc(state)}</span>')
                    + _td("Last answer", esc(last))
                    + _td("Expires in", f'<span data-s="{left}">{esc(duration(left))}</span>'
                          if left else "—", "num")
                    + "</tr>")
    table = _table("registrations", ("Account", "State", "Last answer", "Expires in"), rows,
                   "No provider account.")
    return (f'<section><h2>Provider <span class="count">{len(st.registrations)}</span></h2>'
            f'{table}</section>')


def _accounts(st):
    """The accounts (UCI config user sections, as the server has them): names and whether
    each has a phone registered now.  Never a password or a hash."""
    if st.accounts is None:
        return ""
    rows = []
    for a in sorted(st.accounts, key=lambda a: (a.get("user", ""), a.get("domain", ""))):
        n = int(a.get("registered") or 0)
        state = (f'<span class="tag">registered{f" ({n})" if n > 1 else ""}</span>' if n
                 else '<span class="tag warn">not registered</span>')
        rows.append("<tr>" + _td("User", esc(a.get("user", "")), "strong")
                    + _td("State", state) + "</tr>")
    table = _table("accounts", ("User", "State"), rows,
                   "No account yet: ser-ctl user add 100 PASSWORD.")
    return (f'<section><h2>Accounts <span class="count">{len(st.accounts)}</span></h2>'
            f'{table}</section>')


_PHONE_STATE = {"confirmed": "on the phone", "early": "ringing", "trying": "calling",
                "proceeding": "calling"}


def _presence(st):
    """The presence module's view: each account's presence (what its phones published: open,
    closed; unknown when none did), whether it is on the phone (its dialog state), how many
    watch it; and the subscriptions in all."""
    if st.presence is None:
        return ""
    rows = []
    for p in st.presence.get("presentities") or []:
        state = p.get("presence") or "unknown"
        tag = {"open": "tag", "closed": "tag warn"}.get(state, "tag muted")
        phone = _PHONE_STATE.get(p.get("dialog"), "")
        rows.append("<tr>" + _td("User", esc(p.get("user", "")), "strong")
                    + _td("Presence", f'<span class="{tag}">{esc(state)}</span>')
                    + _td("Phone", esc(phone) if phone else "-")
                    + _td("Watchers", esc(p.get("watchers", 0))) + "</tr>")
    table = _table("presence", ("User", "Presence", "Phone", "Watchers"), rows,
                   "No account, no publication, no subscription yet.")
    n = int(st.presence.get("subscriptions") or 0)
    return (f'<section id="presence-section"><h2>Presence <span class="count" '
            f'id="subscriptions">{n}</span></h2>'
            f'<p class="note-line">{n} active subscription{"" if n == 1 else "s"}</p>'
            f'{table}</section>')


def _ban_alarms(st, localtime):
    """secfilter's per-account alarms, near the top: many addresses guessing one account's
    password.  The account is never locked (that would lock the owner's phone out), so the
    owner has to know."""
    rows = []
    for a in st.bans.get("alarms") or []:
        n, failures = int(a.get("sources") or 0), int(a.get("failures") or 0)
        rows.append(f'<li><b>Account {esc(a.get("account", ""))} is being guessed from '
                    f'{n} address{"" if n == 1 else "es"}</b> ({failures} failed '
                    f'login{"" if failures == 1 else "s"}, last at '
                    f'{esc(clock(a.get("last") or 0, localtime)[5:16])}).</li>')
    if not rows:
        return ""
    return (f'<div class="notice error" id="ban-alarms" role="alert"><ul>{"".join(rows)}</ul>'
            f'<p>Each address is banned after its own failed logins; the account itself stays '
            f'open. Give it a long random password (ser-ctl user passwd) if it has a short '
            f'one.</p></div>')


def _bans(st):
    """secfilter's banned addresses (why, how many failures, the last user tried, time left,
    how many times, packets dropped since) with a Lift button each: a POST like Reload's (token, same origin), which
    the CGI turns into the control socket's ``ban_del ADDRESS``."""
    if st.bans is None:
        return ""
    bans = sorted(st.bans.get("bans") or [], key=lambda b: -int(b.get("expires_in") or 0))
    hidden, disabled, title = _form_bits(st)
    rows = []
    for b in bans[:MAX_BAN_ROWS]:
        address, left = str(b.get("address", "")), int(b.get("expires_in") or 0)
        lift = (f'<form method="post" action="{esc(st.script)}" class="lift">{hidden}'
                f'<input type="hidden" name="address" value="{esc(address)}">'
                f'<button class="btn small" name="action" value="lift"{disabled}{title}>'
                f'Lift</button></form>')
        rows.append("<tr>" + _td("Address", esc(address), "mono strong")
                    + _td("Reason", esc(b.get("reason", "")))
                    + _td("Failures", esc(int(b.get("failures") or 0)), "num")
                    + _td("Last user", esc(b.get("user") or "—"))
                    + _td("Time left", f'<span data-s="{left}">{esc(duration(left))}</span>',
                          "num")
                    + _td("Offences", esc(int(b.get("offences") or 0)), "num")
                    + _td("Dropped", esc(b["dropped"]) if "dropped" in b else "—", "num")
                    + _td("Lift", lift) + "</tr>")
    table = _table("bans", ("Address", "Reason", "Failures", "Last user", "Time left",
                            "Offences", "Dropped", "Lift"), rows,
                   "No address is banned. An address is banned after failed logins "
                   "(see docs/security.md).")
    trusted = st.bans.get("trusted") or []
    note = (f'<p class="note-line" id="trusted">Never banned: '
            f'{esc(", ".join(str(t) for t in trusted))}</p>' if trusted else "")
    if len(bans) > MAX_BAN_ROWS:
        note = (f'<p class="note-line" id="bans-more">and {len(bans) - MAX_BAN_ROWS} more, '
                f'ending sooner: ser-ctl ban list shows them all</p>') + note
    return (f'<section id="banned"><h2>Banned <span class="count">{len(bans)}</span></h2>'
            f'{table}{note}</section>')


def _form_bits(st):
    """(hidden inputs, disabled attribute, title attribute) of a POST form, as _actions makes
    them: the CSRF token (and the refresh to come back to), or the buttons off and why."""
    hidden = ""
    if st.token is not None:
        hidden = f'<input type="hidden" name="token" value="{esc(st.token)}">'
        if st.refresh:
            hidden += f'<input type="hidden" name="refresh" value="{esc(st.refresh)}">'
    disabled = "" if st.token is not None else " disabled"
    title = f' title="{esc(st.actions_note)}"' if st.actions_note else ""
    return hidden, disabled, title


def _party(uri):
    """A caller or callee as people read it: the URI without its scheme and parameters."""
    text = str(uri or "")
    if text[:4].lower() == "sip:":
        text = text[4:]
    elif text[:5].lower() == "sips:":
        text = text[5:]
    return text.split(";", 1)[0] or "—"


# the dialog tracker's states as people say them (ser-ctl calls shows the tracker's words)
_CALL_STATES = {"trying": "calling", "early": "ringing", "confirmed": "answered"}
_RESULT_TAGS = {"missed": "tag bad", "busy": "tag warn", "failed": "tag warn",
                "answered": "tag ok"}


def _calls(st, localtime):
    """The calls going on (caller, callee, state, since) and the last calls of acc's history,
    missed ones marked."""
    calls = st.calls
    active, history = calls.get("active", []), calls.get("history", [])
    relay = calls.get("relay") is not None       # the media columns: only with a relay
    rows = ["<tr>" + _td("Caller", esc(_party(c.get("caller"))), "strong")
            + _td("Callee", esc(_party(c.get("callee"))), "strong")
            + _td("State", f'<span class="tag" data-state="{esc(c.get("state", ""))}">'
                           f'{esc(_CALL_STATES.get(c.get("state"), c.get("state", "")))}</span>')
            + _td("Since", esc(duration(c.get("since", 0))), "num")
            + (_media_cells(c.get("media")) if relay else "") + "</tr>"
            for c in active]
    head = ("Caller", "Callee", "State", "Since")
    if relay:
        head += ("Media", "From caller", "From callee")
    now = _table("active-calls", head, rows, "No call going on.")
    if not calls.get("history_on", True):
        last = ('<p class="empty" id="calls-off">No call history: set '
                'modparam("acc", "history_file", ...).</p>')
    else:
        rows = []
        for c in history:
            result = str(c.get("result", ""))
            talked = duration(c.get("duration", 0)) if c.get("answer") is not None else "—"
            rows.append(f'<tr class="call-{esc(result)}">'
                        + _td("When", esc(clock(c.get("start", 0), localtime)[5:16]), "num")
                        + _td("Caller", esc(_party(c.get("caller"))), "strong")
                        + _td("Callee", esc(_party(c.get("callee"))), "strong")
                        + _td("Result", f'<span class="{_RESULT_TAGS.get(result, "tag")}">'
                                        f'{esc(result)}</span>')
                        + _td("Talked", esc(talked), "num") + "</tr>")
        last = _table("call-history", ("When", "Caller", "Callee", "Result", "Talked"), rows,
                      "No call yet.")
    missed = sum(1 for c in history if c.get("result") == "missed")
    note = f' <span class="tag bad">{missed} missed</span>' if missed else ""
    return (f'<section id="calls"><h2>Calls now <span class="count">{len(active)}</span></h2>'
            f'{now}<h2>Last calls <span class="count">{len(history)}</span>{note}</h2>'
            f'{last}</section>')


def _media_cells(media):
    """A call's media: relayed through the router (packets and bytes received from each
    side, a side marked silent when nothing came from it lately: the one-way audio the
    relay logs) or direct between the phones."""
    if not media:
        return (_td("Media", '<span class="tag">direct</span>')
                + _td("From caller", "—", "num zero") + _td("From callee", "—", "num zero"))
    cells = _td("Media", '<span class="tag ok">relayed</span>')
    for label, key in (("From caller", "from_caller"), ("From callee", "from_callee")):
        side = media.get(key) or {}
        n, nbytes = int(side.get("packets") or 0), int(side.get("bytes") or 0)
        silent = (' <span class="tag bad">silent</span>' if side.get("silent") else "")
        cells += (f'<td data-label="{label}" class="num" data-n="{n}" data-bytes="{nbytes}">'
                  f'{n}{silent}<small>{esc(size(nbytes))}</small></td>')
    return cells


def _relay_remedy(t, used, ports):
    """What to widen: the port range when the ports run out first, else the session bound."""
    if used >= 0.8 * ports:
        return "widen <code>option rtp_ports</code> (4 ports a call)"
    return ('raise <code>modparam("rtpproxy", "rtp_max_sessions", ...)</code> in the '
            'config')


def _relay(t):
    """The media relay: calls relayed now of the most it takes, the port range's ports in
    use (4 per relayed audio stream), what it relayed and refused; a warning when nearly
    full (new calls past it get no relay: no audio across the NAT)."""
    used, ports = int(t.get("ports_used") or 0), int(t.get("ports") or 0)
    full = t.get("nearly_full")
    warn = (f'<p class="notice error" id="relay-full"><b>The media relay is nearly full</b>: '
            f'{esc(t.get("sessions", 0))} of {esc(t.get("max_sessions", 0))} calls, {used} of '
            f'{ports} RTP ports in use. Calls past it have no audio across the NAT: '
            f'{_relay_remedy(t, used, ports)}.</p>' if full else "")
    cards = [
        _card("relay-sessions", "Calls relayed", esc(t.get("sessions", 0)),
              f'<p>at most {esc(t.get("max_sessions", 0))}</p>'),
        _card("relay-ports", "RTP ports in use", f"{used} / {ports}",
              f'<p>{esc(t.get("port_min", ""))}-{esc(t.get("port_max", ""))}, 4 a call</p>'),
        _card("relay-packets", "Media relayed", esc(t.get("packets", 0)),
              f'<p>packets, {esc(size(int(t.get("bytes") or 0)))}</p>'),
        _card("relay-problems", "Relay refused", esc(t.get("refused", 0)),
              f'<p>timed out {esc(t.get("timeouts", 0))}, one-way '
              f'{esc(t.get("one_way", 0))}</p>'),
    ]
    return (f'<section id="relay">{warn}<h2>Media relay</h2>'
            f'<div class="cards">{"".join(cards)}</div></section>')


def _count_cell(label, entry):
    n, nbytes = entry if entry else (0, 0)
    if not n:
        return f'<td data-label="{label}" class="num zero" data-n="0" data-bytes="0">0</td>'
    return (f'<td data-label="{label}" class="num" data-n="{n}" data-bytes="{nbytes}">'
            f'{n}<small>{esc(size(nbytes))}</small></td>')


def _method_key(method):
    try:
        return (METHOD_ORDER.index(method), method)
    except ValueError:
        return (len(METHOD_ORDER), method)


def _messages(st):
    stats = st.stats
    req_in, req_out = stats.get("requests_in", {}), stats.get("requests_out", {})
    rows = []
    for method in sorted(set(req_in) | set(req_out), key=_method_key):
        rows.append(f'<tr id="req-{esc(method)}"><th scope="row">{esc(method)}</th>'
                    + _count_cell("Received", req_in.get(method))
                    + _count_cell("Sent", req_out.get(method)) + "</tr>")
    requests = _table("requests", ("Request", "Received", "Sent"), rows,
                      "No request yet.", cls="counts")
    rep_in, rep_out = stats.get("replies_in", {}), stats.get("replies_out", {})
    cls_in, cls_out = stats.get("reply_classes_in", {}), stats.get("reply_classes_out", {})
    codes = sorted({int(c) for c in rep_in} | {int(c) for c in rep_out})
    rows = []
    for klass in range(1, 7):
        key = f"{klass}xx"
        rows.append(f'<tr id="rep-{key}" class="class"><th scope="row">{key}</th>'
                    + _count_cell("Received", cls_in.get(key))
                    + _count_cell("Sent", cls_out.get(key)) + "</tr>")
        for code in codes:
            if code // 100 == klass:
                reason = REASONS.get(code, "")
                rows.append(f'<tr id="rep-{code}" class="code"><th scope="row">{code}'
                            f' <span class="muted">{esc(reason)}</span></th>'
                            + _count_cell("Received", rep_in.get(str(code)))
                            + _count_cell("Sent", rep_out.get(str(code))) + "</tr>")
    replies = _table("replies", ("Reply", "Received", "Sent"), rows, "", cls="counts")
    return (f'<section><h2>Messages</h2><div class="two"><div>{requests}</div>'
            f'<div>{replies}</div></div></section>')


def _iface_of(addr, address):
    if addr is None:
        return "all" if address in ("0.0.0.0", "::") else "—"
    if addr.role == "lo":
        return "loopback"
    return f"{addr.role.upper()} · {addr.label()}"


def _procs(st):
    where = {a.address: a for a in st.addresses}
    rows = []
    for p in st.procs:
        port = p.get("port")
        address = p.get("address", "")
        if p.get("proto") == "unix":
            at, iface = address, "—"
        else:
            at = hostport(address, port)
            iface = _iface_of(where.get(address), address)
        rows.append("<tr>" + _td("PID", esc(p.get("pid", "")), "num")
                    + _td("Process", esc(p.get("name", "")), "strong")
                    + _td("Socket", esc(p.get("socket", "")), "mono")
                    + _td("Address", esc(at), "mono")
                    + _td("Interface", esc(iface)) + "</tr>")
    table = _table("procs", ("PID", "Process", "Socket", "Address", "Interface"), rows,
                   "No process listed.")
    return f"<section><h2>SIP processes</h2>{table}</section>"


def _foot(st, localtime):
    made = f" · made in {st.made_ms():.1f} ms" if st.made_ms is not None else ""
    return (f'</main><footer class="wrap">Updated {esc(clock(st.now, localtime))}{made}'
            f"</footer></body></html>")


def message_page(title, text, back):
    """A short page for an answer that is not the status page (403, 405, a failed action)."""
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<meta name="color-scheme" content="light dark">'
            f'<title>{esc(title)}</title><link rel="icon" href="data:,"><style>{CSS}</style>'
            f'</head><body><main class="wrap"><h1 class="msg">{esc(title)}</h1>'
            f'<p class="notice error" id="message">{esc(text)}</p>'
            f'<p><a class="btn" href="{esc(back)}">Back to the status page</a></p></main>'
            f'</body></html>')


CSS = """
:root{--bg:#f3f5f8;--card:#fff;--fg:#1d2733;--muted:#627080;--line:#e2e7ee;--zebra:#f8fafc;
--accent:#0b63c4;--ok:#157a36;--okbg:#e3f4e8;--bad:#b3261e;--badbg:#fde8e6;--warn:#8a5a00;
--warnbg:#fff2d6;--top:#17212e;--topfg:#f4f7fa}
@media (prefers-color-scheme:dark){:root{--bg:#0f1318;--card:#181e26;--fg:#e4e8ed;
--muted:#97a3b0;--line:#28313c;--zebra:#1c232c;--accent:#5aa2f0;--ok:#5fd184;--okbg:#15301f;
--bad:#ff8a80;--badbg:#3a1a18;--warn:#f5c05a;--warnbg:#352a12;--top:#0a0d11}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,Ubuntu,sans-serif;-webkit-text-size-adjust:100%}
.wrap{max-width:1120px;margin:0 auto;padding:0 16px}
.top{background:var(--top);color:var(--topfg);padding:14px 0 12px}
.title{display:flex;align-items:center;gap:12px;flex-wrap:wrap}
h1{font-size:1.35rem;margin:0;font-weight:650;letter-spacing:.01em}
.sub{margin:4px 0 10px;color:#b8c3cf;font-size:.9rem}
.badge{display:inline-block;padding:3px 11px 3px 22px;border-radius:999px;font-size:.82rem;
font-weight:650;position:relative;text-transform:uppercase;letter-spacing:.04em}
.badge:before{content:"";position:absolute;left:9px;top:50%;width:8px;height:8px;
margin-top:-4px;border-radius:50%;background:currentColor}
.badge.ok{background:#1f6f3b;color:#d9f7e3}.badge.down{background:#a3261e;color:#ffe4e1}
.actions{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.actions form{margin:0;display:contents}
.btn{display:inline-block;font:inherit;font-size:.92rem;font-weight:600;padding:8px 16px;
border-radius:8px;border:1px solid #4b5a6b;background:#263445;color:#f4f7fa;
text-decoration:none;cursor:pointer;line-height:1.2}
.btn:hover{background:#31445a}.btn:disabled{opacity:.45;cursor:not-allowed}
.btn.danger{border-color:#c4473d;background:#8f2a22}.btn.danger:hover{background:#a8342b}
main .btn{background:var(--accent);border-color:var(--accent)}
.auto{margin-left:auto;font-size:.82rem;color:#b8c3cf;display:flex;gap:2px;align-items:center;
flex-wrap:wrap}
.auto a{color:#dfe7ef;text-decoration:none;padding:3px 8px;border-radius:6px}
.auto a:first-child{margin-left:6px}
.auto a[aria-current]{background:#3a4c61;color:#fff}
.note{margin:8px 0 0;font-size:.85rem;color:#f5c05a}
.notice{padding:10px 14px;border-radius:8px;margin:16px 0 0;border:1px solid transparent}
.notice.ok{background:var(--okbg);color:var(--ok);border-color:currentColor}
.notice.error{background:var(--badbg);color:var(--bad);border-color:currentColor}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(165px,1fr));gap:12px;
margin:16px 0 0}
.cards.nets{grid-template-columns:repeat(auto-fit,minmax(280px,1fr));margin-top:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:11px 14px;
min-width:0}
.card h3{margin:0;font-size:.74rem;text-transform:uppercase;letter-spacing:.06em;
color:var(--muted);font-weight:650}
.card .big{font-size:1.3rem;font-weight:650;margin-top:2px;font-variant-numeric:tabular-nums}
.card p{margin:2px 0 0;color:var(--muted);font-size:.84rem}
.card ul{list-style:none;margin:4px 0 0;padding:0;font-size:.9rem}
.card li{overflow-wrap:anywhere}
.addr{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-weight:600}
.muted{color:var(--muted);font-weight:400}
section h2{font-size:1.05rem;margin:22px 0 8px;display:flex;align-items:center;gap:8px}
.count{background:var(--accent);color:#fff;border-radius:999px;font-size:.75rem;padding:1px 9px}
.tablewrap{background:var(--card);border:1px solid var(--line);border-radius:10px;
overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:8px 12px;border-bottom:1px solid var(--line);vertical-align:top}
thead th{font-size:.72rem;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);
background:var(--zebra);font-weight:650}
tbody tr:last-child>*{border-bottom:0}
tbody tr:nth-child(even){background:var(--zebra)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td small{display:block;color:var(--muted);font-size:.76rem}
td.zero{color:var(--muted)}
.counts td{text-align:right;width:32%;font-variant-numeric:tabular-nums}
.counts thead th:not(:first-child){text-align:right}
.counts tbody th{font-weight:600}
.counts tr.code th{padding-left:26px;font-weight:500}
.counts tr.class{background:transparent}
.counts tr.code{background:var(--zebra)}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.84rem;
overflow-wrap:anywhere}
.strong{font-weight:600;overflow-wrap:anywhere}
.tag{display:inline-block;font-size:.75rem;padding:1px 8px;border-radius:999px;
background:var(--zebra);border:1px solid var(--line);color:var(--muted)}
.tag.warn{background:var(--warnbg);color:var(--warn);border-color:currentColor}
.tag.bad{background:var(--badbg);color:var(--bad);border-color:currentColor;font-weight:600}
.tag.ok{background:var(--okbg);color:var(--ok)}
tr.call-missed td{color:var(--bad)}
.two{display:grid;grid-template-columns:1fr 1fr;gap:12px;align-items:start}
.empty{background:var(--card);border:1px dashed var(--line);border-radius:10px;
padding:14px;color:var(--muted);margin:0}
footer{color:var(--muted);font-size:.8rem;padding-top:18px;padding-bottom:24px}
h1.msg{margin-top:24px}
#ban-alarms ul{margin:0;padding-left:18px}#ban-alarms p{margin:4px 0 0;font-size:.86rem}
form.lift{margin:0}.btn.small{padding:4px 12px;font-size:.84rem}
.note-line{margin:6px 2px 0;color:var(--muted);font-size:.84rem}
@media (max-width:720px){
.two{grid-template-columns:1fr}
.auto{margin-left:0;width:100%}
.auto a:first-child{margin-left:4px}
.actions .btn{flex:1 1 auto;text-align:center}
.cards{grid-template-columns:repeat(2,minmax(0,1fr))}
table.stack thead{display:none}
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}
table.stack tr{padding:8px 12px;border-bottom:1px solid var(--line)}
table.stack tbody tr:last-child{border-bottom:0}
table.stack td{display:flex;gap:12px;justify-content:space-between;border:0;padding:3px 0;
text-align:right}
table.stack td:before{content:attr(data-label);color:var(--muted);font-size:.78rem;
text-transform:uppercase;letter-spacing:.05em;text-align:left;flex:none;padding-top:2px}
table.stack td.mono{font-size:.8rem}
}
""".replace("\n", "")
