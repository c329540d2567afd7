"""Header field values the proxy reads: Via, name-addr lists (From, To, Contact, Route,
Record-Route, ...) and CSeq.

Each class parses one value, keeps the text it came from (``_raw``) and gives it back from
``str()`` until it is changed through ``set_param``/``remove_param`` (or, for ``NameAddr``,
its ``display``/``uri_text``/``uri`` setters).  ``Message`` relies on that: a header line whose
parsed values were changed is re-serialised, every other line goes out byte for byte.
"""

from .cache import BoundedCache
from .errors import ParseError
from .grammar import (HOSTNAME_CHARS, TOKEN_CHARS, USUAL_PARAMS, WSP, find_param, is_host,
                      is_scheme, param_value, params_text, parse_generic_params, parse_port,
                      parse_uint, remove_param, set_param, skip_quoted, split_commas)
from .uri import URI

__all__ = ["Via", "parse_vias", "NameAddr", "parse_name_addr", "parse_name_addr_list", "CSeq",
           "split_commas", "MAGIC_COOKIE", "is_checked_name_addr"]

# RFC 3261 8.1.1.7: branch IDs of RFC 3261 elements start with this cookie.
MAGIC_COOKIE = "z9hG4bK"
_MAX_EXPIRES = 2 ** 32 - 1  # RFC 3261 20.19, 20.10: delta-seconds up to 2**32-1
# display-name = *(token LWS): a run of these characters, nothing else (LWS is unfolded here)
_DISPLAY_CHARS = TOKEN_CHARS + WSP
_WSP_SET = frozenset(WSP)      # ``s[:1] in _WSP_SET``: false for "" (unlike ``in WSP``)
# the sent-protocols nearly every Via has -> their transport
_USUAL_PROTOCOLS = {"SIP/2.0/" + t: t for t in ("UDP", "TCP", "TLS", "SCTP", "WS", "WSS")}


class _Params:
    """Parameter access shared by Via and NameAddr (``params`` is a list of (name, value))."""

    __slots__ = ()

    def param(self, name):
        """Value of parameter ``name`` (any case), None when absent or valueless; see
        ``has_param``."""
        i = find_param(self.params, name.lower())
        return None if i < 0 else self.params[i][1]

    def has_param(self, name):
        return find_param(self.params, name.lower()) >= 0

    def set_param(self, name, value=None):
        """Set parameter ``name`` (replaced in place, or appended); ``value`` None: a flag."""
        set_param(self.params, name, value)
        self._raw = None

    def remove_param(self, name):
        """Remove parameter ``name``; return how many occurrences were removed."""
        n = remove_param(self.params, name)
        if n:
            self._raw = None
        return n


class Via(_Params):
    """One via-parm (RFC 3261 20.42).

    ``protocol`` "SIP/2.0/UDP" (LWS removed); ``transport`` upper-case; ``host`` as written,
    IPv6 with brackets; ``port`` int or None; ``params`` [(name, value-or-None)] in order."""

    __slots__ = ("protocol", "transport", "host", "port", "params", "_raw")

    def __init__(self, transport, host, port=None, params=None, protocol=None):
        self.transport = transport.upper()
        self.protocol = protocol or "SIP/2.0/" + self.transport
        self.host = host
        self.port = port
        self.params = [] if params is None else list(params)
        self._raw = None

    # RFC 3261 25.1
    #   Via               =  ( "Via" / "v" ) HCOLON via-parm *(COMMA via-parm)
    #   via-parm          =  sent-protocol LWS sent-by *( SEMI via-params )
    #   via-params        =  via-ttl / via-maddr / via-received / via-branch / via-extension
    #   sent-protocol     =  protocol-name SLASH protocol-version SLASH transport
    #   protocol-name     =  "SIP" / token
    #   protocol-version  =  token
    #   transport         =  "UDP" / "TCP" / "TLS" / "SCTP" / other-transport
    #   sent-by           =  host [ COLON port ]
    #   via-extension     =  generic-param
    #   SLASH = SWS "/" SWS ; COLON = SWS ":" SWS
    @classmethod
    def parse(cls, text):
        """Parse one via-parm (no commas); ParseError when malformed."""
        if text[:1] in _WSP_SET or text[-1:] in _WSP_SET:
            text = text.strip(WSP)
        head, semi, param_part = text.partition(";")
        sent = _SENT.get(head)
        if sent is None:
            sent = _parse_sent(head, text)
        v = Via.__new__(Via)
        v.protocol, v.transport, v.host, v.port = sent
        if not semi:
            v.params = []
        elif (";" in param_part or " " in param_part or '"' in param_part
              or "\t" in param_part or "<" in param_part or ">" in param_part):
            v.params = parse_generic_params(param_part)
        else:
            # one parameter without LWS or quotes (the branch alone): parse_generic_params'
            # fast path, written out for a usual name; another goes there for its checks
            name, eq, value = param_part.partition("=")
            if name in USUAL_PARAMS:
                v.params = [(name, value if eq else None)]
            else:
                v.params = parse_generic_params(param_part)
        v._raw = text
        return v

    def __str__(self):
        raw = self._raw
        if raw is not None:
            return raw
        s = self.protocol + " " + self.host
        if self.port is not None:
            s += ":" + str(self.port)
        return s + params_text(self.params)

    def __repr__(self):
        return f"Via({str(self)!r})"

    def copy(self):
        v = Via.__new__(Via)
        v.protocol = self.protocol
        v.transport = self.transport
        v.host = self.host
        v.port = self.port
        v.params = list(self.params)
        v._raw = self._raw
        return v

    def host_port(self):
        """The sent-by: ``host:port`` or ``host``."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def branch(self):
        params = self.params
        # the usual Via starts with its branch, spelled so: no scan (tm reads it for every
        # message); any other spelling or place, param_value's comparison
        if params and params[0][0] == "branch":
            return params[0][1]
        return param_value(params, "branch")

    @property
    def rfc3261(self):
        """True when the branch starts with the magic cookie and has more after it (RFC 3261
        8.1.1.7); False means RFC 2543 transaction matching (RFC 4475 3.2.1 badbranch)."""
        b = param_value(self.params, "branch")
        return b is not None and len(b) > 7 and b.startswith(MAGIC_COOKIE)

    @property
    def received(self):
        return param_value(self.params, "received")

    @property
    def rport(self):
        """RFC 3581: None when absent, "" when present without a value, else the value."""
        raw = self._raw
        # the usual Via names no rport (a phone's own text, as received; the proxy asks of
        # every request, RFC 3581 4): a substring test at C speed instead of the parameter
        # scan; "rport" elsewhere in it (a branch, a host) or any %-escape (a name written
        # escaped, RFC 3261 19.1.4 as find_param compares) takes the scan: the same answer
        if raw is not None and "rport" not in raw.lower() and "%" not in raw:
            return None
        i = find_param(self.params, "rport")
        if i < 0:
            return None
        v = self.params[i][1]
        return "" if v is None else v

    @property
    def maddr(self):
        return param_value(self.params, "maddr")


def _one_usual_param(text):
    """``parse_generic_params(text)``'s answer when ``text`` is one parameter of a usual name
    (a Via's branch, a From's or To's tag) without LWS or quotes, else None (the caller then
    asks parse_generic_params, which also raises its errors)."""
    if (";" in text or " " in text or '"' in text or "\t" in text or "<" in text
            or ">" in text):
        return None
    name, eq, value = text.partition("=")
    if name not in USUAL_PARAMS:
        return None
    return [(name, value if eq else None)]


# Via.parse: sent-protocol and sent-by (the text before the first ";") -> (protocol, transport,
# host, port).  The same few come back on every message: a phone's own on its requests, ours
# on every response.
_SENT = BoundedCache(256)


def _parse_sent(head, text):
    """``(protocol, transport, host, port)`` of ``head``, the sent-protocol and sent-by of the
    via-parm ``text`` (for messages); remembered in ``_SENT``."""
    protocol, sp, rest = head.partition(" ")
    transport = _USUAL_PROTOCOLS.get(protocol)
    if transport is not None and sp and "\t" not in head:
        # the usual case: "SIP/2.0/UDP SP sent-by"
        if rest[:1] == " ":
            rest = rest.lstrip(WSP)
    elif sp and len(protocol) > 8 and protocol[:8] == "SIP/2.0/" and "\t" not in head:
        transport = protocol[8:]
        if transport.strip(TOKEN_CHARS):
            raise ParseError(f"malformed Via sent-protocol {text[:60]!r}")
        transport = transport.upper()
        rest = rest.lstrip(WSP)
    else:
        s1 = head.find("/")
        s2 = head.find("/", s1 + 1) if s1 > 0 else -1
        if s2 < 0:
            raise ParseError(f"malformed Via {text[:60]!r}")
        name = head[:s1].strip(WSP)
        version = head[s1 + 1:s2].strip(WSP)
        rest = head[s2 + 1:].lstrip(WSP)
        end = rest.find(" ")
        if "\t" in rest:
            t = rest.find("\t")
            if end < 0 or t < end:
                end = t
        if end <= 0:
            raise ParseError(f"malformed Via {text[:60]!r}")
        transport = rest[:end]
        for tok in (name, version, transport):
            if not tok or tok.strip(TOKEN_CHARS):
                raise ParseError(f"malformed Via sent-protocol {text[:60]!r}")
        protocol = name + "/" + version + "/" + transport
        transport = transport.upper()
        rest = rest[end:].lstrip(WSP)
    hostport = rest
    if hostport[-1:] in _WSP_SET:
        hostport = hostport.rstrip(WSP)
    if hostport[:1] == "[":
        rb = hostport.find("]") + 1
        if rb == 0:
            raise ParseError(f"malformed Via sent-by {text[:60]!r}")
        host = hostport[:rb]
        tail = hostport[rb:].lstrip(WSP)
        if not is_host(host) or (tail and tail[0] != ":"):
            raise ParseError(f"malformed Via sent-by {text[:60]!r}")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text = hostport.partition(":")
        if colon:
            if host[-1:] in _WSP_SET:
                host = host.rstrip(WSP)
        else:
            port_text = None
        if not host or host.strip(HOSTNAME_CHARS):      # is_host, for a hostname/IPv4
            raise ParseError(f"malformed Via sent-by {text[:60]!r}")
    port = None if port_text is None else parse_port(port_text.lstrip(WSP))
    sent = (protocol, transport, host, port)
    return _SENT.put(head, sent)


def parse_vias(value):
    """The via-parms of one Via header value (several may be comma-separated)."""
    if "," not in value:        # one via-parm, the usual case
        part = value.strip(WSP)
        if not part:
            raise ParseError("empty Via value")
        return [Via.parse(part)]
    out = []
    for part in split_commas(value):
        if not part:
            raise ParseError("empty Via value")
        out.append(Via.parse(part))
    return out


class NameAddr(_Params):
    """A name-addr or addr-spec with header parameters: a From, To, Contact, Route,
    Record-Route ... value (RFC 3261 20.10, 20.20, 20.39 ...).

    ``display`` as written (quotes included) or None; ``uri_text`` the URI as written;
    ``uri`` the parsed URI (lazy: ParseError(416) for a scheme other than sip/sips/tel, so
    unknown schemes parse fine until someone asks); ``params`` header parameters (tag, expires,
    q ...); ``bracketed`` True when written with ``<>``.  A URI object got from ``uri`` is a
    parsed copy: after changing it, assign it back (``na.uri = u``)."""

    __slots__ = ("_display", "_uri_text", "params", "bracketed", "_uri", "_raw")

    def __init__(self, uri, display=None, params=None, bracketed=True):
        self._display = display
        self._uri_text = str(uri)
        self._uri = uri.copy() if isinstance(uri, URI) else None
        self.params = [] if params is None else list(params)
        self.bracketed = bracketed
        self._raw = None

    @property
    def display(self):
        return self._display

    @display.setter
    def display(self, value):
        self._display = value
        self._raw = None

    @property
    def uri_text(self):
        return self._uri_text

    @uri_text.setter
    def uri_text(self, value):
        self._uri_text = value
        self._uri = None
        self._raw = None

    @property
    def uri(self):
        u = self._uri
        if u is None:
            u = self._uri = URI.parse(self._uri_text)
        return u

    @uri.setter
    def uri(self, value):
        self._uri_text = str(value)
        self._uri = value.copy() if isinstance(value, URI) else None
        self._raw = None

    @property
    def tag(self):
        params = self.params
        # the usual From/To: the tag first, spelled so (see Via.branch)
        if params and params[0][0] == "tag":
            return params[0][1]
        return param_value(params, "tag")

    @property
    def expires(self):
        """The ``expires`` parameter (RFC 3261 20.10) as int, None if absent; ParseError(400)
        if it is not delta-seconds or exceeds 2**32-1 (RFC 4475 3.1.2.4 scalar02)."""
        i = find_param(self.params, "expires")
        if i < 0:
            return None
        v = self.params[i][1]
        if v is None:
            raise ParseError("Contact expires parameter without value")
        return parse_uint(v, "Contact expires", _MAX_EXPIRES)

    # RFC 3261 25.1
    #   qvalue  =  ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    @property
    def q(self):
        """The ``q`` parameter as a float, None if absent; ParseError if not a qvalue."""
        i = find_param(self.params, "q")
        if i < 0:
            return None
        v = self.params[i][1] or ""
        if (not v or v[0] not in "01" or (len(v) > 1 and (v[1] != "." or len(v) > 5))
                or v[2:].strip("0123456789")):
            raise ParseError(f"bad q value {v[:20]!r}")
        q = float(v)
        if q > 1.0:
            raise ParseError(f"bad q value {v!r}")
        return q

    def __str__(self):
        raw = self._raw
        if raw is not None:
            return raw
        uri = self._uri_text
        d = self._display
        if self.bracketed or d or ";" in uri or "?" in uri or "," in uri:
            s = (d + " <" if d else "<") + uri + ">"
        else:
            s = uri
        return s + params_text(self.params)

    def __repr__(self):
        return f"NameAddr({str(self)!r})"

    def copy(self):
        n = NameAddr.__new__(NameAddr)
        n._display = self._display
        n._uri_text = self._uri_text
        n._uri = None if self._uri is None else self._uri.copy()
        n.params = list(self.params)
        n.bracketed = self.bracketed
        n._raw = self._raw
        return n


# parse_name_addr: a name-addr's text -> its parts (immutable), for the next time it comes: a
# dialog's From and To come back on each of its requests, a phone's Contact on all of them
_NAME_ADDRS = BoundedCache(256)
# a bracketed name-addr's text up to its ">" -> (display, uri text), for the next one that
# differs only in its header parameters: a dialog's From and To with a new tag on each call.
# Only texts whose first ">" closes the URI go in (a quoted display name holding ">" does
# not), so a text whose part up to its first ">" is a key parses up to there as the key did.
_NAME_ADDR_HEADS = BoundedCache(256)


# RFC 3261 25.1
#   name-addr     =  [ display-name ] LAQUOT addr-spec RAQUOT
#   addr-spec     =  SIP-URI / SIPS-URI / absoluteURI
#   display-name  =  *(token LWS)/ quoted-string
#   LAQUOT  =  SWS "<"; left angle quote
#   RAQUOT  =  ">" SWS ; right angle quote
#   from-spec     =  ( name-addr / addr-spec ) *( SEMI from-param )
#   contact-param =  (name-addr / addr-spec) *(SEMI contact-params)
# RFC 3261 20: an addr-spec holding a comma, question mark or semicolon must be in <>, so an
# unbracketed one ends at the first ";" and may not hold "?" or "," (4475 3.1.2.13 regbadct);
# no LWS inside <> (3.1.2.14 badaspec).
def parse_name_addr(value):
    """Parse one name-addr/addr-spec with its header parameters; ParseError when malformed.
    The URI is only checked to be ``scheme:something`` without LWS; ``.uri`` parses it."""
    s = value
    if s[:1] in _WSP_SET or s[-1:] in _WSP_SET:
        s = s.strip(WSP)
    known = _NAME_ADDRS.get(s)
    if known is not None:      # parsed before: a new NameAddr of the same parts
        n = NameAddr.__new__(NameAddr)
        n._display, n._uri_text, params, n.bracketed = known
        n.params = list(params)
        n._uri = None
        n._raw = s
        return n
    gt = s.find(">")
    if gt > 0:
        head = _NAME_ADDR_HEADS.get(s[:gt + 1])
        if head is not None:
            rest = s[gt + 1:]
            if rest and rest[0] != ";":
                rest = rest.lstrip(WSP)
                if rest and rest[0] != ";":
                    raise ParseError(f"junk after URI in {s[:60]!r}")
            if rest:
                rest = rest[1:]
                params = _one_usual_param(rest) or parse_generic_params(rest)
            else:
                params = []
            return _remembered(s, head[0], head[1], params, True)
    if not s:
        raise ParseError("empty name-addr")
    display = None
    if s[0] == '"':
        end = skip_quoted(s, 0)
        lt = s.find("<", end)
        if lt < 0 or s[end:lt].strip(WSP):
            raise ParseError(f"quoted display name without <URI> in {s[:60]!r}")
        display = s[:end]
        bracketed, tail = True, s[lt + 1:]
    elif s[0] == "<":
        bracketed, tail = True, s[1:]
    else:
        head, lt, tail = s.partition("<")
        bracketed = bool(lt) and ";" not in head   # else: an addr-spec whose parameters hold "<"
        if bracketed and head:
            display = head.rstrip(WSP)
            # display-name = *(token LWS): a token is the usual case
            if not (display.isalnum() and display.isascii()) and display.strip(_DISPLAY_CHARS):
                raise ParseError(f"bad display name {display[:60]!r}")
    if bracketed:
        uri_text, gt, rest = tail.partition(">")
        if not gt:
            raise ParseError(f"unterminated <URI> in {s[:60]!r}")
        _check_uri_text(uri_text, True)
        if rest:
            end = len(s) - len(rest)        # just after the URI's ">"
            if s.find(">") == end - 1:
                _NAME_ADDR_HEADS.put(s[:end], (display, uri_text))
        if rest:
            if rest[0] != ";":
                rest = rest.lstrip(WSP)
                if rest and rest[0] != ";":
                    raise ParseError(f"junk after URI in {s[:60]!r}")
            params = parse_generic_params(rest[1:]) if rest else []
        else:
            params = []
    else:
        uri_text, semi, rest = s.partition(";")
        if semi:
            uri_text = uri_text.rstrip(WSP)
        _check_uri_text(uri_text, False)
        params = parse_generic_params(rest) if semi else []
    return _remembered(s, display, uri_text, params, bracketed)


def _remembered(s, display, uri_text, params, bracketed):
    """A NameAddr of these parts (it keeps the list ``params``), its parts remembered for the
    next ``s``."""
    n = NameAddr.__new__(NameAddr)
    n._display = display
    n._uri_text = uri_text
    n._uri = None
    n.params = params
    n.bracketed = bracketed
    n._raw = s
    _NAME_ADDRS.put(s, (display, uri_text, tuple(params), bracketed))
    return n


def is_checked_name_addr(text):
    """Whether ``text`` (LWS-stripped) was parsed by ``parse_name_addr`` lately, and so would
    parse again: a message may leave it unparsed until it is read."""
    return text in _NAME_ADDRS


def _check_uri_text(t, bracketed):
    if t[:4] != "sip:" or len(t) == 4:      # else: the usual scheme, and more after it
        c = t.find(":")
        if c <= 0 or c == len(t) - 1 or not is_scheme(t[:c]):
            raise ParseError(f"bad URI {t[:60]!r}")
    if " " in t or "\t" in t or "<" in t or ">" in t or '"' in t:
        raise ParseError(f"bad URI {t[:60]!r}")
    if not bracketed and ("?" in t or "," in t):
        raise ParseError(f"URI with '?' or ',' not enclosed in <>: {t[:60]!r}")


def parse_name_addr_list(value):
    """The comma-separated name-addrs of one Contact/Route/Record-Route value."""
    if "," not in value:        # one value, the usual case
        if not value.strip(WSP):
            raise ParseError("empty element in name-addr list")
        return [parse_name_addr(value)]
    out = []
    for part in split_commas(value):
        if not part:
            raise ParseError("empty element in name-addr list")
        out.append(parse_name_addr(part))
    return out


class CSeq:
    """RFC 3261 20.16: ``number`` (int, < 2**31) and ``method``.  Read-only: change the
    header with ``Message.set_header``."""

    __slots__ = ("number", "method")

    def __init__(self, number, method):
        self.number = number
        self.method = method

    # RFC 3261 25.1
    #   CSeq  =  "CSeq" HCOLON 1*DIGIT LWS Method
    # RFC 3261 8.1.1.5: the number MUST be less than 2**31 (4475 3.1.2.4 scalar02)
    @classmethod
    def parse(cls, value):
        parts = value.replace("\t", " ").split(" ")
        if len(parts) != 2:
            parts = [p for p in parts if p]
            if len(parts) != 2:
                raise ParseError(f"malformed CSeq {value[:60]!r}")
        number, method = parts
        if not method or method.strip(TOKEN_CHARS):
            raise ParseError(f"malformed CSeq {value[:60]!r}")
        return cls(parse_uint(number, "CSeq", 2 ** 31 - 1), method)

    def __str__(self):
        return f"{self.number} {self.method}"

    def __repr__(self):
        return f"CSeq({self.number}, {self.method!r})"
