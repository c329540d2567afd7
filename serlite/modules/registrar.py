"""registrar: ``save``, ``save_noreply``, ``lookup``, ``lookup_to_dset``, ``registered`` (RFC 3261
10.3).

``save`` carries out one REGISTER against the location table and answers it (200 listing every
current binding, or the 4xx that 10.3 calls for); ``lookup`` rewrites the Request-URI to the
registered contacts of its AOR (more than one: the rest become branches, SER's
``append_branches``).
"""

from ..proxy.context import Branch
from ..sip.errors import ParseError
from ..sip.grammar import unescape
from ..sip.uri import URI
from ..store.location import FLAG_NAT, Binding
from .export import FAILURE_ROUTE, REQUEST_ROUTE, Function, Module, ModuleSpec, Param

MAX_EXPIRES = 2 ** 32 - 1     # RFC 3261 20.19: delta-seconds fit in 32 bits


def _fix_table(module, args, script):
    name = str(args[0])
    if not name or "/" in name:
        raise ValueError(f"bad table name {name!r}")
    if script is not None:
        usrloc = script.modules.get("usrloc")
        if usrloc is None:
            raise ValueError('registrar needs usrloc: loadmodule "usrloc" first')
        usrloc.table(name)
    return (name,)


def _fix_table_uri(module, args, script):
    (name,) = _fix_table(module, args[:1], script)
    try:
        uri = URI.parse(str(args[1]))
    except ParseError as exc:
        raise ValueError(f"lookup_to_dset: {args[1]!r} is not a SIP URI: {exc.reason}")
    return name, uri


class RegisterError(Exception):
    def __init__(self, status, reason, headers=()):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


class Registrar(Module):
    name = "registrar"

    def _table(self, name):
        return self.core.module("usrloc").table(name)

    def aor(self, uri):
        """The address of record of a URI: its unescaped user part, and its domain when usrloc's
        use_domain is on (RFC 3261 10.3 step 5 canonicalisation)."""
        user = unescape(uri.user or "")
        if self.core.module("usrloc").params["use_domain"]:
            return f"{user}@{uri.host}"
        return user or uri.host

    # -- save ------------------------------------------------------------------------------
    def save(self, ctx, table):
        return self._save(ctx, table, reply=True)

    def save_noreply(self, ctx, table):
        return self._save(ctx, table, reply=False)

    def _save(self, ctx, table, reply):
        msg = ctx.msg
        if msg.method != "REGISTER":
            return -1
        try:
            contacts = self._apply(ctx, self._table(table))
        except RegisterError as exc:
            if reply:
                self.core.send_reply(ctx, exc.status, exc.reason, exc.headers)
            return -1
        if reply:
            self.core.send_reply(ctx, 200, "OK", contacts)
        return 1

    def _apply(self, ctx, store):
        msg = ctx.msg
        now = int(self.core.wall())
        try:
            aor = self.aor(msg.to.uri)
            contacts = msg.contacts
            expires_hdr = msg.expires
            call_id = msg.call_id
            cseq = msg.cseq.number
        except ParseError as exc:
            raise RegisterError(exc.status, exc.reason)
        if contacts == "*":
            # 10.3 step 6: "*" only alone and with Expires: 0
            if expires_hdr != 0 or len(msg.values("Contact")) != 1:
                raise RegisterError(400, "Invalid Contact (* needs Expires: 0 and no other)")
            self._write(store, aor, now, delete=[b.contact for b in store.lookup(aor, now)])
        elif contacts:
            self._update(ctx, store, aor, contacts, expires_hdr, call_id, cseq, now)
        # 10.3 step 8: the 200 lists every current binding of the AOR
        return [("Contact", f"<{b.contact}>;expires={b.expires - now}{_q_param(b.q)}")
                for b in store.lookup(aor, now)]

    def _update(self, ctx, store, aor, contacts, expires_hdr, call_id, cseq, now):
        p = self.params
        max_expires = p["max_expires"]
        min_expires = p["min_expires"]
        # 10.3 step 6: a Contact's expires parameter, else the Expires header, else the
        # default (the last two the same for every Contact: worked out once)
        if expires_hdr is None:
            expires_default = p["default_expires"]
        else:
            expires_default = min(expires_hdr, MAX_EXPIRES)
        put, delete = [], []
        current = store.lookup(aor, now)
        new_fields = None       # (User-Agent, received, socket, flags): the same for each put
        for contact in contacts:
            expires = _expires_of(contact, expires_default)
            if expires and max_expires and expires > max_expires:
                expires = max_expires
            if expires and expires < min_expires:
                if p["min_expires_mode"]:
                    # RFC 3261 10.3 step 7: too brief -> 423 with Min-Expires
                    raise RegisterError(423, "Interval Too Brief",
                                        (("Min-Expires", str(min_expires)),))
                expires = min_expires           # SER raises it to the minimum
            uri_text = contact.uri_text
            old = _same_contact(current, contact) if current else None
            if old is not None:
                if old.call_id == call_id and old.cseq >= cseq:
                    # 10.3 step 7: same Call-ID, CSeq not higher: out of order, abort
                    raise RegisterError(400, "Out of Order CSeq")
                if expires == 0 or old.contact != uri_text:
                    delete.append(old.contact)
            if expires == 0:
                continue
            if new_fields is None:
                received = ctx.received or ""
                local = ctx.source.local
                new_fields = (ctx.msg.get("User-Agent") or "", received,
                              local.name if local is not None else "",
                              FLAG_NAT if received else 0)
            ua, received, socket_name, flags = new_fields
            put.append(Binding(aor, uri_text, now + expires, _q_of(contact), call_id, cseq,
                               ua, received, socket_name, "", flags))
        if p["max_contacts"]:
            after = {b.contact for b in current} - set(delete)
            after |= {b.contact for b in put}
            if len(after) > p["max_contacts"]:
                raise RegisterError(403, "Too Many Registered Contacts")
        self._write(store, aor, now, put=put, delete=delete)

    @staticmethod
    def _write(store, aor, now, put=(), delete=()):
        try:
            store.save(aor, now, put=put, delete=delete)
        except OSError as exc:
            raise RegisterError(500, f"Server Internal Error (location table: {exc.strerror})")

    # -- lookup ----------------------------------------------------------------------------
    def lookup(self, ctx, table):
        uri = ctx.uri
        if uri is None:
            return -1
        bindings = self._table(table).lookup(self.aor(uri), self.core.wall())
        if not bindings:
            return -1
        first = bindings[0]
        ctx.set_ruri(first.contact)
        ctx.q = first.q
        if first.received:      # behind NAT: send where its REGISTER came from
            ctx.dst_uri = first.received
        if self.params["append_branches"]:
            for b in bindings[1:]:
                ctx.branches.append(Branch(b.contact, b.q, b.received or None))
        return 1

    def lookup_to_dset(self, ctx, table, uri):
        """Kamailio's lookup_to_dset(table, uri): the contacts of ``uri``'s AOR are appended to
        the destination set, the R-URI left as it is (several extensions rung at once: a
        provider's call to the house)."""
        bindings = self._table(table).lookup(self.aor(uri), self.core.wall())
        for b in bindings:
            ctx.branches.append(Branch(b.contact, b.q, b.received or None))
        return 1 if bindings else -1

    def registered(self, ctx, table):
        uri = ctx.uri
        if uri is None:
            return -1
        return 1 if self._table(table).lookup(self.aor(uri), self.core.wall()) else -1


_UNPARSED = object()


def _same_contact(bindings, contact):
    """The binding for this Contact: compared as URIs (RFC 3261 10.3 step 7, 19.1.4), as text
    when either is not a SIP URI."""
    text = contact.uri_text
    uri = _UNPARSED         # parsed only when a binding's text differs (not for a refresh)
    for b in bindings:
        if b.contact == text:
            return b
        if uri is _UNPARSED:
            try:
                uri = contact.uri
            except ParseError:
                uri = None
        if uri is not None:
            try:
                if uri.equals(URI.parse(b.contact)):
                    return b
            except ParseError:
                pass
    return None


def _expires_of(contact, default):
    """10.3 step 6: the Contact's expires parameter, else ``default`` (the Expires header's or
    default_expires)."""
    value = contact.param("expires")
    if value is None:
        return default
    if not value.isdigit() or int(value) > MAX_EXPIRES:
        raise RegisterError(400, f"Bad Contact expires {value[:20]!r}")
    return int(value)


def _q_of(contact):
    value = contact.param("q")
    if value is None:
        return -1
    try:
        q = float(value)
    except ValueError:
        raise RegisterError(400, f"Bad Contact q {value[:20]!r}")
    if not 0 <= q <= 1:
        raise RegisterError(400, f"Bad Contact q {value[:20]!r}")
    return int(round(q * 1000))


_Q_PARAMS = {-1: ""}        # Binding.q -> its ";q=" parameter in a 200's Contact


def _q_param(q):
    text = _Q_PARAMS.get(q)
    if text is None:    # at most the 1001 values 0..1000: the store keeps q in that range
        text = _Q_PARAMS[q] = f";q={q / 1000:.3g}"
    return text


EXPORTS = ModuleSpec(
    name="registrar",
    doc="REGISTER (RFC 3261 10.3): store bindings, look them up for calls.",
    factory=Registrar,
    functions=(
        Function("save", "save", (1,), REQUEST_ROUTE | FAILURE_ROUTE, _fix_table,
                 "store the REGISTER's contacts and answer it"),
        Function("save_noreply", "save_noreply", (1,), REQUEST_ROUTE | FAILURE_ROUTE,
                 _fix_table, "store the contacts; the script answers"),
        Function("lookup", "lookup", (1,), REQUEST_ROUTE | FAILURE_ROUTE, _fix_table,
                 "rewrite the R-URI to the registered contacts; false if none"),
        Function("lookup_to_dset", "lookup_to_dset", (2,), REQUEST_ROUTE | FAILURE_ROUTE,
                 _fix_table_uri, "append the contacts of the URI's AOR to the destination "
                 "set (the R-URI stays); false if none"),
        Function("registered", "registered", (1,), REQUEST_ROUTE | FAILURE_ROUTE, _fix_table,
                 "true if the R-URI's AOR has a binding"),
    ),
    params={
        "default_expires": Param(int, 3600, "expires when the REGISTER gives none",
                                 min=0, max=MAX_EXPIRES),
        "min_expires": Param(int, 60, "shorter expires are raised to this",
                             min=0, max=MAX_EXPIRES),
        "min_expires_mode": Param(int, 0, "1: refuse shorter expires with 423 instead",
                                  min=0, max=1),
        "max_expires": Param(int, 0, "longer is shortened (0: no limit)",
                             min=0, max=MAX_EXPIRES),
        "append_branches": Param(int, 1, "lookup adds every contact, not just the first",
                                 min=0, max=1),
        "max_contacts": Param(int, 0, "contacts per AOR (0: no limit)",
                              min=0, max=1000),
    },
    depends=("usrloc", "sl"),
)
