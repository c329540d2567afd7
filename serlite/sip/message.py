"""SIP messages: ``parse`` (one datagram or framed message), ``frame`` (stream framing),
``Request``/``Response`` with lazy header access and recorded edits, ``make_response``.

Sans-I/O: bytes in, objects and bytes out (STYLE.md 1).  The message keeps the bytes it came
with (STYLE.md 4): header lines stay in their order and spelling, each ``HeaderField`` keeps its
raw text, and ``to_bytes()`` sends every untouched line byte for byte (an unedited message gives
back exactly the bytes it was parsed from).  Header text is ``str`` decoded with latin-1, so
encoding back yields the same octets; bodies stay ``bytes``.

What ``parse()`` checks (a proxy must never forward what fails; RFC 3261 7, 8.1.1, 16.3, 20,
25; RFC 4475): the start line; header line syntax; the presence of Via, From, To, Call-ID and
CSeq; at most one To, From, Call-ID, CSeq, Max-Forwards and Content-Length line; Content-Length
against the body; CSeq (number < 2**31, method equal to the request's); Max-Forwards (0-255);
Call-ID (non-empty, no LWS); the first Via header line; Date (rfc1123 GMT) when present; and in
requests, From and To (name-addr syntax), every Contact (name-addr list or ``*``) and the
Request-URI when it is sip/sips/tel (full URI syntax, no headers).

Checked lazily, when the accessor is read (a ParseError there is answered with its status):
``Request.uri`` (416 for a scheme other than sip/sips/tel), ``vias`` (Via lines after the
first), ``expires`` (Expires header), ``NameAddr.expires``/``.q`` (Contact parameters),
``NameAddr.uri`` (From/To/Contact URI syntax), ``routes``/``record_routes``; and in responses,
``from_``, ``to`` and ``contacts``: a proxy relays a response on its Via and CSeq and passes the
rest on as it came (as SER does), so checking them up front would only cost time.
"""

from .errors import ParseError
from .grammar import (DIGITS, TOKEN_CHARS, WSP, is_scheme, is_sip_date, parse_uint,
                      split_commas)
from .headers import CSeq, parse_name_addr, parse_name_addr_list, parse_vias
from .uri import URI

__all__ = ["HeaderField", "Message", "Request", "Response", "parse", "frame", "is_keepalive",
           "make_response", "response_bytes", "canonical_name"]

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
_CACHED_KEYS = frozenset(("via", "from", "to", "cseq", "contact", "max-forwards"))
_REQUIRED_KEYS = frozenset(_REQUIRED)
_UNREAD = -1        # Message._max_forwards before Max-Forwards was read


def canonical_name(name):
    """The key a header name is indexed under: lower-case long form ("v" -> "via")."""
    key = _CANON_EXACT.get(name)     # the usual spellings, without lower-casing
    if key is None:
        key = name.lower()
        key = _CANON.get(key, key)
    return key


class HeaderField:
    """One header line: ``name`` as written, ``key`` (lower-case long form), ``value`` (unfolded,
    LWS-stripped), ``raw`` (the line as received, folding included, without its CRLF; None once
    the line is new or changed) and ``parsed`` (cached Via/NameAddr objects or None)."""

    __slots__ = ("name", "key", "value", "raw", "parsed")

    def __init__(self, name, key, value, raw=None):
        self.name = name
        self.key = key
        self.value = value
        self.raw = raw
        self.parsed = None

    def line(self):
        """The line as it will be sent (without CRLF)."""
        raw = self.raw
        return raw if raw is not None else self.name + ": " + self.value

    def copy(self):
        """An independent copy keeping the raw text (parsed objects are not shared)."""
        return HeaderField(self.name, self.key, self.value, self.raw)

    def __repr__(self):
        return f"HeaderField({self.line()!r})"


def _new_field(name, value):
    """A HeaderField for a header we add; ValueError for what could not be sent safely."""
    name = name.strip(WSP)
    if not name or name.strip(TOKEN_CHARS):
        raise ValueError(f"bad header name {name!r}")
    value = str(value).strip(WSP)
    if "\r" in value or "\n" in value:
        raise ValueError(f"CR or LF in header value {value!r}")
    value.encode("latin-1")  # UnicodeEncodeError (a ValueError) if it cannot be sent as is
    return HeaderField(name, canonical_name(name), value)


def _parsed(f):
    """The parsed values of HeaderField ``f`` (Via list or NameAddr list), cached on it."""
    p = f.parsed
    if p is None:
        k = f.key
        if k == "via":
            p = parse_vias(f.value)
        elif k == "from" or k == "to":
            p = [parse_name_addr(f.value)]
        else:
            p = parse_name_addr_list(f.value)
        f.parsed = p
    return p


class Message:
    """Base of Request and Response.

    ``headers`` the ordered HeaderField list (edit it through the methods below so the index
    and caches follow); ``body`` bytes.  Header names are accepted in any case, long or compact.

    The index is two dicts: ``_index`` maps each header key to its first line, ``_multi`` (None
    when no header has several lines, the usual case) maps the keys that have several lines to
    all of them.  A message thus costs no list per header; None means "rebuild on next use".
    """

    __slots__ = ("headers", "body", "_src", "_start", "_end", "_edited", "_index", "_multi",
                 "_top_via", "_vias", "_from", "_to", "_cseq", "_contacts", "_max_forwards")

    def _init_fields(self, fields, body):
        self.headers = fields
        self.body = bytes(body)
        self._src = None
        self._start = self._end = 0
        self._edited = True
        self._clear()

    def _clear(self):
        self._index = self._multi = None
        self._forget_parsed()

    def _forget_parsed(self):
        self._top_via = self._vias = self._from = self._to = self._cseq = None
        self._contacts = None
        self._max_forwards = _UNREAD

    def _changed(self, key):
        """Record an edit of header ``key`` (the index is up to date): serialise from parts
        from now on, and drop the values cached from that header."""
        self._edited = True
        if key in _CACHED_KEYS:
            self._forget_parsed()

    # -- lookup ------------------------------------------------------------------------------
    def _build_index(self):
        idx = {}
        multi = None
        for f in self.headers:
            first = idx.setdefault(f.key, f)
            if first is not f:
                if multi is None:
                    multi = {}
                lst = multi.get(f.key)
                if lst is None:
                    multi[f.key] = [first, f]
                else:
                    lst.append(f)
        self._index = idx
        self._multi = multi
        return idx

    def _fields(self, key):
        """Every line of header ``key``, in order (a sequence: do not change it)."""
        idx = self._index
        if idx is None:
            idx = self._build_index()
        multi = self._multi
        if multi is not None:
            lst = multi.get(key)
            if lst is not None:
                return lst
        f = idx.get(key)
        return () if f is None else (f,)

    def _first(self, key):
        idx = self._index
        if idx is None:
            idx = self._build_index()
        return idx.get(key)

    def get(self, name):
        """Value of the first ``name`` header line (a whole line: it may hold several
        comma-separated values), or None."""
        lst = self._fields(canonical_name(name))
        return lst[0].value if lst else None

    def get_all(self, name):
        """Values of every ``name`` header line, in order."""
        return [f.value for f in self._fields(canonical_name(name))]

    def values(self, name):
        """Every comma-separated value of every ``name`` line, in order, empty ones skipped
        (Via, Contact, Route, Record-Route, Allow, Supported ...)."""
        out = []
        for f in self._fields(canonical_name(name)):
            for v in split_commas(f.value):
                if v:
                    out.append(v)
        return out

    def has(self, name):
        return bool(self._fields(canonical_name(name)))

    # -- parsed header fields ------------------------------------------------------------------
    @property
    def vias(self):
        """All Via values in order (Via lines after the first are parsed here)."""
        v = self._vias
        if v is None:
            v = []
            for f in self._fields("via"):
                v.extend(_parsed(f))
            self._vias = v
        return v

    @property
    def top_via(self):
        """The first Via value, or None."""
        v = self._top_via
        if v is None:
            f = self._first("via")
            if f is None:
                return None
            v = self._top_via = _parsed(f)[0]
        return v

    @property
    def from_(self):
        """From as a NameAddr, or None."""
        na = self._from
        if na is None:
            f = self._first("from")
            if f is None:
                return None
            na = self._from = _parsed(f)[0]
        return na

    @property
    def to(self):
        """To as a NameAddr, or None."""
        na = self._to
        if na is None:
            f = self._first("to")
            if f is None:
                return None
            na = self._to = _parsed(f)[0]
        return na

    @property
    def call_id(self):
        f = self._first("call-id")
        return None if f is None else f.value

    @property
    def cseq(self):
        """CSeq (number, method), or None."""
        c = self._cseq
        if c is None:
            f = self._first("cseq")
            if f is None:
                return None
            c = self._cseq = CSeq.parse(f.value)
        return c

    @property
    def max_forwards(self):
        """Max-Forwards as int (0-255), None if absent; ParseError if malformed."""
        mf = self._max_forwards
        if mf == _UNREAD:
            f = self._first("max-forwards")
            mf = None if f is None else parse_uint(f.value, "Max-Forwards", 255)
            self._max_forwards = mf
        return mf

    @property
    def contacts(self):
        """Contact values as NameAddr list (empty if none), or the string ``"*"`` for
        ``Contact: *`` (RFC 3261 10.2.2)."""
        c = self._contacts
        if c is None:
            fields = self._fields("contact")
            if len(fields) == 1 and fields[0].value == "*":
                c = "*"
            else:
                c = []
                for f in fields:
                    if f.value == "*":
                        raise ParseError("Contact: * mixed with other contacts")
                    c.extend(_parsed(f))
            self._contacts = c
        return c

    def name_addrs(self, name):
        """The values of every line of a name-addr list header (Route, Record-Route, Path,
        Service-Route, P-Asserted-Identity ...) as NameAddrs, parsed on first use and cached
        on their lines (so ``set_param`` on one is serialised)."""
        out = []
        for f in self._fields(canonical_name(name)):
            out.extend(_parsed(f))
        return out

    @property
    def routes(self):
        """Route values as NameAddr list."""
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
        f = self._first("expires")
        return None if f is None else parse_uint(f.value, "Expires", _MAX_EXPIRES)

    @property
    def content_length(self):
        """Length of the body in bytes (what Content-Length says, or will say once sent)."""
        return len(self.body)

    # -- edits ---------------------------------------------------------------------------------
    def _position(self, field):
        try:
            return self.headers.index(field)    # HeaderFields compare by identity
        except ValueError:
            raise ValueError("header field not in this message") from None

    def add_header(self, name, value, top=False):
        """Add a header line.  ``top=False``: after all header lines.  ``top=True``: right
        before the first existing line of the same header (either form), so it becomes the
        topmost value of that header (Via, Record-Route); at the very top of all header lines
        when there is none."""
        f = _new_field(name, value)
        key = f.key
        first = self._first(key)
        if first is None:
            self._index[key] = f
            if top:
                self.headers.insert(0, f)
            else:
                self.headers.append(f)
        else:
            lines = list(self._fields(key))
            if top:
                self.headers.insert(self._position(first), f)
                lines.insert(0, f)
                self._index[key] = f
            else:
                self.headers.append(f)
                lines.append(f)
            if self._multi is None:
                self._multi = {}
            self._multi[key] = lines
        self._changed(key)
        return f

    def insert_header(self, index, name, value):
        """Insert a header line at position ``index`` of ``headers``."""
        f = _new_field(name, value)
        self.headers.insert(index, f)
        self._index = self._multi = None
        self._changed(f.key)
        return f

    def remove_header(self, name):
        """Remove every line of header ``name`` (long and compact forms); return how many."""
        key = canonical_name(name)
        before = len(self.headers)
        self.headers = [f for f in self.headers if f.key != key]
        removed = before - len(self.headers)
        if removed:
            self._index = self._multi = None
            self._changed(key)
        return removed

    def _remove_line(self, f):
        """Remove header line ``f`` (a line of this message, indexed)."""
        del self.headers[self._position(f)]
        key = f.key
        multi = self._multi
        lines = None if multi is None else multi.get(key)
        if lines is None:
            del self._index[key]
        else:
            lines.remove(f)
            self._index[key] = lines[0]
            if len(lines) == 1:
                del multi[key]

    def remove_first_value(self, name):
        """Remove the first comma-separated value of header ``name`` (the top Via, the top
        Route ...) and return it as text; the line goes when it becomes empty.  None if the
        header is absent."""
        fields = self._fields(canonical_name(name))
        if not fields:
            return None
        f = fields[0]
        if f.parsed is not None:
            first = str(f.parsed[0])
            rest = f.parsed[1:]
            if rest:
                f.parsed = rest
                f.value = ", ".join(str(o) for o in rest)
        else:
            parts = split_commas(f.value)
            first = parts[0]
            rest = parts[1:]
            if rest:
                f.value = ", ".join(rest)
        if rest:
            f.raw = None
        else:
            self._remove_line(f)
        self._changed(f.key)
        return first

    def set_header(self, name, value):
        """Replace every line of header ``name`` by one line ``name: value`` (at the place of
        the first one, or appended)."""
        f = _new_field(name, value)
        key = f.key
        first = self._first(key)
        if first is None:
            self.headers.append(f)
        else:
            pos = self._position(first)
            if self._multi is not None and self._multi.pop(key, None) is not None:
                self.headers = [g for g in self.headers if g.key != key]
                self.headers.insert(pos, f)
            else:
                self.headers[pos] = f
        self._index[key] = f
        self._changed(key)
        return f

    def set_body(self, body):
        """Replace the body and rewrite the Content-Length value (a Content-Length line is
        added at serialisation if there is none)."""
        self.body = bytes(body)
        clen = str(len(self.body))
        for f in self._fields("content-length"):
            if f.value != clen:
                f.value = clen
                f.raw = None
        self._edited = True

    # -- serialisation -------------------------------------------------------------------------
    def _sync(self):
        """Re-serialise header lines whose parsed values were changed (Via.set_param ...)."""
        for f in self.headers:
            p = f.parsed
            if p is not None:
                for o in p:
                    if o._raw is None:
                        f.value = ", ".join(str(o) for o in p)
                        f.raw = None
                        self._edited = True
                        break

    def _start_line(self):
        raise NotImplementedError

    def to_bytes(self):
        """The message as bytes: exactly the parsed bytes if nothing was changed; otherwise the
        start line, every header line (untouched ones byte for byte), a correct Content-Length
        (rewritten or added) and the body."""
        self._sync()
        if not self._edited:
            src = self._src
            if self._start == 0 and self._end == len(src):
                return src
            return src[self._start:self._end]
        body = self.body
        clen = str(len(body))
        lines = [self._start_line()]
        seen_cl = False
        for f in self.headers:
            if f.key == "content-length":
                if seen_cl:
                    continue
                seen_cl = True
                if f.value != clen:
                    lines.append(f.name + ": " + clen)
                    continue
            raw = f.raw
            lines.append(raw if raw is not None else f.name + ": " + f.value)
        if not seen_cl:
            lines.append("Content-Length: " + clen)
        lines.append("")
        lines.append("")
        return "\r\n".join(lines).encode("latin-1") + body

    def __bytes__(self):
        return self.to_bytes()

    def _copy_into(self, m):
        self._sync()
        m.headers = [f.copy() for f in self.headers]
        m.body = self.body
        m._src = self._src
        m._start = self._start
        m._end = self._end
        m._edited = self._edited
        m._clear()
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
        self._init_fields(_fields_from(headers), body)

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
    """A SIP response: ``status`` (int 100-699), ``reason`` (latin-1 text as received: a UTF-8
    reason phrase reads as mojibake and goes out unchanged), ``version``."""

    __slots__ = ("version", "_status", "_reason")

    def __init__(self, status, reason, headers=(), body=b"", version="SIP/2.0"):
        """Build a response; ``headers`` are (name, value) pairs or HeaderFields (copied)."""
        self.version = version
        self.status = status
        self.reason = reason
        self._init_fields(_fields_from(headers), body)

    @property
    def status(self):
        return self._status

    @status.setter
    def status(self, value):
        if type(value) is not int or not 100 <= value <= 699:
            raise ValueError(f"bad status code {value!r}")
        self._status = value
        self._edited = True

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
        return f"{self.version} {self._status} {self._reason}"

    def copy(self):
        m = Response.__new__(Response)
        m.version = self.version
        m._status = self._status
        m._reason = self._reason
        return self._copy_into(m)

    def __repr__(self):
        return f"<Response {self._status} {self._reason}>"


def _fields_from(headers):
    out = []
    for h in headers:
        if isinstance(h, HeaderField):
            out.append(h.copy())
        else:
            name, value = h
            out.append(_new_field(name, value))
    return out


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
    the last header line is tolerated when ``data`` ends with CRLF."""
    if type(data) is not bytes:
        data = bytes(data)
    n = len(data)
    start = 0
    if data[:1] in (b"\r", b"\n"):
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
    head = data[start:hdr_end].decode("latin-1")
    lines = head.split("\r\n")
    nl = len(lines) - 1
    if head.count("\n") != nl or head.count("\r") != nl:
        raise ParseError("bare CR or LF in the header section")

    # RFC 3261 7.3.1: header lines; a line starting with SP/HTAB continues the previous one
    headers = []
    index = {}          # key -> first line; multi: key -> every line, for repeated keys
    multi = None
    prev = None
    folded = "\r\n " in head or "\r\n\t" in head
    for line in lines[1:] if nl else ():
        if folded and (line[0] == " " or line[0] == "\t"):
            if prev is None:
                raise ParseError("continuation line after the start line")
            prev.raw = prev.raw + "\r\n" + line
            v = line.strip(WSP)
            if v:
                prev.value = prev.value + " " + v if prev.value else v
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
        prev = HeaderField(name, key, value.strip(WSP), line)
        headers.append(prev)
        first = index.setdefault(key, prev)
        if first is not prev:
            if multi is None:
                multi = {}
            lst = multi.get(key)
            if lst is None:
                multi[key] = [first, prev]
            else:
                lst.append(prev)

    first = lines[0]
    if first[:4].upper() == "SIP/":
        msg = _parse_status_line(first)
        method = None
    else:
        msg = _parse_request_line(first)
        method = msg.method

    if not _REQUIRED_KEYS <= index.keys():
        for key in _REQUIRED:
            if key not in index:
                raise ParseError("Missing header " + _PRETTY[key])
    if multi is not None:   # some header appears on several lines
        for key in _SINGLE:
            if key in multi:
                raise ParseError(f"Multiple {_PRETTY[key]} header fields")

    # RFC 3261 20.14, 18.3: the body must hold at least Content-Length octets
    f = index.get("content-length")
    if f is not None:
        body_end = body_start + parse_uint(f.value, "Content-Length", 2 ** 31 - 1)
        if body_end > n:
            raise ParseError("body shorter than Content-Length")
    else:
        body_end = n

    msg.headers = headers
    msg.body = data[body_start:body_end]
    msg._src = data
    msg._start = start
    msg._end = body_end
    msg._edited = False
    msg._index = index
    msg._multi = multi
    msg._vias = msg._contacts = None

    # RFC 3261 8.1.1.5, 20.16: CSeq; its method equals the request's (4475 mismatch01/02)
    cseq = msg._cseq = CSeq.parse(index["cseq"].value)
    if method is not None and cseq.method != method:
        raise ParseError("CSeq method does not match the request method")
    # RFC 3261 20.22: Max-Forwards 0-255 (4475 scalar02)
    f = index.get("max-forwards")
    msg._max_forwards = None if f is None else parse_uint(f.value, "Max-Forwards", 255)
    # RFC 3261 25.1: callid = word [ "@" word ]  (checked: non-empty, no LWS)
    callid = index["call-id"].value
    if not callid or " " in callid or "\t" in callid:
        raise ParseError("malformed Call-ID")
    msg._top_via = _parsed(index["via"])[0]
    if method is None:      # a response: From, To and Contact when read (module docstring)
        msg._from = msg._to = None
    else:
        _check_request_fields(msg, index, multi)
    f = index.get("date")
    if f is not None and not is_sip_date(f.value):
        raise ParseError("malformed Date (RFC 1123 date in GMT required)")
    return msg


def _check_request_fields(msg, index, multi):
    """parse() of a request: From, To and every Contact, parsed now (and cached)."""
    f = index["from"]
    f.parsed = [parse_name_addr(f.value)]
    msg._from = f.parsed[0]
    f = index["to"]
    f.parsed = [parse_name_addr(f.value)]
    msg._to = f.parsed[0]
    f = index.get("contact")
    if f is not None:
        lst = multi.get("contact") if multi is not None else None
        if lst is None:
            if f.value != "*":
                _parsed(f)
        else:
            for f in lst:
                if f.value == "*":
                    raise ParseError("Contact: * mixed with other contacts")
                _parsed(f)


# RFC 3261 25.1
#   Request-Line  =  Method SP Request-URI SP SIP-Version CRLF
#   Request-URI   =  SIP-URI / SIPS-URI / absoluteURI
#   SIP-Version   =  "SIP" "/" 1*DIGIT "." 1*DIGIT
#   Method        =  INVITEm / ACKm / OPTIONSm / BYEm / CANCELm / REGISTERm / extension-method
#   extension-method  =  token
# RFC 3261 7.1: exactly one SP between elements (4475 lwsstart, trws, lwsruri, ltgtruri);
# 19.1.1: no headers component in a Request-URI (4475 escruri).
def _parse_request_line(line):
    parts = line.split(" ")
    if len(parts) != 3:
        raise ParseError("malformed Request-Line")
    method, ruri, version = parts
    if not method or method.strip(TOKEN_CHARS):
        raise ParseError(f"bad method {method[:40]!r}")
    _check_version(version)
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
    return req


# RFC 3261 25.1
#   Status-Line    =  SIP-Version SP Status-Code SP Reason-Phrase CRLF
#   Status-Code    =  ... / extension-code
#   extension-code =  3DIGIT
#   Reason-Phrase  =  *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB)
# RFC 3261 21: codes 100-699 (4475 bigcode)
def _parse_status_line(line):
    sp = line.find(" ")
    if sp < 0:
        raise ParseError("malformed Status-Line")
    version = line[:sp]
    _check_version(version)
    code = line[sp + 1:sp + 4]
    tail = line[sp + 4:]
    if (len(code) != 3 or code.strip(DIGITS) or code[0] not in "123456"
            or (tail and tail[0] != " ")):
        raise ParseError("bad status code")
    resp = Response.__new__(Response)
    resp.version = version
    resp._status = int(code)
    resp._reason = tail[1:]
    return resp


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
def make_response(request, status, reason, to_tag=None, headers=(), body=b""):
    """A response to ``request`` (RFC 3261 8.2.6.2): copies every Via line (in order), From,
    To (adding ``;tag=to_tag`` when given and the To has no tag yet), Call-ID and CSeq, as
    they are (Via edits such as ``received`` included); then ``headers`` ((name, value) pairs);
    Content-Length is set from ``body``."""
    request._sync()
    fields = []
    for f in request.headers:
        k = f.key
        if k in _RESPONSE_COPY:
            if k == "to" and to_tag is not None and _parsed(f)[0].tag is None:
                fields.append(HeaderField(f.name, "to", f.value + ";tag=" + to_tag))
            else:
                fields.append(HeaderField(f.name, k, f.value, f.raw))
    for name, value in headers:
        fields.append(_new_field(name, value))
    resp = Response.__new__(Response)
    resp.version = "SIP/2.0"
    resp.status = status
    resp.reason = reason
    resp._init_fields(fields, body)
    return resp


def response_bytes(request, status, reason, to_tag=None, headers=(), body=b""):
    """``make_response(...).to_bytes()`` without building the Response: what a server sends
    when it answers a request itself (100 Trying, sl replies), at half the cost."""
    if type(status) is not int or not 100 <= status <= 699:
        raise ValueError(f"bad status code {status!r}")
    if "\r" in reason or "\n" in reason:
        raise ValueError(f"CR or LF in reason phrase {reason!r}")
    request._sync()
    lines = [f"SIP/2.0 {status} {reason}"]
    for f in request.headers:
        k = f.key
        if k in _RESPONSE_COPY:
            if k == "to" and to_tag is not None and _parsed(f)[0].tag is None:
                lines.append(f.name + ": " + f.value + ";tag=" + to_tag)
            else:
                raw = f.raw
                lines.append(raw if raw is not None else f.name + ": " + f.value)
    clen = str(len(body))
    seen_cl = False
    for name, value in headers:
        f = _new_field(name, value)
        if f.key == "content-length":   # as to_bytes: the first one, with the right value
            if seen_cl:
                continue
            seen_cl = True
            lines.append(f.name + ": " + clen)
        else:
            lines.append(f.name + ": " + f.value)
    if not seen_cl:
        lines.append("Content-Length: " + clen)
    lines.append("")
    lines.append("")
    return "\r\n".join(lines).encode("latin-1") + body
