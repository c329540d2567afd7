"""secfilter: failed logins ban their source, scanner user agents are dropped (Kamailio's
secfilter function names, with the htable + pike ban pattern of Kamailio's default config
built in).

``secf_check_ua()`` is -2 when the User-Agent holds one of ``scanner_agents`` (any case), 1
otherwise: ``if (!secf_check_ua()) { drop; }`` at the top of ``route`` keeps scanners (SIPVicious's
"friendly-scanner" and the like) from learning that a SIP server is there.
``secf_check_ip()`` is -2 for a banned source, 2 for a trusted one, 1 otherwise (Kamailio's
values); a script rarely needs it, since a banned source's packets are dropped by a core source
filter before they are parsed.

Bans: when this module is loaded, auth tells it every failed digest login (a wrong password, or
an unknown user; not a request without credentials, not a right answer on a stale nonce).
``ban_failures`` failures within ``ban_window`` seconds ban the source for ``ban_time``,
doubling per repeat offence up to ``ban_time_max``; ``trusted`` addresses are never banned.
Many sources failing on one account raise an alarm (log, status page) once an hour; the account
is never locked.  Bans are kept in ``ban_file`` (written when a ban is made or lifted, at most
once a second) and survive restarts; ``ser-ctl ban list|add|del`` shows and changes them.  The
table itself is ``serlite.security.bans`` (pure), the file ``serlite.store.bans``;
docs/security.md has the log lines and a fail2ban filter.
"""

from __future__ import annotations

from .. import log
from ..security import bans as table_mod
from ..security.bans import BanTable, is_scanner, normal_address
from ..store.bans import BanFile
from .export import REQUEST_ROUTE, Function, Module, ModuleSpec, Param

BANNED, NOT_FOUND, TRUSTED = -2, 1, 2       # Kamailio's secf_check_* values
WRITE_INTERVAL = 1.0        # the ban file is written at most once a second (a ban flood)
TICK = 60.0                 # seconds between sweeps of ended bans, old failures and alarms
MAX_MANUAL = 366 * 86400    # ban_add's longest ban


def printable(text, limit=64):
    """A user name from the network as a log word: no spaces or control characters."""
    out = "".join(c if c.isprintable() and not c.isspace() else "?" for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


class Secfilter(Module):
    name = "secfilter"

    def __init__(self, params):
        super().__init__(params)
        self.table = BanTable(
            failures=params["ban_failures"], window=params["ban_window"],
            ban_time=params["ban_time"], ban_time_max=params["ban_time_max"],
            trusted=table_mod.parse_networks(params["trusted"]),
            max_bans=params["max_bans"], alarm_sources=params["alarm_sources"])
        self.agents = table_mod.parse_agents(params["scanner_agents"])
        self.file = BanFile(params["ban_file"]) if params["ban_file"] else None
        self._filtering = False
        self._timer = None
        self._write_timer = None
        self._pending = []          # records not yet in the file
        self._written = None        # when the file was last written (monotonic)

    # -- life --------------------------------------------------------------------------------
    def start(self, core, previous=None):
        super().start(core, previous)
        auth = core.module("auth")
        if auth is not None:
            auth.listen_failures(self.failed_login)
        now = core.now()
        if previous is not None:
            # SIGHUP: the table goes on (under the new limits); what the old module had not
            # written yet is written now, into the file of this config
            freed = self.table.take(previous.table)
            if previous._write_timer is not None:
                previous._write_timer.cancel()
                previous._write_timer = None
            pending, previous._pending = previous._pending, []
            self._written = previous._written
            if previous.file is not None and self.file is not None and \
                    previous.file.path == self.file.path:
                self.file = previous.file
                self._pending = pending
                for ip in freed:
                    self._pending.append({"ip": ip, "del": 1})
                if self._pending:
                    self._flush()
            elif self.file is not None:
                self._rewrite()
            for ip in freed:
                log.notice(f"secfilter: unbanned {ip}: trusted")
        elif self.file is not None:
            self._load(now)
        if self.table.active:
            self._filter_on()
        self._arm()

    def stop(self):
        for timer in (self._timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._write_timer = None
        if self._pending:
            self._flush()

    def _load(self, now):
        wall = self.core.wall()
        try:
            records, bad = self.file.load(self.table.max_bans)
        except OSError as exc:
            log.error(f"secfilter: cannot read {self.file.path}: {exc.strerror}; "
                      f"starting without the kept bans")
            return
        kept = 0
        for ip, r in records.items():
            # wall -> monotonic; a clock that jumped (a router without RTC before NTP)
            # cannot make a ban last longer from now than it was made for (not ban_time_max:
            # a manual ban may be longer, and a restart must not cut it)
            left = min(r["until"] - wall, max(0.0, r["until"] - r["since"]))
            ban = table_mod.Ban(now + left, now - max(0.0, wall - r["since"]), r["reason"],
                                r["failures"], r["user"], max(1, r["offences"]))
            kept += self.table.restore(ip, ban, now)
        if bad or len(records) != kept:
            if bad:
                log.warn(f"secfilter: {self.file.path}: {bad} bad line(s) skipped")
            self._rewrite()
        if self.table.active:
            log.notice(f"secfilter: {len(self.table.active)} ban(s) kept from "
                       f"{self.file.path}")

    # -- the source filter -------------------------------------------------------------------
    def _filter_on(self):
        if not self._filtering:
            self.core.add_source_filter(self._filter)
            self._filtering = True

    def _filter(self, source):
        """The core's source filter: a banned address's packets are dropped unparsed."""
        ban = self.table.active.get(source.ip)
        if ban is None:
            return False
        if ban.until > self.core.now():
            ban.dropped += 1
            return True
        del self.table.active[source.ip]
        log.info(f"secfilter: unbanned {source.ip}: ban ended")
        return False

    def _arm(self):
        self._timer = self.core.loop.call_later(TICK, self._tick)

    def _tick(self):
        self._timer = None
        if self.core.module(self.name) is not self:
            return
        try:
            for ip in self.table.expire(self.core.now()):
                log.info(f"secfilter: unbanned {ip}: ban ended")
        finally:
            self._arm()

    # -- what auth tells -----------------------------------------------------------------------
    def failed_login(self, ip, user, known):
        """auth's listener: a failed digest login from ``ip`` as ``user`` (``known``: the
        account exists, the password was wrong)."""
        now = self.core.now()
        table = self.table
        ban, alarm = table.failed(ip, user, now, known)
        if alarm is not None:
            log.warn(f"secfilter: account {printable(user)} is being guessed from "
                     f"{len(alarm.sources)} addresses ({alarm.failures} failures in "
                     f"{int(now - alarm.first)} s)")
        if ban is not None:
            self._banned(ip, ban, now)

    def _banned(self, ip, ban, now):
        log.warn(f"secfilter: banned {ip} for {int(round(ban.until - now))} s: {ban.reason} "
                 f"(failures={ban.failures} user={printable(ban.user) or '-'} "
                 f"offence={ban.offences})")
        self._filter_on()
        self._save(self._record(ip, ban, now))

    # -- control commands ----------------------------------------------------------------------
    def ban_add(self, address, seconds=None):
        ip = normal_address(address)
        if seconds is not None:
            seconds = int(seconds)
            if not 1 <= seconds <= MAX_MANUAL:
                raise ValueError(f"{seconds} s: a ban lasts 1 to {MAX_MANUAL} seconds")
        if self.table.is_trusted(ip):
            raise ValueError(f"{ip} is trusted (modparam trusted): never banned")
        now = self.core.now()
        ban = self.table.ban(ip, now, table_mod.MANUAL, 0, "", seconds)
        self._banned(ip, ban, now)
        return {"address": ip, "expires_in": int(round(ban.until - now))}

    def ban_del(self, address):
        ip = normal_address(address)
        active = ip in self.table.active
        known = self.table.unban(ip)
        if known:
            log.notice(f"secfilter: unbanned {ip}: "
                       f"{'by hand' if active else 'offences forgotten by hand'}")
            self._save({"ip": ip, "del": 1})
        return {"removed": 1 if active else 0}

    def rows(self):
        """The ``bans`` control command's answer (see CONTRACT: address, reason, ...)."""
        now, wall = self.core.now(), self.core.wall()
        bans = []
        for ip, ban in self.table.active.items():
            if ban.until <= now:
                continue
            bans.append({"address": ip, "reason": ban.reason, "failures": ban.failures,
                         "user": ban.user, "since": round(wall - (now - ban.since), 3),
                         "expires_in": int(ban.until - now + 0.999),
                         "offences": ban.offences, "dropped": ban.dropped})
        alarms = [{"account": user, "sources": len(g.sources), "failures": g.failures,
                   "since": round(wall - (now - g.first), 3),
                   "last": round(wall - (now - g.last), 3)}
                  for user, g in self.table.alarms(now)]
        return {"bans": bans, "alarms": alarms,
                "trusted": [str(n) if n.prefixlen != n.max_prefixlen else
                            str(n.network_address) for n in self.table.trusted]}

    # -- the file ------------------------------------------------------------------------------
    def _record(self, ip, ban, now):
        wall = self.core.wall()
        return {"ip": ip, "until": round(wall + (ban.until - now), 3),
                "since": round(wall - (now - ban.since), 3), "reason": ban.reason,
                "failures": ban.failures, "user": ban.user, "offences": ban.offences}

    def _save(self, record):
        if self.file is None:
            return
        if len(self._pending) < self.table.max_bans:
            self._pending.append(record)
        else:
            # a flood of bans within a second: the table itself (bounded) is written instead
            # of a journal line per ban
            self._pending = [None] * self.table.max_bans
        now = self.core.now()
        if self._written is None or now - self._written >= WRITE_INTERVAL:
            self._flush()
        elif self._write_timer is None:
            self._write_timer = self.core.loop.call_later(
                self._written + WRITE_INTERVAL - now, self._flush_timer)

    def _flush_timer(self):
        self._write_timer = None
        if self.core.module(self.name) is self or self._pending:
            self._flush()

    def _flush(self):
        self._written = self.core.now()
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            if self.file.lines + len(pending) > 2 * len(self.table.bans) + 64 or \
                    pending[-1] is None:
                self._rewrite()
            else:
                self.file.append(pending)
        except OSError as exc:
            log.limited(("secfilter-file",), log.ERR,
                        f"secfilter: cannot write {self.file.path}: {exc.strerror}; "
                        f"bans are kept in memory only", interval=60)

    def _rewrite(self):
        now = self.core.now()
        try:
            self.file.rewrite({ip: {k: v for k, v in self._record(ip, ban, now).items()
                                    if k != "ip"}
                               for ip, ban in self.table.bans.items()})
        except OSError as exc:
            log.limited(("secfilter-file",), log.ERR,
                        f"secfilter: cannot write {self.file.path}: {exc.strerror}; "
                        f"bans are kept in memory only", interval=60)

    # -- script functions ----------------------------------------------------------------------
    def secf_check_ua(self, ctx):
        if is_scanner(ctx.msg.get("User-Agent"), self.agents):
            log.limited(("secfilter-ua",), log.INFO,
                        f"secfilter: scanner {printable(ctx.msg.get('User-Agent'))} from "
                        f"{ctx.source.ip if ctx.source else '?'} dropped", interval=60)
            return BANNED
        return NOT_FOUND

    def secf_check_ip(self, ctx):
        ip = ctx.source.ip if ctx.source is not None else None
        if ip is None:
            return NOT_FOUND
        if self.table.is_trusted(ip):
            return TRUSTED
        return BANNED if self.table.banned(ip, self.core.now()) is not None else NOT_FOUND


EXPORTS = ModuleSpec(
    name="secfilter",
    doc="Failed logins ban their source address; scanner user agents are dropped "
        "(docs/security.md).",
    factory=Secfilter,
    functions=(
        Function("secf_check_ua", "secf_check_ua", (0,), REQUEST_ROUTE, None,
                 "-2 when the User-Agent is a scanner's (modparam scanner_agents), 1 otherwise"),
        Function("secf_check_ip", "secf_check_ip", (0,), REQUEST_ROUTE, None,
                 "-2 when the source address is banned, 2 when trusted, 1 otherwise"),
    ),
    params={
        "ban_failures": Param(int, 5, "failed logins within ban_window that ban the source",
                              min=1, max=1000),
        "ban_window": Param(int, 600, "seconds in which ban_failures failures ban",
                            min=1, max=86400),
        "ban_time": Param(int, 900, "seconds of the first ban; doubled per repeat offence",
                          min=1, max=31536000),
        "ban_time_max": Param(int, 86400, "longest ban, in seconds (also how long a past "
                              "offence is remembered)", min=1, max=31536000),
        "trusted": Param(str, "", "addresses and networks never banned, comma-separated "
                         "(e.g. a provider's)"),
        "scanner_agents": Param(str, ",".join(table_mod.DEFAULT_SCANNER_AGENTS),
                                "User-Agent parts (any case) that secf_check_ua matches, "
                                "comma-separated"),
        "ban_file": Param(str, "", "the file the bans are kept in (empty: memory only)"),
        "max_bans": Param(int, 4096, "bans kept at most (the oldest go first)",
                          min=16, max=1000000),
        "alarm_sources": Param(int, 3, "addresses failing on one account within ban_window "
                               "that raise its alarm", min=2, max=1000),
    },
)
