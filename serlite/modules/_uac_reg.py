"""uac's outbound registrations: the I/O side of ``serlite.uac.registration``.

Reads the ``uacreg`` table (dbtext, Kamailio 5.6's columns, ``version`` saying ``uacreg:5``),
keeps one ``Registration`` per record, sends their REGISTERs with tm's ``t_uac`` and arms one
loop timer for the earliest that is due.  SIGHUP: a record that did not change keeps its
state (no REGISTER storm on a reload); the table is read again.
"""

import os

from .. import log
from ..proxy import forward
from ..sip.errors import ParseError
from ..sip.uri import URI
from ..store import dbtext
from ..uac.registration import FAILED, REGISTERED, Record, Registration

TABLE_VERSION = 5


def read_records(db_url, table="uacreg"):
    """The usable Records of the table, and the warnings (``file:line: why`` or why a
    record is left out)."""
    path = dbtext.table_path(db_url, table)
    tab, warnings = dbtext.read_table(path)
    missing = [c for c in ("l_uuid", "r_username", "r_domain", "auth_username")
               if tab.column(c) is None]
    if missing:
        raise dbtext.DbTextError(f"{path}:1: no column {', '.join(missing)} (Kamailio 5.6's "
                                 f"uacreg: {' '.join(Record.COLUMNS)})")
    version = _version(db_url, table)
    if version is not None and version != TABLE_VERSION:
        warnings.append(f"{dbtext.table_path(db_url, 'version')}: {table} is version "
                        f"{version}, serlite reads {TABLE_VERSION} (Kamailio 5.6)")
    records = []
    for row in tab.records():
        rec = Record(**{k: row.get(k) for k in Record.COLUMNS})
        why = rec.check()
        if why:
            warnings.append(f"{path}: record {rec.l_uuid or rec.id}: {why}; left out")
            continue
        records.append(rec)
    return records, warnings


def _version(db_url, table):
    try:
        tab, _ = dbtext.read_table(dbtext.table_path(db_url, "version"))
    except (OSError, dbtext.DbTextError):
        return None
    for row in tab.records():
        if row.get("table_name") == table:
            return row.get("table_version")
    return None


def _same(a, b):
    return all(getattr(a, c) == getattr(b, c) for c in Record.COLUMNS)


class Registrations:
    def __init__(self, module, params):
        self.module = module
        self.params = params
        self.regs = {}          # l_uuid -> Registration
        self.core = None
        self._timer = None
        self.successor = None   # the Registrations of the config that replaced this one
        self._next_check = 0.0  # when the Contact addresses are looked at again
        self._hop_ips = {}      # l_uuid -> the provider's address last known (a named one)
        # l_uuid -> every address its name resolved to when last looked at (RFC 3263: the
        # SRV targets' too): the provider's own, whose requests uac_reg_from_provider() knows
        self._source_ips = {}

    def start(self, core, previous=None):
        self.core = core
        now = core.now()
        try:
            records, warnings = read_records(self.params["reg_db_url"],
                                             self.params["reg_db_table"])
        except (OSError, ValueError, dbtext.DbTextError) as exc:
            log.error(f"uac: cannot read the registrations: {exc}")
            records, warnings = [], []
        for w in warnings:
            log.warn(f"uac: {w}")
        old = previous.regs if previous is not None else {}
        if previous is not None:
            previous.stop()
            previous.successor = self   # answers to its REGISTERs in flight come here
        moved = []
        for rec in records:
            kept = old.get(rec.l_uuid)
            if kept is not None and _same(kept.record, rec):
                self.regs[rec.l_uuid] = kept
                if self._contact_addr(rec) != kept.contact_addr:
                    moved.append(kept)      # our address changed (the WAN's, a new listen=)
                continue
            self.regs[rec.l_uuid] = Registration(
                rec, f"{os.urandom(8).hex()}@serlite", os.urandom(4).hex(),
                self._contact_addr(rec), now, self.params["reg_retry_interval"],
                self.params["reg_timer_interval"], cnonce=lambda: os.urandom(8).hex())
        if self.regs:
            log.notice(f"uac: {len(self.regs)} outbound registration(s) from "
                       f"{self.params['reg_db_url']}")
        self._next_check = now + self.params["reg_timer_interval"]
        for reg in moved:
            self._moved(reg, now)
        self._arm()

    def _moved(self, reg, now):
        addr = self._contact_addr(reg.record)
        log.notice(f"uac: {reg.record.l_uuid}: our address is now {addr} (was "
                   f"{reg.contact_addr}): registering again")
        self._do(reg, reg.address_changed(now, addr))

    def _check_addresses(self, now):
        """Every reg_timer_interval: a registration whose Contact address is no longer ours
        (the route toward the provider leaves by another address now) registers again."""
        self._next_check = now + self.params["reg_timer_interval"]
        for reg in self.regs.values():
            if self._contact_addr(reg.record) != reg.contact_addr:
                self._moved(reg, now)

    def refresh(self, uuid=None):
        """Register again now (Kamailio's RPC uac.reg_refresh): every record, or one."""
        now = self.core.now()
        regs = list(self.regs.values()) if uuid is None else [self.regs.get(uuid)]
        if None in regs:
            raise KeyError(uuid)
        for reg in regs:
            self._do(reg, reg.address_changed(now, self._contact_addr(reg.record)))
        self._arm()
        return len(regs)

    def stop(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- addresses -------------------------------------------------------------------------
    @staticmethod
    def _hop_uri(rec):
        """Where the REGISTER goes: the outbound proxy, else the registrar's domain (a name
        is located by tm as RFC 3263 says: SRV first when no port is given)."""
        target = rec.auth_proxy or f"sip:{rec.r_domain}"
        if not target.startswith(("sip:", "sips:")):
            target = "sip:" + target
        return URI.parse(target)

    def _hop_address(self, rec):
        """(proto, address or name) of the provider, for the socket facing it (mhomed): a
        name as the resolver has it cached, else as it was last (never a blocking lookup;
        a cache entry that expired must not look like a move and register again)."""
        uri = self._hop_uri(rec)
        proto, host, _ = forward.uri_target(uri)
        core = self.core
        if getattr(core, "dns", None) is None or core.address(host) is not None:
            return proto, host
        targets = core.cached_targets(*forward.uri_parts(uri))
        if targets:
            self._hop_ips[rec.l_uuid] = targets[0][1]
            self._source_ips[rec.l_uuid] = frozenset(t[1] for t in targets)
        return proto, self._hop_ips.get(rec.l_uuid, host)

    def _contact_addr(self, rec):
        if rec.contact_addr:
            return rec.contact_addr
        if self.params["reg_contact_addr"]:
            return self.params["reg_contact_addr"]
        try:
            proto, host = self._hop_address(rec)
        except ParseError:
            return "0.0.0.0"
        listener = self.core.listener_for(proto, host)
        if listener is None:
            return "0.0.0.0"
        host = listener.host
        return f"{host}:{listener.port}"

    # -- the timer and the actions ---------------------------------------------------------
    def _arm(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.successor is not None or not self.regs or self.core is None:
            return
        dues = [r.due for r in self.regs.values() if r.due is not None]
        self._timer = self.core.loop.call_at(min(dues + [self._next_check]), self._on_timer)

    def _retired(self):
        """A reload replaced this config's uac (or dropped it: no more registering)."""
        return self.core.module("uac") is not self.module

    def _on_timer(self):
        self._timer = None
        if self._retired():
            return
        now = self.core.now()
        for reg in list(self.regs.values()):
            if reg.due is not None and reg.due <= now:
                self._do(reg, reg.timer(now))
        if now >= self._next_check:
            self._check_addresses(now)
        self._arm()

    def _do(self, reg, actions):
        for kind, ruri, rest in actions:
            if kind != "send":
                continue
            tm = self.core.module("tm")
            cseq = reg.cseq
            try:
                hop = self._hop_uri(reg.record)
                forward.uri_target(hop)     # a bad port or transport: refused here
            except ParseError as exc:
                log.limited(("uac-hop", reg.record.l_uuid), log.ERR,
                            f"uac: registration {reg.record.l_uuid}: bad address: {exc}")
                reg.response(self.core.now(), 478, "Unresolvable Destination")
                continue
            tm.t_uac("REGISTER", ruri, rest, hop,
                     lambda status, msg, reg=reg, cseq=cseq: self._answer(reg, cseq, status,
                                                                          msg))

    def _answer(self, reg, cseq, status, msg):
        if self.successor is not None:
            self.successor._answer(reg, cseq, status, msg)
            return
        if self._retired() or self.regs.get(reg.record.l_uuid) is not reg:
            return          # no longer ours to register (the record changed or went)
        if cseq != reg.cseq:
            return          # the answer to a REGISTER replaced since (address change)
        now = self.core.now()
        before = reg.state
        reason = msg.reason if msg is not None else {408: "Request Timeout",
                                                     478: "Unresolvable Destination",
                                                     503: "Service Unavailable"}.get(status, "")
        actions = reg.response(now, status, reason, msg)
        self._tell(reg, before)
        self._do(reg, actions)
        self._arm()

    def _tell(self, reg, before):
        rec = reg.record
        who = f"{rec.r_username}@{rec.r_domain}"
        if reg.state == REGISTERED and before != REGISTERED and reg.cseq and \
                reg.last_status < 300:
            log.notice(f"uac: {who} registered ({rec.l_uuid}, expires in "
                       f"{int(reg.registered_until - self.core.now())} s)")
        elif reg.state == FAILED:
            again = (f"tried again in {int(reg.retry_in)} s" if reg.due is not None
                     else "not tried again (reg_retry_interval 0)")
            log.limited(("uac-failed", rec.l_uuid), log.WARN,
                        f"uac: registration of {who} ({rec.l_uuid}) failed: "
                        f"{reg.last_status} {reg.last_reason}; {again}")
        elif reg.state == "waiting" and reg.last_status >= 300:
            log.limited(("uac-retry", rec.l_uuid), log.WARN,
                        f"uac: registration of {who} ({rec.l_uuid}): {reg.last_status} "
                        f"{reg.last_reason}; tried again in {int(reg.retry_in)} s")

    # -- what the script and the control socket ask ----------------------------------------
    def address_changed(self):
        now = self.core.now()
        for reg in self.regs.values():
            self._do(reg, reg.address_changed(now, self._contact_addr(reg.record)))
        self._arm()

    def credential(self, realm):
        for reg in self.regs.values():
            rec = reg.record
            if rec.realm == realm or (not rec.realm and rec.r_domain == realm):
                if rec.auth_ha1:
                    return rec.auth_username, rec.auth_ha1, True
                return rec.auth_username, rec.auth_password, False
        return None

    def from_provider(self, ip):
        """Whether ``ip`` is an address of a registration's provider: its server or proxy
        given as an address, or one its name resolved to (the resolver's answer as last
        seen; nothing is looked up here)."""
        core = self.core
        for rec_uuid, reg in self.regs.items():
            if ip in self._source_ips.get(rec_uuid, ()) or ip == self._hop_ips.get(rec_uuid):
                return True
            uri = self._hop_uri(reg.record)
            _, host, _ = forward.uri_target(uri)
            if host.strip("[]") == ip:
                return True
            if core is not None and getattr(core, "dns", None) is not None:
                # what the resolver holds now (its cache: nothing waits, nothing is sent)
                targets = core.cached_targets(*forward.uri_parts(uri))
                if targets:
                    self._source_ips[rec_uuid] = frozenset(t[1] for t in targets)
                    if ip in self._source_ips[rec_uuid]:
                        return True
        return False

    def find(self, key):
        reg = self.regs.get(key)
        if reg is None:
            for r in self.regs.values():
                if r.record.r_username == key:
                    return r
        return reg

    def lookup(self, ctx, uuid, dst):
        reg = self.find(uuid)
        if reg is None:
            return -1
        rec = reg.record
        ctx.set_ruri(f"sip:{rec.l_username}@{rec.l_domain}")
        return 1

    def status(self, uuid):
        reg = self.regs.get(uuid)
        if reg is None:
            return -1
        if reg.state == "disabled":
            return -99
        return 1 if reg.registered else -2

    def dump(self):
        now = self.core.now()
        return [reg.row(now) for reg in self.regs.values()]
