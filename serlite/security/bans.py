"""The ban table: failed logins per source address, bans with expiry, the per-account alarm,
the trusted networks and the scanner user agents (secfilter's machinery, pure: no I/O, no
clock; every method takes ``now``, monotonic seconds).

Failures: a source's failed logins are counted in a window that starts at its first failure
and lasts ``window`` seconds (a later failure after the window starts a new one).  The
``failures``-th failure within the window bans the source for ``ban_time``; each repeat
offence doubles it, up to ``ban_time_max``.  A past offence is remembered for ``ban_time_max``
after its ban ended (so a scanner that comes back the same day gets the doubled time).

Alarm: a known account that failed from ``alarm_sources`` or more addresses within the
window is being guessed by many machines (a botnet: no one source reaches the ban): one alarm
per account per ``ALARM_INTERVAL``; the account itself is never locked (that would let anyone
lock the owner's phone out).

Bounded: user names are cut at ``MAX_USER`` characters; at most ``max_bans`` bans (active or remembered offences) and as many sources with
failures; when full, the oldest entry goes first (dict order: a new ban is appended), so a
flood of spoofed source addresses costs at most the table's size, never more.  Trusted
networks are never counted nor banned.
"""

from __future__ import annotations

import ipaddress

ALARM_INTERVAL = 3600       # one alarm per account per hour
ALARM_SOURCES_KEPT = 64     # addresses remembered per account (more only count)
MAX_ACCOUNTS = 1024         # accounts with recent failures tracked at most
MAX_USER = 64               # characters of a user name kept (it comes from the attacker)

MANUAL = "manual"
FAILED_LOGINS = "failed logins"

# Kamailio's default kamailio.cfg drops "friendly|scanner|sipcli|sipvicious|VaxSIPUserAgent|
# pplsip"; the others are scanners seen in the wild.  Not sipsak: a test tool people use.
DEFAULT_SCANNER_AGENTS = ("friendly-scanner", "scanner", "sipvicious", "sipcli",
                          "VaxSIPUserAgent", "pplsip", "sundayddr", "iWar", "sip-scan")


class Ban:
    """One banned (or once banned) address.  ``until`` is when the ban ends (monotonic);
    ``since`` when it began; ``offences`` how many times the address was banned."""

    __slots__ = ("until", "since", "reason", "failures", "user", "offences", "dropped")

    def __init__(self, until, since, reason, failures, user, offences):
        self.until = until
        self.since = since
        self.reason = reason
        self.failures = failures
        self.user = user
        self.offences = offences
        self.dropped = 0


class Failures:
    """The failed logins of one source within its window."""

    __slots__ = ("first", "count", "user")

    def __init__(self, first, user):
        self.first = first
        self.count = 0
        self.user = user


class Guessed:
    """The failures on one account within the window: from which addresses, how many."""

    __slots__ = ("first", "last", "sources", "failures", "alarmed")

    def __init__(self, now):
        self.first = now
        self.last = now
        self.sources = {}       # ip -> failures (at most ALARM_SOURCES_KEPT)
        self.failures = 0
        self.alarmed = None     # when the last alarm was raised


def parse_networks(text):
    """Networks from ``"192.168.1.10, 10.0.0.0/8, fd00::/8"`` (commas or spaces); ValueError
    naming the bad entry."""
    nets = []
    for word in text.replace(",", " ").split():
        try:
            nets.append(ipaddress.ip_network(word, strict=True))
        except ValueError as exc:
            raise ValueError(f"trusted: {word!r} is not an address or network ({exc})") \
                from None
    return tuple(nets)


def normal_address(text):
    """The address as the transport writes a source (``str(ip_address)``); ValueError."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def parse_agents(text):
    """Scanner user agents from a comma-separated list, lower-cased (matched as substrings,
    case-insensitively); empty entries are skipped."""
    return tuple(w.strip().lower() for w in text.split(",") if w.strip())


def is_scanner(user_agent, agents):
    """True when ``user_agent`` holds one of ``agents`` (lower-case), in any case."""
    if not user_agent or not agents:
        return False
    ua = user_agent.lower()
    for agent in agents:
        if agent in ua:
            return True
    return False


class BanTable:
    """Bans and failed-login counts per source address; per-account alarms."""

    def __init__(self, failures=5, window=600, ban_time=900, ban_time_max=86400,
                 trusted=(), max_bans=4096, alarm_sources=3):
        if ban_time_max < ban_time:
            raise ValueError(f"ban_time_max ({ban_time_max}) is shorter than ban_time "
                             f"({ban_time})")
        self.limit = failures
        self.window = window
        self.ban_time = ban_time
        self.ban_time_max = ban_time_max
        self.trusted = tuple(trusted)
        self.max_bans = max_bans
        self.alarm_sources = alarm_sources
        self.active = {}        # ip -> Ban, banned now (what the source filter reads)
        self.bans = {}          # ip -> Ban, active or remembered offences; oldest first
        self.failures = {}      # ip -> Failures; oldest first
        self.accounts = {}      # account -> Guessed; oldest first

    # -- questions ---------------------------------------------------------------------------
    def is_trusted(self, ip):
        if not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.trusted)

    def banned(self, ip, now):
        """The active Ban of ``ip``, or None (an ended one is moved out of ``active``)."""
        ban = self.active.get(ip)
        if ban is None:
            return None
        if ban.until > now:
            return ban
        del self.active[ip]
        return None

    def next_time(self, offences):
        """The ban time of the ``offences``-th offence: doubled each time, capped."""
        return min(self.ban_time << min(offences - 1, 40), self.ban_time_max)

    # -- events ------------------------------------------------------------------------------
    def failed(self, ip, user, now, known=True):
        """A failed login from ``ip`` as ``user`` (``known``: the account exists).  Returns
        ``(ban, alarm)``: the new Ban if this failure banned the source, and the Guessed record
        if this failure raised the account's alarm (else None each)."""
        user = user[:MAX_USER]
        alarm = self._guessed(ip, user, now) if known else None
        if self.is_trusted(ip) or self.banned(ip, now) is not None:
            return None, alarm
        f = self.failures.get(ip)
        if f is not None and now - f.first >= self.window:
            del self.failures[ip]
            f = None
        if f is None:
            if len(self.failures) >= self.max_bans:
                del self.failures[next(iter(self.failures))]
            f = self.failures[ip] = Failures(now, user)
        f.count += 1
        f.user = user
        if f.count < self.limit:
            return None, alarm
        del self.failures[ip]
        return self.ban(ip, now, FAILED_LOGINS, f.count, user), alarm

    def ban(self, ip, now, reason, failures=0, user="", seconds=None):
        """Ban ``ip`` now; ``seconds`` None: the next ban time of its offences.  Returns the
        Ban (None for a trusted address)."""
        if self.is_trusted(ip):
            return None
        old = self.bans.pop(ip, None)
        offences = 1
        if old is not None and old.until + self.ban_time_max > now:
            offences = old.offences + 1
        if seconds is None:
            seconds = self.next_time(offences)
        ban = Ban(now + seconds, now, reason, failures, user, offences)
        self._keep(ip, ban)
        self.active[ip] = ban
        return ban

    def _keep(self, ip, ban):
        bans = self.bans
        while len(bans) >= self.max_bans:
            oldest = next(iter(bans))
            del bans[oldest]
            self.active.pop(oldest, None)
        bans[ip] = ban

    def unban(self, ip):
        """Lift ``ip``'s ban and forget its offences and failures; True if it was banned."""
        ban = self.bans.pop(ip, None)
        self.failures.pop(ip, None)
        was = self.active.pop(ip, None)
        return was is not None or ban is not None

    def restore(self, ip, ban, now):
        """Put back a Ban read from the file (its times already made monotonic)."""
        if self.is_trusted(ip) or ban.until + self.ban_time_max <= now:
            return False
        self.bans.pop(ip, None)
        self._keep(ip, ban)
        if ban.until > now:
            self.active[ip] = ban
        return True

    def _guessed(self, ip, user, now):
        accounts = self.accounts
        g = accounts.get(user)
        if g is not None and now - g.first >= self.window:
            if g.alarmed is not None and now - g.alarmed < ALARM_INTERVAL:
                g.first, g.sources, g.failures = now, {}, 0     # keep when it was alarmed
            else:
                del accounts[user]
                g = None
        if g is None:
            if len(accounts) >= MAX_ACCOUNTS:
                del accounts[next(iter(accounts))]
            g = accounts[user] = Guessed(now)
        g.last = now
        g.failures += 1
        sources = g.sources
        if ip in sources:
            sources[ip] += 1
        elif len(sources) < ALARM_SOURCES_KEPT:
            sources[ip] = 1
        if len(sources) >= self.alarm_sources and (
                g.alarmed is None or now - g.alarmed >= ALARM_INTERVAL):
            g.alarmed = now
            return g
        return None

    # -- time --------------------------------------------------------------------------------
    def expire(self, now):
        """Bans that ended (moved out of ``active``: returned, for the log), offences and
        failures and alarms no longer remembered (dropped)."""
        ended = [ip for ip, ban in self.active.items() if ban.until <= now]
        for ip in ended:
            del self.active[ip]
        horizon = now - self.ban_time_max
        for ip in [ip for ip, ban in self.bans.items() if ban.until <= horizon]:
            del self.bans[ip]
        for ip in [ip for ip, f in self.failures.items() if now - f.first >= self.window]:
            del self.failures[ip]
        for user in [u for u, g in self.accounts.items()
                     if now - g.last >= max(self.window, ALARM_INTERVAL)]:
            del self.accounts[user]
        return ended

    def alarms(self, now):
        """The accounts whose alarm was raised within the last ALARM_INTERVAL."""
        return [(user, g) for user, g in self.accounts.items()
                if g.alarmed is not None and now - g.alarmed < ALARM_INTERVAL]

    def take(self, other):
        """Carry ``other``'s state over (SIGHUP); trusted addresses are let go (returned)."""
        self.bans, self.active = other.bans, other.active
        self.failures, self.accounts = other.failures, other.accounts
        freed = [ip for ip in list(self.bans) if self.is_trusted(ip)]
        for ip in freed:
            self.unban(ip)
        return freed
