"""SIP messages: ``parse`` (one datagram or framed message), ``frame`` (stream framing),
``Request``/``Response`` with lazy header access and recorded edits, ``make_response``.

Sans-I/O: bytes in, objects and bytes out (STYLE.md 1).  The message keeps the bytes it came
with (STYLE.md 4): header lines stay in their order and spelling, each kept as the text it came
as until it is changed, and ``to_bytes()`` sends every untouched line byte for byte (an unedited
message gives back exactly the bytes it was parsed from).  Header text is ``str`` decoded with
latin-1, so encoding back yields the same octets; bodies stay ``bytes``.

What ``parse()`` checks (a proxy must never forward what fails; RFC 3261 7, 8.1.1, 16.3, 20,
25; RFC 4475): the start line; header line syntax; the presence of Via, From, To, Call-ID and
CSeq; at most one To, From, Call-ID, CSeq, Max-Forwards and Content-Length line; Content-Length
against the body; CSeq (number < 2**31, method equal to the request's); Max-Forwards (0-255);
Call-ID (non-empty, no LWS); the first Via header line; Date (rfc1123 GMT) when present; and in
requests, From and To (name-addr syntax), every Contact (name-addr list or ``*``) and the
Request-URI when it is sip/sips/tel (full URI syntax, no headers).  Text checked on an earlier
message (a Request-Line, a single Contact value) passes without a second look and is parsed
when read.

Checked lazily, when the accessor is read (a ParseError there is answered with its status):
``Request.uri`` (416 for a scheme other than sip/sips/tel), ``vias`` (Via lines after the
first), ``expires`` (Expires header), ``NameAddr.expires``/``.q`` (Contact parameters),
``NameAddr.uri`` (From/To/Contact URI syntax), ``routes``/``record_routes``; and in responses,
``from_``, ``to`` and ``contacts``: a proxy relays a response on its Via and CSeq and passes the
rest on as it came (as SER does), so checking them up front would only cost time.
"""

from itertools import compress

from .cache import BoundedCache
from .errors import ParseError
from .grammar import (DIGITS, TOKEN_CHARS, WSP, is_scheme, is_sip_date, parse_uint,
                      split_commas)
from .headers import (CSeq, Via, is_checked_name_addr, parse_name_addr, parse_name_addr_list,
                      parse_vias)
from .uri import URI

__all__ = ["HeaderField", "Message", "Request", "Response", "parse", "frame", "is_keepalive",
           "make_response", "response_bytes", "canonical_name", "checked_line",
           "raw_header_lines"]

# RFC 3261 7.3.3 and the IANA SIP parameters registry: compact forms.
_COMPACT = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
    "e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact",
    "k": "supported", "l": "content-length", "m": "contact", "n": "identity-info",
    "o": "event", "r": "refer-to", "s": "subject", "t": "to", "u": "allow-events", "v": "via",
    "x": "session-expires", "y": "identity",
}
# lower-case spelling -> canonical key, for names known to be tokens (skips the token check)
_CANON = dict(_COMPACT)
for _k in set(_COMPACT.values()) | {
        "cseq", "max-forwards", "route", "record-route", "expires", "date", "authorization",
        "proxy-authorization", "www-authenticate", "proxy-authenticate", "user-agent",
        "server", "allow", "accept", "require", "proxy-require", "unsupported", "path",
        "service-route", "min-expires", "timestamp", "warning", "retry-after", "organization",
        "priority", "p-asserted-identity", "privacy", "accept-encoding", "accept-language",
        "content-disposition", "content-language", "mime-version", "reply-to", "in-reply-to",
        "alert-info", "call-info", "error-info", "authentication-info"}:
    _CANON[_k] = _k
del _k
# the usual spellings, looked up before lower-casing the name
_CANON_EXACT = {}
for _k, _v in _CANON.items():
    _CANON_EXACT[_k] = _v
    _CANON_EXACT[_k.upper() if len(_k) == 1 else "-".join(
        p.capitalize() for p in _k.split("-"))] = _v
_CANON_EXACT.update({"Call-ID": "call-id", "CSeq": "cseq", "MIME-Version": "mime-version",
                     "WWW-Authenticate": "www-authenticate",
                     "P-Asserted-Identity": "p-asserted-identity"})
del _k, _v

_PRETTY = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq",
           "max-forwards": "Max-Forwards", "content-length": "Content-Length"}
# RFC 3261 8.1.1: mandatory in every request (Max-Forwards is added by a proxy, 16.6 step 3)
_REQUIRED = ("via", "from", "to", "call-id", "cseq")
# RFC 3261 7.3.1, 20: single-valued header fields
_SINGLE = ("to", "from", "call-id", "cseq", "max-forwards", "content-length")
# RFC 3261 8.2.6.2: copied from the request into a response
_RESPONSE_COPY = frozenset(("via", "from", "to", "call-id", "cseq"))
_MAX_EXPIRES = 2 ** 32 - 1
# headers whose parsed values Message caches in its own slots (``_top_via`` ...)
_CACHED_KEYS = frozenset(("via", "from", "to", "cseq", "contact", "max-forwards", "call-id"))
_REQUIRED_KEYS = frozenset(_REQUIRED)
_UNREAD = -1        # Message._max_forwards before Max-Forwards was read
# parse(): the text of a header line before its colon, for the usual spellings -> key
_KEY_OF_NAME = dict(_CANON_EXACT)
# parse(): whole header lines seen before -> key (only lines of the form "usual spelling,
# colon, value"; bounded: emptied when full, as the other caches of parsed parts)
_LINE_KEYS = BoundedCache(512)
_LINE_KEYS_LONGEST = 160     # so that the cache holds at most 80 kB of lines
_SMALL_UINTS = {str(i): i for i in range(256)}    # Max-Forwards, most Content-Lengths
_CSEQS = BoundedCache(512)     # CSeq value -> CSeq, see _cseq_of
_WSP_START = frozenset(WSP)
_CRLF_START = (b"\r", b"\n")
_STATUS_CODES = {str(code): code for code in range(100, 700)}    # RFC 3261 21
_METHODS = frozenset(("INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO",
                      "UPDATE", "PRACK", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"))


def canonical_name(name):
    """The key a header name is indexed under: lower-case long form ("v" -> "via")."""
    key = _CANON_EXACT.get(name)     # the usual spellings, without lower-casing
    if key is None:
        key = name.lower()
        key = _CANON.get(key, key)
    return key


def raw_header_lines(data):
    """The start line and the header lines of the message bytes ``data`` (parsed or not,
    whole or not: up to the blank line) as (start line, [(key, line)]), each key as
    ``canonical_name`` gives it; no checks.  For what has no Message: a request parse()
    refused, answered all the same (RFC 3261 8.2), and the bytes of a request sent, an ACK
    or CANCEL is built from (17.1.1.3, 9.1)."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    return lines[0], [(canonical_name(line.split(":", 1)[0].strip()), line)
                      for line in lines[1:]]


class HeaderField:
    """One header line as ``Message.headers`` shows it: ``name`` as written, ``key`` (lower-case
    long form), ``value`` (unfolded, LWS-stripped), ``raw`` (the line as it is sent, folding
    included, without its CRLF) and ``parsed`` (the Via/NameAddr objects cached for the line, or
    None).  A view: change a message through its methods."""

    __slots__ = ("name", "key", "value", "raw", "parsed")

    def __init__(self, name, key, value, raw=None, parsed=None):
        self.name = name
        self.key = key
        self.value = value
        self.raw = raw
        self.parsed = parsed

    def line(self):
        """The line as it will be sent (without CRLF)."""
        raw = self.raw
        return raw if raw is not None else self.name + ": " + self.value

    def copy(self):
        """An independent copy keeping the raw text (parsed objects are not shared)."""
        return HeaderField(self.name, self.key, self.value, self.raw)

    def __repr__(self):
        return f"HeaderField({self.line()!r})"


def checked_line(name, value):
    """``(key, line)`` for a header line we add; ValueError for what could not be sent
    safely."""
    key = _CANON_EXACT.get(name)    # a usual spelling is a token already
    if key is None:
        name = name.strip(WSP)
        if not name or name.strip(TOKEN_CHARS):
            raise ValueError(f"bad header name {name!r}")
        key = canonical_name(name)
    if value.__class__ is not str:
        value = str(value)
    if value[:1] in _WSP_START or value[-1:] in _WSP_START:
        value = value.strip(WSP)
    if "\r" in value or "\n" in value:
        raise ValueError(f"CR or LF in header value {value!r}")
    if not value.isascii():
        value.encode("latin-1")  # UnicodeEncodeError (a ValueError) if it cannot be sent as is
    return key, name + ": " + value


def _unfold(value):
    """The value of a folded line (RFC 3261 7.3.1): its pieces joined by one SP."""
    return " ".join(p for p in (s.strip(WSP) for s in value.split("\r\n")) if p)


class Message:
    """Base of Request and Response.

    ``headers`` the header lines as HeaderFields, in order (a read-only view: edit through the
    methods below); ``body`` bytes.  Header names are accepted in any case, long or compact.

    The header section is three lists of the same length: ``_lines`` the text of each line as
    it will be sent (as it came, until it is changed; a folded line keeps its CRLFs), ``_keys``
    each line's key, ``_vals`` each line's parsed values (a Via or NameAddr list) or None until
    they are asked for.  A line costs no object of its own, sending an edited message is one
    join, and lookups scan ``_keys`` (a dozen interned strings, at C speed).  ``_watched`` holds
    the parsed lists, whose objects may be edited in place (``Via.set_param``): ``_sync``
    writes such edits back to their lines.  ``_folded``: some line is folded (its value is read
    unfolded).  ``_clen_body``: the body the Content-Length line is known to match (parse()
    checked it), so that sending needs no check until either changes.
    """

    __slots__ = ("_lines", "_keys", "_vals", "_watched", "_folded", "_clen_body", "body",
                 "_src", "_start", "_end", "_edited", "_top_via", "_vias", "_from", "_to",
                 "_cseq", "_contacts", "_max_forwards", "_call_id")

    def _init_lines(self, lines, keys, body, folded=False):
        self._lines = lines
        self._keys = keys
        self._vals = [None] * len(keys)
        self._watched = []
        self._folded = folded
        self._clen_body = None
        self.body = bytes(body)
        self._src = None
        self._start = self._end = 0
        self._edited = True
        self._forget_parsed()

    def _forget_parsed(self):
        self._top_via = self._vias = self._from = self._to = self._cseq = None
        self._contacts = self._call_id = None
        self._max_forwards = _UNREAD

    def _changed(self, key):
        """Record an edit of header ``key``: serialise from parts from now on, and drop the
        value cached from that header."""
        self._edited = True
        if key == "content-length":
            self._clen_body = None
        elif key in _CACHED_KEYS:
            if key == "via":
                self._top_via = self._vias = None
            elif key == "max-forwards":
                self._max_forwards = _UNREAD
            elif key == "from":
                self._from = None
            elif key == "to":
                self._to = None
            elif key == "cseq":
                self._cseq = None
            elif key == "contact":
                self._contacts = None
            else:
                self._call_id = None

    # -- lookup ------------------------------------------------------------------------------
    @property
    def headers(self):
        """Every header line as a HeaderField, in order (a tuple)."""
        if self._watched:
            self._sync()
        keys = self._keys
        vals = self._vals
        return tuple(HeaderField(self._name(i), keys[i], self._value(i), line, vals[i])
                     for i, line in enumerate(self._lines))

    def _pos(self, key):
        """Index of the first line of header ``key``, or -1."""
        keys = self._keys
        return keys.index(key) if key in keys else -1

    def _positions(self, key):
        """Indexes of every line of header ``key``, in order."""
        keys = self._keys
        if key not in keys:
            return ()
        i = keys.index(key)
        if keys.count(key) == 1:
            return (i,)
        return [j for j in range(i, len(keys)) if keys[j] == key]

    def _name(self, i):
        """The header name of line ``i`` as written."""
        line = self._lines[i]
        return line[:line.find(":")].rstrip(WSP)

    def _value(self, i):
        """The value of line ``i``: unfolded, LWS-stripped."""
        line = self._lines[i]
        value = line[line.find(":") + 1:].strip(WSP)
        if self._folded and "\r\n" in value:
            value = _unfold(value)
        return value

    def _parsed(self, i):
        """The parsed values of line ``i`` (a Via or NameAddr list), cached."""
        p = self._vals[i]
        if p is None:
            # _value(i), written out
            line = self._lines[i]
            value = line[line.find(":") + 1:].strip(WSP)
            if self._folded and "\r\n" in value:
                value = _unfold(value)
            k = self._keys[i]
            if k == "via":
                p = parse_vias(value)
            elif k == "from" or k == "to":
                p = [parse_name_addr(value)]
            else:
                p = parse_name_addr_list(value)
            self._vals[i] = p
            self._watched.append(p)
        return p

    def get(self, name):
        """Value of the first ``name`` header line (a whole line: it may hold several
        comma-separated values), or None."""
        key = _CANON_EXACT.get(name) or canonical_name(name)
        keys = self._keys
        return self._value(keys.index(key)) if key in keys else None

    def get_all(self, name):
        """Values of every ``name`` header line, in order."""
        return [self._value(i) for i in self._positions(canonical_name(name))]

    def values(self, name):
        """Every comma-separated value of every ``name`` line, in order, empty ones skipped
        (Via, Contact, Route, Record-Route, Allow, Supported ...)."""
        key = _CANON_EXACT.get(name) or canonical_name(name)
        if key not in self._keys:
            return []
        out = []
        for i in self._positions(key):
            for v in split_commas(self._value(i)):
                if v:
                    out.append(v)
        return out

    def has(self, name):
        return (_CANON_EXACT.get(name) or canonical_name(name)) in self._keys

    # -- parsed header fields ------------------------------------------------------------------
    @property
    def vias(self):
        """All Via values in order (Via lines after the first are parsed here)."""
        v = self._vias
        if v is None:
            v = []
            for i in self._positions("via"):
                v.extend(self._parsed(i))
            self._vias = v
        return v

    @property
    def top_via(self):
        """The first Via value, or None."""
        v = self._top_via
        if v is None:
            keys = self._keys
            if "via" not in keys:
                return None
            v = self._top_via = self._parsed(keys.index("via"))[0]
        return v

    @property
    def from_(self):
        """From as a NameAddr, or None."""
        na = self._from
        if na is None:
            keys = self._keys
            if "from" not in keys:
                return None
            na = self._from = self._parsed(keys.index("from"))[0]
        return na

    @property
    def to(self):
        """To as a NameAddr, or None."""
        na = self._to
        if na is None:
            keys = self._keys
            if "to" not in keys:
                return None
            na = self._to = self._parsed(keys.index("to"))[0]
        return na

    @property
    def call_id(self):
        c = self._call_id
        if c is None:
            keys = self._keys
            if "call-id" not in keys:
                return None
            c = self._call_id = self._value(keys.index("call-id"))
        return c

    @property
    def cseq(self):
        """CSeq (number, method), or None."""
        c = self._cseq
        if c is None:
            keys = self._keys
            if "cseq" not in keys:
                return None
            c = self._cseq = _cseq_of(self._value(keys.index("cseq")))
        return c

    @property
    def max_forwards(self):
        """Max-Forwards as int (0-255), None if absent; ParseError if malformed."""
        mf = self._max_forwards
        if mf == _UNREAD:
            i = self._pos("max-forwards")
            mf = None if i < 0 else _max_forwards(self._value(i))
            self._max_forwards = mf
        return mf

    @property
    def contacts(self):
        """Contact values as NameAddr list (empty if none), or the string ``"*"`` for
        ``Contact: *`` (RFC 3261 10.2.2)."""
        c = self._contacts
        if c is None:
            positions = self._positions("contact")
            if len(positions) == 1 and self._value(positions[0]) == "*":
                c = "*"
            else:
                c = []
                for i in positions:
                    if self._value(i) == "*":
                        raise ParseError("Contact: * mixed with other contacts")
                    c.extend(self._parsed(i))
            self._contacts = c
        return c

    def name_addrs(self, name):
        """The values of every line of a name-addr list header (Route, Record-Route, Path,
        Service-Route, P-Asserted-Identity ...) as NameAddrs, parsed on first use and cached
        (so ``set_param`` on one is serialised)."""
        key = _CANON_EXACT.get(name) or canonical_name(name)
        keys = self._keys
        if key not in keys:
            return []
        if keys.count(key) == 1:    # one line, the usual case
            return list(self._parsed(keys.index(key)))
        out = []
        for i in self._positions(key):
            out.extend(self._parsed(i))
        return out

    @property
    def routes(self):
        """Route values as NameAddr list."""
        keys = self._keys
        if "route" not in keys:     # the usual request, and every one loose_route emptied
            return []
        if keys.count("route") == 1:    # name_addrs' usual case, without its call
            i = keys.index("route")
            p = self._vals[i]
            return list(p if p is not None else self._parsed(i))
        return self.name_addrs("route")

    @property
    def record_routes(self):
        """Record-Route values as NameAddr list."""
        return self.name_addrs("record-route")

    # RFC 3261 25.1:  Expires  =  "Expires" HCOLON delta-seconds
    # RFC 3261 20.19: from 0 to 2**32-1 (RFC 4475 3.1.2.4 scalar02)
    @property
    def expires(self):
        """The Expires header as int, None if absent; ParseError(400) if malformed or larger
        than 2**32-1.  (Not checked by parse(): a registrar reads it.)"""
        keys = self._keys
        if "expires" not in keys:
            return None
        return parse_uint(self._value(keys.index("expires")), "Expires", _MAX_EXPIRES)

    @property
    def content_length(self):
        """Length of the body in bytes (what Content-Length says, or will say once sent)."""
        return len(self.body)

    # -- edits ---------------------------------------------------------------------------------
    def _insert(self, i, key, line):
        self._lines.insert(i, line)
        self._keys.insert(i, key)
        self._vals.insert(i, None)

    def _append(self, key, line):
        self._lines.append(line)
        self._keys.append(key)
        self._vals.append(None)

    def _delete(self, i):
        del self._lines[i]
        del self._keys[i]
        p = self._vals.pop(i)
        if p is not None:
            self._unwatch(p)

    def _unwatch(self, p):
        self._watched.remove(p)     # lists of distinct objects: only p itself compares equal

    def add_header(self, name, value, top=False):
        """Add a header line.  ``top=False``: after all header lines.  ``top=True``: right
        before the first existing line of the same header (either form), so it becomes the
        topmost value of that header (Via, Record-Route); at the very top of all header lines
        when there is none."""
        key, line = checked_line(name, value)
        self.add_trusted_line(key, line, top)

    def add_trusted_line(self, key, line, top=False):
        """``add_header`` for a line the caller built from parts that cannot break it: our own
        addresses and values parsed from this message (a Record-Route with the From tag), so
        that the checks of ``checked_line`` are not paid for on every request.  ``key``: the
        header's key (``canonical_name``)."""
        keys = self._keys
        if top:
            # _insert, written out: rr adds a Record-Route to every request it relays
            i = keys.index(key) if key in keys else 0
            self._lines.insert(i, line)
            keys.insert(i, key)
            self._vals.insert(i, None)
        else:
            self._append(key, line)
        if key in _CACHED_KEYS or key == "content-length":
            self._changed(key)
        else:
            self._edited = True     # all that _changed does for any other header

    def insert_header(self, index, name, value):
        """Insert a header line at position ``index`` of ``headers``."""
        key, line = checked_line(name, value)
        self._insert(index, key, line)
        self._changed(key)

    def remove_header(self, name):
        """Remove every line of header ``name`` (long and compact forms); return how many."""
        key = canonical_name(name)
        keys = self._keys
        if key not in keys:
            return 0
        keep = [i for i, k in enumerate(keys) if k != key]
        removed = len(keys) - len(keep)
        lines = self._lines
        vals = self._vals
        self._lines = [lines[i] for i in keep]
        self._keys = [keys[i] for i in keep]
        self._vals = vals = [vals[i] for i in keep]
        self._watched = [p for p in vals if p is not None]
        self._changed(key)
        return removed

    def remove_first_value(self, name):
        """Remove the first comma-separated value of header ``name`` (the top Via, the top
        Route ...) and return it as text; the line goes when it becomes empty.  None if the
        header is absent."""
        key = _CANON_EXACT.get(name) or canonical_name(name)
        keys = self._keys
        if key not in keys:
            return None
        i = keys.index(key)
        p = self._vals[i]
        watched = self._watched
        if (len(watched) == 1 and watched[0] is p and len(p) == 1 and p[0]._raw is not None
                and not self._edited):
            # the usual case, a response's own Via going before it is relayed: the only
            # parsed values are that line's, unchanged, and nothing else was edited
            first = p[0]._raw
            self._watched = []
            self._cut_line(i)
            if key == "via":
                self._top_via = self._vias = None
            else:
                self._changed(key)
                self._edited = False
            return first
        if watched and not self._edited:
            self._sync()        # a value changed in place makes the message edited
        if p is not None:
            first = str(p[0])
            rest = p[1:]
            if rest:
                self._vals[i] = rest
                watched = self._watched
                watched[watched.index(p)] = rest
                self._lines[i] = self._name(i) + ": " + ", ".join(str(o) for o in rest)
        else:
            parts = split_commas(self._value(i))
            first = parts[0]
            rest = parts[1:]
            if rest:
                self._lines[i] = self._name(i) + ": " + ", ".join(rest)
        if rest:
            self._changed(key)
        elif self._edited or key == "content-length":
            # _delete and _changed, written out: loose_route takes our Route off every
            # in-dialog request after record_route edited it
            del self._lines[i]
            del keys[i]
            p = self._vals.pop(i)
            if p is not None:
                self._watched.remove(p)     # lists of distinct objects: see _unwatch
            if key in _CACHED_KEYS or key == "content-length":
                self._changed(key)
            else:
                self._edited = True
        else:
            # the line goes from the received bytes: the message stays unedited, and sending
            # it is one slice instead of joining and encoding every line again
            self._cut_line(i)
            self._changed(key)
            self._edited = False
        return first

    def _cut_line(self, i):
        """Delete line ``i`` of an unedited message from its lines and its received bytes
        (latin-1: a character is an octet, so the text's lengths are the bytes' offsets)."""
        src = self._src
        lines = self._lines
        at = src.index(b"\r\n", self._start) + 2     # after the start line
        if i:
            at += sum(map(len, lines[:i])) + 2 * i
        src = src[self._start:at] + src[at + len(lines[i]) + 2:self._end]
        self._src = src
        self._start = 0
        self._end = len(src)
        del lines[i]
        del self._keys[i]
        p = self._vals.pop(i)
        if p is not None and self._watched:
            self._unwatch(p)

    def set_header(self, name, value):
        """Replace every line of header ``name`` by one line ``name: value`` (at the place of
        the first one, or appended)."""
        key, line = checked_line(name, value)
        keys = self._keys
        if key not in keys:
            self._append(key, line)
        else:
            i = keys.index(key)
            if keys.count(key) > 1:
                self.remove_header(key)
                self._insert(i, key, line)
            else:
                self._lines[i] = line
                p = self._vals[i]
                if p is not None:
                    self._vals[i] = None
                    self._unwatch(p)
        self._changed(key)

    def set_max_forwards(self, n):
        """``set_header("Max-Forwards", str(n))`` for an int 0-255, at a third of the cost: a
        proxy does it to every request it forwards (RFC 3261 16.6 step 3)."""
        if type(n) is not int or not 0 <= n <= 255:
            raise ValueError(f"bad Max-Forwards {n!r}")
        keys = self._keys
        line = "Max-Forwards: " + str(n)
        if "max-forwards" not in keys:
            self._append("max-forwards", line)
        elif keys.count("max-forwards") > 1:
            self.set_header("Max-Forwards", str(n))
        else:
            # the line's value is never parsed into ``_vals``: nothing to forget there
            self._lines[keys.index("max-forwards")] = line
        self._max_forwards = n
        self._edited = True

    def set_body(self, body):
        """Replace the body and rewrite the Content-Length value (a Content-Length line is
        added at serialisation if there is none)."""
        self.body = bytes(body)
        clen = str(len(self.body))
        for i in self._positions("content-length"):
            if self._value(i) != clen:
                self._lines[i] = self._name(i) + ": " + clen
        self._clen_body = None
        self._edited = True

    # -- serialisation -------------------------------------------------------------------------
    def _sync(self):
        """Write back to their lines the parsed values changed in place (Via.set_param ...)."""
        for p in self._watched:
            for o in p:
                if o._raw is None:
                    vals = self._vals
                    for i in range(len(vals)):
                        if vals[i] is p:
                            self._lines[i] = (self._name(i) + ": "
                                              + ", ".join(str(o) for o in p))
                            break
                    self._edited = True
                    break

    def _start_line(self):
        raise NotImplementedError

    def _header_text(self):
        """The header lines as they will be sent, each followed by CRLF, with a correct
        Content-Length (rewritten, or added), and the empty line."""
        lines = self._lines
        if self._clen_body is self.body:    # one Content-Length line, the body's length
            return "\r\n".join(lines) + "\r\n\r\n"
        keys = self._keys
        clen = str(len(self.body))
        if "content-length" in keys:
            i = keys.index("content-length")
            if self._value(i) != clen or keys.count("content-length") > 1:
                # the first line counts (as in parse()), with the body's length
                lines = [line for j, line in enumerate(lines)
                         if j <= i or keys[j] != "content-length"]
                lines[i] = self._name(i) + ": " + clen
        else:
            lines = lines + ["Content-Length: " + clen]
        return "\r\n".join(lines) + "\r\n\r\n"

    def to_bytes(self):
        """The message as bytes: exactly the parsed bytes if nothing was changed; otherwise the
        start line, every header line (untouched ones byte for byte), a correct Content-Length
        (rewritten or added) and the body."""
        if self._watched:
            self._sync()
        if not self._edited:
            src = self._src
            if self._start == 0 and self._end == len(src):
                return src
            return src[self._start:self._end]
        return ((self._start_line() + "\r\n" + self._header_text()).encode("latin-1")
                + self.body)

    def headers_bytes(self):
        """``to_bytes()`` without the start line: what a proxy puts after a request line of
        its own (the header lines keep their order, the body follows)."""
        if self._watched:
            self._sync()
        if not self._edited:
            src = self._src
            return src[src.index(b"\r\n", self._start) + 2:self._end]
        return self._header_text().encode("latin-1") + self.body

    def __bytes__(self):
        return self.to_bytes()

    def _copy_into(self, m):
        if self._watched:
            self._sync()
        m._lines = list(self._lines)
        m._keys = list(self._keys)
        m._vals = [None] * len(self._keys)
        m._watched = []
        m._folded = self._folded
        m._clen_body = self._clen_body
        m.body = self.body
        m._src = self._src
        m._start = self._start
        m._end = self._end
        m._edited = self._edited
        m._forget_parsed()
        return m


class Request(Message):
    """A SIP request.  ``method``, ``version`` read-only; ``ruri`` (str) and ``uri`` (URI)
    assignable: either rewrites the Request-Line."""

    __slots__ = ("method", "version", "_ruri", "_uri")

    def __init__(self, method, ruri, headers=(), body=b"", version="SIP/2.0"):
        """Build a request; ``headers`` are (name, value) pairs or HeaderFields (copied)."""
        if not method or method.strip(TOKEN_CHARS):
            raise ValueError(f"bad method {method!r}")
        self.method = method
        self.version = version
        self._set_ruri(ruri)
        self._init_lines(*_lines_from(headers), body)

    def _set_ruri(self, value):
        if isinstance(value, URI):
            self._uri = value.copy()
            value = str(value)
        else:
            value = str(value)
            self._uri = None
        if not value or " " in value or "\t" in value or "\r" in value or "\n" in value:
            raise ValueError(f"bad Request-URI {value!r}")
        value.encode("latin-1")
        self._ruri = value

    @property
    def ruri(self):
        """The Request-URI as text."""
        return self._ruri

    @ruri.setter
    def ruri(self, value):
        self._set_ruri(value)
        self._edited = True

    @property
    def uri(self):
        """The Request-URI parsed (cached); ParseError(416) for a scheme other than sip, sips
        and tel (RFC 4475 3.3.2 unkscm, 3.3.3 novelsc).  After changing the returned object,
        assign it back (``req.uri = u``)."""
        u = self._uri
        if u is None:
            u = self._uri = URI.parse(self._ruri)
        return u

    @uri.setter
    def uri(self, value):
        self._set_ruri(value)
        self._edited = True

    def _start_line(self):
        return f"{self.method} {self._ruri} {self.version}"

    def copy(self):
        """An independent copy (for forking): header lines are copied, raw text kept."""
        m = Request.__new__(Request)
        m.method = self.method
        m.version = self.version
        m._ruri = self._ruri
        m._uri = None if self._uri is None else self._uri.copy()
        return self._copy_into(m)

    def __repr__(self):
        return f"<Request {self.method} {self._ruri}>"


class Response(Message):
    """A SIP response: ``status`` (int 100-699, read-only), ``reason`` (latin-1 text as
    received: a UTF-8 reason phrase reads as mojibake and goes out unchanged), ``version``.

    ``status`` is a plain slot, not a property: tm, the response context and the script read it
    a dozen times per relayed response, and a property read is a Python call (CPython 3.11
    does not specialise it).  It is checked when the response is built (here and by parse);
    a response with another status is a new response (``make_response``), never an edit."""

    __slots__ = ("version", "status", "_reason")

    def __init__(self, status, reason, headers=(), body=b"", version="SIP/2.0"):
        """Build a response; ``headers`` are (name, value) pairs or HeaderFields (copied)."""
        self.version = version
        self.status = _checked_status(status)
        self.reason = reason
        self._init_lines(*_lines_from(headers), body)

    @property
    def reason(self):
        return self._reason

    @reason.setter
    def reason(self, value):
        if "\r" in value or "\n" in value:
            raise ValueError(f"CR or LF in reason phrase {value!r}")
        value.encode("latin-1")
        self._reason = value
        self._edited = True

    def _start_line(self):
        return f"{self.version} {self.status} {self._reason}"

    def copy(self):
        m = Response.__new__(Response)
        m.version = self.version
        m.status = self.status
        m._reason = self._reason
        return self._copy_into(m)

    def __repr__(self):
        return f"<Response {self.status} {self._reason}>"


def _checked_status(value):
    """RFC 3261 7.2: Status-Code is three digits; 21.: classes 1xx-6xx."""
    if type(value) is not int or not 100 <= value <= 699:
        raise ValueError(f"bad status code {value!r}")
    return value


def _lines_from(headers):
    """``(lines, keys)`` of header lines given as (name, value) pairs or HeaderFields."""
    lines = []
    keys = []
    for h in headers:
        if isinstance(h, HeaderField):
            keys.append(h.key)
            lines.append(h.line())
        else:
            key, line = checked_line(*h)
            keys.append(key)
            lines.append(line)
    return lines, keys


# -- parsing -----------------------------------------------------------------------------------
# RFC 3261 25.1
#   SIP-message    =  Request / Response
#   Request        =  Request-Line *( message-header ) CRLF [ message-body ]
#   Response       =  Status-Line *( message-header ) CRLF [ message-body ]
#   message-header =  ( ... / extension-header ) CRLF
#   extension-header  =  header-name HCOLON header-value
#   header-name    =  token
#   header-value   =  *(TEXT-UTF8char / UTF8-CONT / LWS)
#   HCOLON         =  *( SP / HTAB ) ":" SWS
def parse(data):
    """Parse exactly one SIP message from ``data`` (a datagram, or a message cut by
    ``frame``); raise ParseError (with the status to answer) if it must not be processed.

    Leading CRLFs are skipped (RFC 3261 7.5).  Without Content-Length the body runs to the end
    of ``data`` (RFC 3261 18.3, datagrams); with it, octets after the body are ignored (RFC 4475
    3.1.1.8 dblreq) and a shorter body is an error (3.1.2.2 clerr).  A missing empty line after
    the last header line is tolerated when ``data`` ends with CRLF.

    The steps: the header section cut into lines (``_header_lines``), the header index (a key
    per line), the start line, the counts of the headers, the body, then the checks a proxy
    needs (``_read_proxy_fields``: CSeq, Max-Forwards, Call-ID) and the fields it routes by,
    parsed now (``_read_routing_fields``: the top Via; From, To, Contact of a request)."""
    if type(data) is not bytes:
        data = bytes(data)
    start, body_start, first, lines = _header_lines(data)

    # RFC 3261 7.3.1: header lines.  A line seen before (the same text: a dialog's From, To
    # and Call-ID, CSeq, Content-Length, a phone's Contact, a request's Via again in its
    # responses) has its key remembered, so the usual message costs one lookup per line
    # at C speed; the other lines are indexed by ``_new_line_keys``.
    keys = list(map(_LINE_KEYS.get, lines))
    folded = False
    if None in keys and _new_line_keys(lines, keys) is None:
        lines, keys, folded = _index_lines(lines)

    if first[:4] == "SIP/" or (first[:1] in "sS" and first[:4].upper() == "SIP/"):
        msg = _parse_status_line(first)
        method = None
    else:
        msg = _parse_request_line(first)
        method = msg.method

    present = set(keys)
    if not _REQUIRED_KEYS <= present:
        _raise_missing(present)
    repeated = len(keys) - len(present)     # lines whose header came on an earlier line
    if repeated and repeated != keys.count("via") - 1:  # not only Vias (a response's)
        _check_single(keys, present)

    msg._lines = lines
    msg._keys = keys
    msg._folded = folded
    _read_body(msg, lines, folded, data, start, body_start, "content-length" in present)
    _read_proxy_fields(msg, keys, lines, folded, method, "max-forwards" in present)
    _read_routing_fields(msg, keys, lines, folded, method, present)
    if "date" in present and not is_sip_date(msg._value(keys.index("date"))):
        raise ParseError("malformed Date (RFC 1123 date in GMT required)")
    return msg


def _header_lines(data):
    """parse()'s first step: ``(start, body_start, start line, header lines)``, the header
    section from ``start`` (after leading CRLFs) cut at its CRLFs, decoded; the body from
    ``body_start``."""
    n = len(data)
    start = 0
    if data[:1] in _CRLF_START:
        start = n - len(data.lstrip(b"\r\n"))
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        hdr_end = end
        body_start = end + 4
    elif n - start > 2 and data.endswith(b"\r\n"):
        hdr_end = n - 2
        body_start = n
    else:
        raise ParseError("empty message" if start == n else "no end of the header section")
    lines = data[start:hdr_end].decode("latin-1").split("\r\n")
    # a CR or LF left in a line is a bare one (RFC 3261 7: lines end with CRLF); joined, the
    # lines are searched at memchr speed (counting CRs and LFs costs three times as much)
    joined = "".join(lines)
    if "\r" in joined or "\n" in joined:
        raise ParseError("bare CR or LF in the header section")
    first = lines[0]
    del lines[0]
    return start, body_start, first, lines


def _raise_missing(present):
    """RFC 3261 8.1.1: the first mandatory header not in ``present``, as a ParseError."""
    for key in _REQUIRED:
        if key not in present:
            raise ParseError("Missing header " + _PRETTY[key])


def _check_single(keys, present):
    """RFC 3261 7.3.1, 20: a single-valued header on more than one line is an error."""
    for key in _SINGLE:
        if key in present and keys.count(key) > 1:
            raise ParseError(f"Multiple {_PRETTY[key]} header fields")


def _read_body(msg, lines, folded, data, start, body_start, has_length):
    """RFC 3261 20.14, 18.3: the body, at least Content-Length octets when there is one (the
    rest of ``data`` when not), and where the message ends in ``data``."""
    if has_length:
        i = msg._keys.index("content-length")
        value = lines[i].partition(":")[2].strip(WSP)
        if folded:
            value = msg._value(i)
        body_end = _SMALL_UINTS.get(value)
        if body_end is None:
            body_end = parse_uint(value, "Content-Length", 2 ** 31 - 1)
        body_end += body_start
        if body_end > len(data):
            raise ParseError("body shorter than Content-Length")
    else:
        body_end = len(data)
    msg.body = body = data[body_start:body_end]
    msg._clen_body = body if has_length else None   # see _header_text
    msg._src = data
    msg._start = start
    msg._end = body_end
    msg._edited = False
    msg._vias = None


def _read_proxy_fields(msg, keys, lines, folded, method, has_max_forwards):
    """The checks a proxy needs of every message, their values cached on ``msg``: CSeq (its
    method the request's), Max-Forwards 0-255, Call-ID."""
    # RFC 3261 8.1.1.5, 20.16: CSeq; its method equals the request's (4475 mismatch01/02)
    i = keys.index("cseq")
    value = lines[i].partition(":")[2].strip(WSP)
    if folded:
        value = msg._value(i)
    cseq = _CSEQS.get(value)
    if cseq is None:
        cseq = _cseq_of(value)
    msg._cseq = cseq
    if method is not None and cseq.method != method:
        raise ParseError("CSeq method does not match the request method")
    # RFC 3261 20.22: Max-Forwards 0-255 (4475 scalar02)
    if has_max_forwards:
        i = keys.index("max-forwards")
        value = lines[i].partition(":")[2].strip(WSP)
        if folded:
            value = msg._value(i)
        mf = _SMALL_UINTS.get(value)
        msg._max_forwards = mf if mf is not None else parse_uint(value, "Max-Forwards", 255)
    else:
        msg._max_forwards = None
    # RFC 3261 25.1: callid = word [ "@" word ]  (checked: non-empty, no LWS)
    i = keys.index("call-id")
    value = lines[i].partition(":")[2].strip(WSP)
    if folded:
        value = msg._value(i)
    if not value or " " in value or "\t" in value:
        raise ParseError("malformed Call-ID")
    msg._call_id = value


def _read_routing_fields(msg, keys, lines, folded, method, present):
    """The top Via line, and in requests From, To and every Contact, parsed now and cached on
    ``msg`` (responses: when read, see the module docstring)."""
    vals = msg._vals = [None] * len(keys)
    i = keys.index("via")
    value = lines[i].partition(":")[2].strip(WSP)
    if folded:
        value = msg._value(i)
    # one via-parm, the usual case: parse_vias without its own call
    p = vals[i] = [Via.parse(value)] if value and "," not in value else parse_vias(value)
    msg._top_via = p[0]
    watched = msg._watched = [p]
    if method is None:
        msg._from = msg._to = msg._contacts = None
        return
    i = keys.index("from")
    value = lines[i].partition(":")[2].strip(WSP)
    if folded:
        value = msg._value(i)
    p = vals[i] = [parse_name_addr(value)]
    msg._from = p[0]
    watched.append(p)
    i = keys.index("to")
    value = lines[i].partition(":")[2].strip(WSP)
    if folded:
        value = msg._value(i)
    p = vals[i] = [parse_name_addr(value)]
    msg._to = p[0]
    watched.append(p)
    if "contact" not in present:
        msg._contacts = []
    elif keys.count("contact") == 1:
        i = keys.index("contact")
        value = lines[i].partition(":")[2].strip(WSP)
        if folded:
            value = msg._value(i)
        if value == "*":
            msg._contacts = "*"
        elif "," not in value and is_checked_name_addr(value):
            # a phone's Contact, checked on an earlier message: parsed when read (a proxy
            # reads the Contact of a REGISTER, not of an INVITE)
            msg._contacts = None
        else:
            p = vals[i] = parse_name_addr_list(value)
            watched.append(p)
            msg._contacts = list(p)
    else:
        contacts = []
        for i in range(keys.index("contact"), len(keys)):
            if keys[i] == "contact":
                value = lines[i].partition(":")[2].strip(WSP)
                if folded:
                    value = msg._value(i)
                if value == "*":
                    raise ParseError("Contact: * mixed with other contacts")
                p = vals[i] = parse_name_addr_list(value)
                watched.append(p)
                contacts.extend(p)
        msg._contacts = contacts


def _new_line_keys(lines, keys):
    """Fill in ``keys`` (parse()'s, None for a line not seen before) and remember the new
    lines; None when some line is not a usual spelling of a known name and its colon (a
    continuation line starting with SP/HTAB, LWS before the colon, another spelling, an
    extension header, a malformed line): ``_index_lines`` then indexes them the long way."""
    i = -1
    new = keys.count(None)
    _LINE_KEYS.make_room(new)
    for _ in range(new):
        i = keys.index(None, i + 1)
        line = lines[i]
        name, colon, _value = line.partition(":")
        key = _KEY_OF_NAME.get(name)
        if key is None or not colon:
            return None
        keys[i] = key
        if len(line) <= _LINE_KEYS_LONGEST:
            _LINE_KEYS[line] = key
    return keys


def _index_lines(lines):
    """parse()'s header lines the long way: ``(lines, keys, folded)``, a folded line joined to
    the line it continues (its CRLFs kept), ``folded`` whether some line was."""
    out = []
    keys = []
    folded = False
    for line in lines:
        c = line[:1]
        if c == " " or c == "\t":
            if not out:
                raise ParseError("continuation line after the start line")
            out[-1] = out[-1] + "\r\n" + line
            folded = True
            continue
        name, colon, value = line.partition(":")
        key = _CANON_EXACT.get(name)
        if key is None or not colon:
            if not colon or not name:
                raise ParseError(f"malformed header line {line[:40]!r}")
            if name[-1] in WSP:
                name = name.rstrip(WSP)
            lname = name.lower()
            key = _CANON.get(lname)
            if key is None:
                if not name or name.strip(TOKEN_CHARS):
                    raise ParseError(f"bad header name {name[:40]!r}")
                key = lname
        out.append(line)
        keys.append(key)
    return out, keys, folded


def _cseq_of(value):
    """CSeq.parse, remembered: CSeq objects are read-only and the same few values come back
    (``1 INVITE``, ``2 BYE``) on every dialog."""
    c = _CSEQS.get(value)
    if c is None:
        c = _CSEQS.put(value, CSeq.parse(value))
    return c


def _max_forwards(value):
    n = _SMALL_UINTS.get(value)
    return n if n is not None else parse_uint(value, "Max-Forwards", 255)


# RFC 3261 25.1
#   Request-Line  =  Method SP Request-URI SP SIP-Version CRLF
#   Request-URI   =  SIP-URI / SIPS-URI / absoluteURI
#   SIP-Version   =  "SIP" "/" 1*DIGIT "." 1*DIGIT
#   Method        =  INVITEm / ACKm / OPTIONSm / BYEm / CANCELm / REGISTERm / extension-method
#   extension-method  =  token
# RFC 3261 7.1: exactly one SP between elements (4475 lwsstart, trws, lwsruri, ltgtruri);
# 19.1.1: no headers component in a Request-URI (4475 escruri).
def _parse_request_line(line):
    known = _REQUEST_LINES.get(line)
    if known is not None:       # checked before: the Request-URI is parsed when read
        req = Request.__new__(Request)
        req.method, req._ruri, req.version = known
        req._uri = None
        return req
    parts = line.split(" ")
    if len(parts) != 3:
        raise ParseError("malformed Request-Line")
    method, ruri, version = parts
    if method not in _METHODS and (not method or method.strip(TOKEN_CHARS)):
        raise ParseError(f"bad method {method[:40]!r}")
    if version != "SIP/2.0":
        _check_version(version)
    if ruri[:4] == "sip:":
        scheme = "sip"
    else:
        colon = ruri.find(":")
        scheme = ruri[:colon].lower() if colon > 0 else ""
    uri = None
    if scheme == "sip" or scheme == "sips" or scheme == "tel":
        uri = URI.parse(ruri)
        if uri.headers is not None:
            raise ParseError("headers in the Request-URI")
    elif (not is_scheme(ruri[:colon]) or colon == len(ruri) - 1 or "\t" in ruri
          or "<" in ruri or ">" in ruri or '"' in ruri):
        raise ParseError(f"malformed Request-URI {ruri[:60]!r}")
    req = Request.__new__(Request)
    req.method = method
    req.version = version
    req._ruri = ruri
    req._uri = uri
    if len(line) <= 160:
        _REQUEST_LINES.put(line, (method, ruri, version))
    return req


# a Request-Line checked before -> (method, Request-URI, version): a dialog's requests, a
# phone's REGISTERs come with the same one
_REQUEST_LINES = BoundedCache(256)


# RFC 3261 25.1
#   Status-Line    =  SIP-Version SP Status-Code SP Reason-Phrase CRLF
#   Status-Code    =  ... / extension-code
#   extension-code =  3DIGIT
#   Reason-Phrase  =  *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB)
# RFC 3261 21: codes 100-699 (4475 bigcode)
def _parse_status_line(line):
    known = _STATUS_LINES.get(line)
    if known is not None:       # "SIP/2.0 180 Ringing", "SIP/2.0 200 OK": checked before
        resp = Response.__new__(Response)
        resp.version, resp.status, resp._reason = known
        return resp
    sp = line.find(" ")
    if sp < 0:
        raise ParseError("malformed Status-Line")
    version = line[:sp]
    if version != "SIP/2.0":
        _check_version(version)
    status = _STATUS_CODES.get(line[sp + 1:sp + 4])
    tail = line[sp + 4:]
    if status is None or (tail and tail[0] != " "):
        raise ParseError("bad status code")
    resp = Response.__new__(Response)
    resp.version = version
    resp.status = status
    resp._reason = tail[1:]
    if len(line) <= 64:
        _STATUS_LINES.put(line, (version, status, resp._reason))
    return resp


# a Status-Line checked before -> (version, status, reason)
_STATUS_LINES = BoundedCache(256)


def _check_version(version):
    # RFC 3261 7.1: SIP-Version is case-insensitive; only 2.0 is spoken (21.5.7 505)
    if version == "SIP/2.0":
        return
    v = version.upper()
    if v == "SIP/2.0":
        return
    major, dot, minor = version[4:].partition(".")
    if (v[:4] == "SIP/" and dot and major and minor and not major.strip(DIGITS)
            and not minor.strip(DIGITS)):
        raise ParseError(f"SIP version {version[:20]} not supported", 505)
    raise ParseError("malformed SIP version")


# -- stream framing ----------------------------------------------------------------------------
def frame(buffer, max_size):
    """Framing for stream transports (RFC 3261 18.3).  Returns the length of the first frame in
    ``buffer`` (bytes or bytearray), or None if it is not complete yet.  A frame is either:

    * a keep-alive: the run of CR/LF octets at the start of ``buffer``.  Returned as soon as
      something else follows it or it is 4 octets or longer; a shorter run at the end of
      ``buffer`` gives None (it may be the first half of a ping).  The caller drops it; if it
      contains ``b"\\r\\n\\r\\n"`` it is an RFC 5626 ping, answered with one ``b"\\r\\n"`` (pong).
      ``is_keepalive(frame)`` tells the two kinds of frame apart.
    * a message: header section, empty line and Content-Length octets of body; pass
      ``buffer[:n]`` to ``parse``.

    ParseError(513) when the message is or will be longer than ``max_size``; ParseError(400)
    when Content-Length is missing, repeated or malformed (the connection should be closed:
    framing is lost)."""
    n = len(buffer)
    if n == 0:
        return None
    if buffer[0] == 13 or buffer[0] == 10:
        run = n - len(buffer.lstrip(b"\r\n"))
        if run == n and run < 4:
            return None
        return run
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if n > max_size:
            raise ParseError("message too large", 513)
        return None
    total = end + 4 + _stream_content_length(buffer[:end])
    if total > max_size:
        raise ParseError("message too large", 513)
    return total if n >= total else None


def is_keepalive(frame_bytes):
    """True if a frame returned by ``frame`` is a CRLF keep-alive rather than a message."""
    return frame_bytes[:1] in (b"\r", b"\n")


def _stream_content_length(head):
    """Content-Length of a header section (bytes, without the final CRLFCRLF)."""
    value = None
    key = None
    for line in head.decode("latin-1").split("\r\n")[1:]:
        c = line[:1]
        if c == " " or c == "\t":
            if key == "content-length":
                value = value + " " + line.strip(WSP)
            continue
        colon = line.find(":")
        key = line[:colon].rstrip(WSP).lower() if colon > 0 else None
        if key == "content-length" or key == "l":
            key = "content-length"
            if value is not None:
                raise ParseError("Multiple Content-Length header fields")
            value = line[colon + 1:]
    if value is None:
        raise ParseError("Missing header Content-Length (required on stream transports)")
    return parse_uint(value.strip(WSP), "Content-Length", 2 ** 31 - 1)


# -- responses ---------------------------------------------------------------------------------
def _response_lines(request, to_tag):
    """The lines a response copies from ``request`` (RFC 3261 8.2.6.2)."""
    if request._watched:
        request._sync()
    keys = request._keys
    lines = list(compress(request._lines, map(_RESPONSE_COPY.__contains__, keys)))
    if to_tag is not None and "to" in keys and request.to.tag is None:
        line = request._lines[keys.index("to")]
        # as ``_name(i) + ": " + _value(i)``, written out: one partition instead of two finds
        name, _colon, value = line.partition(":")
        value = value.strip(WSP)
        if request._folded and "\r\n" in value:
            value = _unfold(value)
        lines[lines.index(line)] = name.rstrip(WSP) + ": " + value + ";tag=" + to_tag
    return lines


def response_bytes(request, status, reason, to_tag=None, headers=(), body=b"", lines=()):
    """The bytes of a response to ``request`` (RFC 3261 8.2.6.2), the one reply builder:
    every Via line (in order), From, To (adding ``;tag=to_tag`` when given and the To has no
    tag yet), Call-ID and CSeq copied as they are (Via edits such as ``received``
    included); then ``headers`` ((name, value) pairs; a Content-Length among them gets the
    body's length), then ``lines`` (header lines checked already by ``checked_line``, no
    Content-Length among them); Content-Length from ``body``.  What a server sends when it
    answers a request itself (100 Trying, sl replies): no Response object is built."""
    if type(status) is not int or not 100 <= status <= 699:
        raise ValueError(f"bad status code {status!r}")
    if "\r" in reason or "\n" in reason:
        raise ValueError(f"CR or LF in reason phrase {reason!r}")
    copied = _response_lines(request, to_tag)
    clen = str(len(body))
    seen_cl = False
    for name, value in headers:
        key, line = checked_line(name, value)
        if key == "content-length":     # as to_bytes: the first one, with the right value
            if seen_cl:
                continue
            seen_cl = True
            line = line[:line.find(":")] + ": " + clen
        copied.append(line)
    if lines:
        copied.extend(lines)
    if not seen_cl:
        copied.append("Content-Length: " + clen)
    return (f"SIP/2.0 {status} {reason}\r\n" + "\r\n".join(copied) + "\r\n\r\n").encode(
        "latin-1") + body


def make_response(request, status, reason, to_tag=None, headers=(), body=b""):
    """A response to ``request`` as a ``Response``: ``response_bytes``'s bytes, parsed
    (for a caller that edits the response before it is sent)."""
    return parse(response_bytes(request, status, reason, to_tag, headers, body))
