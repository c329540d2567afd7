"""What the control socket can be asked: ps, uptime, version, stats, sl_stats, ul show/rm,
reload, ping; accounts (the auth_db accounts, registered or not: never a password or hash) and
auth_reload (read the account tables again now: what ``ser-ctl user ...`` asks after a change);
bans, ban_add, ban_del (secfilter's bans).  Each command returns plain data (dicts, lists, numbers, strings) that
``ser-ctl`` and the status page turn into tables.
"""

import os
import sys

from .. import __version__
from .unixsock import ControlError

# SER's sl_stats rows: the codes it lists, then its classes
SL_CODES = (200, 202, 300, 301, 302, 400, 401, 403, 404, 407, 408, 483, 500)


def build(server):
    """The command table for a running Server."""
    core = server.core

    def ping():
        return "pong"

    def version():
        return {"version": __version__, "python": sys.version.split()[0],
                "implementation": sys.implementation.name}

    def uptime():
        now = core.wall()
        return {"started": core.stats.started, "now": now,
                "uptime": round(now - core.stats.started, 3)}

    def ps():
        pid = os.getpid()
        rows = [{"pid": pid, "name": f"{lst.proto} receiver", "proto": lst.proto,
                 "address": lst.ip, "port": lst.port, "socket": lst.name}
                for lst in core.transport.listeners]
        if server.control is not None:
            rows.append({"pid": pid, "name": "control socket", "proto": "unix",
                         "address": server.control.path, "port": None,
                         "socket": "unix:" + server.control.path})
        return rows

    def stats():
        return snapshot(server)

    def sl_stats():
        out = {}
        sent = core.stats.replies_out
        for code in SL_CODES:
            out[str(code)] = sent.get(code, [0, 0])[0]
        for cls in range(1, 7):
            out[f"{cls}xx"] = sum(n for code, (n, _) in sent.items() if code // 100 == cls)
        return out

    def ul(action="show", aor=None):
        usrloc = core.module("usrloc")
        if usrloc is None:
            raise ControlError("usrloc is not loaded")
        now = core.wall()
        if action == "show":
            rows = []
            for table, store in usrloc.tables.items():
                names = [aor] if aor is not None else sorted(store.aors())
                for name in names:
                    rows += [binding_row(table, b, now) for b in store.lookup(name, now)]
            return rows
        if action == "rm":
            if aor is None:
                raise ControlError("ul rm needs an AOR")
            removed = 0
            for store in usrloc.tables.values():
                removed += store.delete_aor(aor, now)
            return {"removed": removed}
        raise ControlError(f"ul {action}: unknown (show, rm)")

    def reload():
        error = server.reload()
        if error:
            raise ControlError(error)
        return "reloaded"

    def calls(n=50):
        return calls_of(server, n)

    def accounts():
        return account_rows(core)

    def auth_reload():
        auth_db = core.module("auth_db")
        if auth_db is None:
            raise ControlError("auth_db is not loaded")
        return {table: {k: [_text(u) for u in users] for k, users in changes.items()}
                for table, changes in auth_db.reload_all().items()}

    commands = {"ping": ping, "version": version, "uptime": uptime, "ps": ps, "stats": stats,
                "sl_stats": sl_stats, "ul": ul, "reload": reload, "accounts": accounts,
                "auth_reload": auth_reload, "calls": calls}
    commands.update(ban_commands(core))
    commands.update(rtpproxy_commands(core))
    commands.update(uac_commands(core))
    commands.update(presence_commands(core))
    return commands


def presence_commands(core):
    """presence's ``presence``: each account's presence (open, closed, unknown: nobody
    published), whether it is on the phone (its dialog state), its watchers; the totals."""
    def presence():
        module = core.module("presence")
        if module is None:
            raise ControlError("presence is not loaded")
        users = []
        if core.module("auth_db") is not None:
            registrar = core.module("registrar")
            use_domain = registrar is not None and core.module("usrloc") is not None and \
                core.module("usrloc").params["use_domain"]
            users = [f"{r['user']}@{r['domain']}" if use_domain and r["domain"] else r["user"]
                     for r in account_rows(core)]
        return module.rows(dict.fromkeys(users))
    return {"presence": presence}


def uac_commands(core):
    """uac's outbound registrations: ``uac.reg_dump`` (Kamailio's RPC name; ``uac_reg_dump``
    too): each record's state, last answer, time left, never a password or HA1;
    ``uac.reg_refresh [L_UUID]``: register again now (e.g. from the WAN's ifup hotplug)."""
    def reg_dump():
        module = core.module("uac")
        if module is None or module.registrations is None:
            raise ControlError("no outbound registrations (uac's reg_db_url is not set)")
        return module.registrations.dump()
    def reg_refresh(uuid=None):
        module = core.module("uac")
        if module is None or module.registrations is None:
            raise ControlError("no outbound registrations (uac's reg_db_url is not set)")
        try:
            return {"refreshed": module.registrations.refresh(uuid)}
        except KeyError:
            raise ControlError(f"no registration {uuid!r}") from None
    return {"uac.reg_dump": reg_dump, "uac_reg_dump": reg_dump, "uac.reg_refresh": reg_refresh}


def rtpproxy_commands(core):
    """The built-in media relay: ``rtpproxy`` (its totals, and its sessions: each call's
    caller, callee and state when the dialog tracker follows it, legs, latched addresses,
    packets and bytes each way, a silent side)."""
    def rtpproxy():
        module = core.module("rtpproxy")
        if module is None:
            raise ControlError("rtpproxy is not loaded (no media relay)")
        if module.external is not None:     # an external relay's calls are its own
            return {"sessions": [], "free_ports": None, "external": str(module.external),
                    "external_calls": len(module.calls)}
        tm = core.module("tm")
        tracker = tm.dialogs if tm is not None else None     # made by rtpproxy's start
        active = tracker.active(core.now()) if tracker is not None else []
        totals, untracked = join_media(core, active)
        sessions = [dict(call["media"], caller=call["caller"], callee=call["callee"],
                         state=call["state"]) for call in active if call["media"]]
        return {"sessions": sessions + untracked, "totals": totals,
                "free_ports": totals["ports"] - totals["ports_used"]}
    return {"rtpproxy": rtpproxy}


def join_media(core, active, legs=True):
    """The one join of the dialog tracker's calls (``active``: DialogTracker.active rows)
    with the relay's sessions, by Call-ID: each call gets ``media``, its relay session's
    numbers (packets and bytes from each side, a side silent), None when its media go direct
    (or no relay is loaded).  Returns (the relay's totals or None, the sessions no call of
    ``active`` has: a tracker full, tm not loaded).  ``legs`` False: without each stream's
    legs (addresses, latching: ``rtpproxy``'s detail; the page needs the counts only)."""
    module = core.module("rtpproxy")
    sessions = {}
    if module is not None:
        sessions = {s["call_id"]: s for s in module.stats(core.now(), legs)}
    for call in active:
        call["media"] = sessions.get(call["call_id"])
    if module is None:
        return None, []
    joined = {call["call_id"] for call in active}
    return module.totals(), [s for cid, s in sessions.items() if cid not in joined]


def ban_commands(core):
    """secfilter's bans: ``bans`` (the table, the account alarms, the trusted networks),
    ``ban_add ADDRESS [SECONDS]``, ``ban_del ADDRESS``."""
    def secfilter():
        module = core.module("secfilter")
        if module is None:
            raise ControlError("secfilter is not loaded (no bans)")
        return module

    def bans():
        return secfilter().rows()

    def ban_add(address=None, seconds=None):
        if not address:
            raise ControlError("an address is needed")
        if seconds is not None:
            try:
                seconds = int(seconds)
            except (TypeError, ValueError):
                raise ControlError(f"seconds must be a number, not {seconds!r}") \
                    from None
        try:
            return secfilter().ban_add(str(address), seconds)
        except ValueError as exc:
            raise ControlError(str(exc)) from None

    def ban_del(address=None):
        if not address:
            raise ControlError("an address is needed")
        try:
            return secfilter().ban_del(str(address))
        except ValueError as exc:
            raise ControlError(str(exc)) from None

    return {"bans": bans, "ban_add": ban_add, "ban_del": ban_del}


def _text(octets):
    """A name kept as octets (latin-1 str, as SIP reads it) as the text it is (UTF-8)."""
    return octets.encode("latin-1", "replace").decode("utf-8", "replace")


def account_rows(core):
    """The accounts of auth_db's tables: user, domain, table, how many contacts it has
    registered now.  Never a password or a hash."""
    auth_db = core.module("auth_db")
    if auth_db is None:
        raise ControlError("auth_db is not loaded")
    registered = {}
    usrloc = core.module("usrloc")
    if usrloc is not None:
        now = core.wall()
        for store in usrloc.tables.values():
            for aor in list(store.aors()):
                n = len(store.lookup(aor, now))
                if n:
                    user = aor.partition("@")[0]
                    registered[user] = registered.get(user, 0) + n
    rows = []
    for table in list(auth_db.tables):
        accounts = auth_db.fresh(table)
        for user, records in accounts.by_user.items():
            for row in records:
                rows.append({"user": _text(user), "domain": _text(row.get("domain") or ""),
                             "table": table, "registered": registered.get(user, 0)})
    return sorted(rows, key=lambda r: (r["user"], r["domain"]))


def calls_of(server, n):
    """The active calls and the newest ``n`` of the call history (acc's ``history_file``)."""
    core = server.core
    acc = core.module("acc")
    if acc is None:
        raise ControlError("acc is not loaded (the call history is acc's history_file)")
    try:
        n = int(n)
    except (TypeError, ValueError):
        raise ControlError(f"calls N: a number, not {n!r}")
    out = acc.calls(max(0, min(n, 100000)), core.now())
    out["relay"], _ = join_media(core, out["active"], legs=False)
    return out


def binding_row(table, b, now):
    return {"table": table, "aor": b.aor, "contact": b.contact,
            "expires": max(0, int(b.expires - now)), "q": b.q / 1000 if b.q >= 0 else None,
            "received": b.received, "nat": bool(b.flags & 1), "user_agent": b.user_agent,
            "socket": b.socket, "call_id": b.call_id, "cseq": b.cseq}


def snapshot(server):
    """Every counter, as the status page and ``ser-ctl stats`` show them."""
    core = server.core
    st = core.stats
    usrloc = core.module("usrloc")
    aors = contacts = 0
    if usrloc is not None:
        for store in usrloc.tables.values():
            aors += store.aor_count()
            contacts += len(store)
    tm = core.module("tm")
    classes_in, classes_out = {}, {}
    for table, classes in ((st.replies_in, classes_in), (st.replies_out, classes_out)):
        for code, (n, size) in table.items():
            entry = classes.setdefault(f"{code // 100}xx", [0, 0])
            entry[0] += n
            entry[1] += size
    return {
        "started": st.started,
        "uptime": round(core.wall() - st.started, 3),
        "requests_in": st.requests_in, "requests_out": st.requests_out,
        "replies_in": {str(k): v for k, v in st.replies_in.items()},
        "replies_out": {str(k): v for k, v in st.replies_out.items()},
        "reply_classes_in": classes_in, "reply_classes_out": classes_out,
        "counters": st.counters,
        "transactions": len(tm.table) if tm is not None else 0,
        # requests waiting for a final answer: what tm's max_transactions bounds
        "unanswered": tm.unanswered if tm is not None else 0,
        "registered_aors": aors, "registered_contacts": contacts,
    }
