"""The RFC 3261 section 25 grammar the SIP parser needs, in one place (h11 ``_abnf.py`` style).

Each ABNF rule used is quoted above the constant or function that implements it.  No regular
expressions: character classes are plain strings tested with ``not s.strip(CLASS)`` ("every
character of ``s`` is in ``CLASS``"), which runs at C speed, and scanning uses ``str.find``.

Text handled here is ``str`` decoded with latin-1, so one character is one octet.  Never call
``str.strip()``/``str.split()`` without arguments on it: they treat octets such as 0x85 and 0xA0
(UTF-8 continuation bytes) as white space.  ``WSP`` is the only white space SIP knows.
"""

from .errors import ParseError

# RFC 3261 25.1 (RFC 2234 core rules)
#   WSP  =  SP / HTAB
#   LWS  =  [*WSP CRLF] 1*WSP ; linear whitespace
#   SWS  =  [LWS] ; sep whitespace
# Header values are unfolded before they get here, so LWS is a run of WSP.
WSP = " \t"

#   alphanum  =  ALPHA / DIGIT
DIGITS = "0123456789"
HEXDIGITS = "0123456789abcdefABCDEF"
ALPHA = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ALPHANUM = ALPHA + DIGITS

#   token  =  1*(alphanum / "-" / "." / "!" / "%" / "*"
#                 / "_" / "+" / "`" / "'" / "~" )
TOKEN_CHARS = ALPHANUM + "-.!%*_+`'~"

#   mark        =  "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
#   unreserved  =  alphanum / mark
#   escaped     =  "%" HEXDIG HEXDIG
UNRESERVED = ALPHANUM + "-_.!~*'()"

#   user             =  1*( unreserved / escaped / user-unreserved )
#   user-unreserved  =  "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
# ("#" is accepted too: phones send "sip:*69#@host" unescaped.)
USER_CHARS = UNRESERVED + "%&=+$,;?/#"

#   password         =  *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD_CHARS = UNRESERVED + "%&=+$,"

#   paramchar         =  param-unreserved / unreserved / escaped
#   param-unreserved  =  "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAM_CHARS = UNRESERVED + "%[]/:&+$"

#   headers         =  "?" header *( "&" header )
#   header          =  hname "=" hvalue
#   hname           =  1*( hnv-unreserved / unreserved / escaped )
#   hvalue          =  *( hnv-unreserved / unreserved / escaped )
#   hnv-unreserved  =  "[" / "]" / "/" / "?" / ":" / "+" / "$"
URI_HEADERS_CHARS = UNRESERVED + "%[]/?:+$=&"

#   hostname     =  *( domainlabel "." ) toplabel [ "." ]
#   domainlabel  =  alphanum / alphanum *( alphanum / "-" ) alphanum
#   toplabel     =  ALPHA / ALPHA *( alphanum / "-" ) alphanum
#   IPv4address  =  1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
# (label structure is not checked; "_" is accepted as many resolvers do)
HOSTNAME_CHARS = ALPHANUM + "-._"

#   IPv6reference  =  "[" IPv6address "]"
#   IPv6address    =  hexpart [ ":" IPv4address ]
IPV6_CHARS = HEXDIGITS + ":."

#   scheme  =  ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )   (RFC 3261 25.1, from RFC 2396)
SCHEME_CHARS = ALPHANUM + "+-."

#   gen-value  =  token / host / quoted-string
GEN_VALUE_CHARS = TOKEN_CHARS + ":[]"

# parameter names that are tokens, known without checking each character (RFC 3261 20, 3581)
USUAL_PARAMS = frozenset(("branch", "tag", "received", "rport", "maddr", "ttl", "lr",
                          "transport", "user", "method", "expires", "q", "ftag", "ob",
                          "reg-id", "+sip.instance", "gr", "nat", "alias"))


def is_token(s):
    """``s`` is a non-empty token."""
    return s != "" and not s.strip(TOKEN_CHARS)


def is_scheme(s):
    """``s`` is a URI scheme name (RFC 3261 25.1 ``scheme``)."""
    return s != "" and s[0] in ALPHA and not s.strip(SCHEME_CHARS)


def check_escapes(s):
    """Every ``%`` in ``s`` starts an ``escaped`` (``"%" HEXDIG HEXDIG``)."""
    i = s.find("%")
    while i >= 0:
        h = s[i + 1:i + 3]
        if len(h) != 2 or h.strip(HEXDIGITS):
            return False
        i = s.find("%", i + 3)
    return True


def unescape(s):
    """Replace each ``%HH`` of ``s`` by the octet it stands for (latin-1 str).  A ``%`` that does
    not start a valid escape is kept as it is.  ``%00`` gives ``"\\x00"``: nothing is truncated."""
    if "%" not in s:
        return s
    parts = s.split("%")
    out = [parts[0]]
    for p in parts[1:]:
        h = p[:2]
        if len(h) == 2 and not h.strip(HEXDIGITS):
            out.append(chr(int(h, 16)))
            out.append(p[2:])
        else:
            out.append("%")
            out.append(p)
    return "".join(out)


def is_host(h):
    """``h`` is a ``host``: a hostname, an IPv4 address or a bracketed IPv6 reference."""
    if not h:
        return False
    if h[0] == "[":
        return len(h) > 2 and h[-1] == "]" and not h[1:-1].strip(IPV6_CHARS)
    return not h.strip(HOSTNAME_CHARS)


# RFC 3261 25.1
#   port  =  1*DIGIT
PORTS = {}          # port text -> number, filled by parse_port: the same few ports come back
_PORTS_MAX = 1024


def parse_port(text):
    """A port number (0-65535) from its decimal text; ParseError otherwise."""
    port = PORTS.get(text)
    if port is not None:
        return port
    if not text or text.strip(DIGITS) or len(text) > 5:
        raise ParseError(f"bad port {text!r}")
    port = int(text)
    if port > 65535:
        raise ParseError(f"bad port {text!r}")
    if len(PORTS) < _PORTS_MAX:
        PORTS[text] = port
    return port


def parse_uint(text, what, limit):
    """A non-negative decimal integer no larger than ``limit``; ParseError (400) otherwise.

    Guards ``int()`` against huge digit strings (Python limits int/str conversion to 4300 digits)
    and against what ``int()`` accepts and SIP does not ("+1", " 1", "1_0", non-ASCII digits)."""
    if not text or text.strip(DIGITS):
        raise ParseError(f"bad {what} value {text[:40]!r}")
    if len(text) > 20:
        text = text.lstrip("0")
        if len(text) > 20:
            raise ParseError(f"{what} value too large")
    n = int(text) if text else 0
    if n > limit:
        raise ParseError(f"{what} value too large")
    return n


# RFC 3261 25.1
#   quoted-string  =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
#   qdtext         =  LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
#   quoted-pair    =  "\" (%x00-09 / %x0B-0C / %x0E-7F)
def skip_quoted(s, i):
    """``s[i]`` is a DQUOTE: return the index just after the closing DQUOTE.  ParseError if the
    quoted string is not terminated (RFC 4475 3.1.2.6 quotbal)."""
    j = i + 1
    while True:
        q = s.find('"', j)
        if q < 0:
            raise ParseError("unterminated quoted string")
        b = s.find("\\", j, q)
        if b < 0:
            return q + 1
        j = b + 2  # the quoted-pair's second octet may be the DQUOTE found


def split_quoted(s, sep):
    """Split ``s`` at each ``sep`` outside quoted strings."""
    if '"' not in s:
        return s.split(sep)
    out = []
    start = i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == '"':
            i = skip_quoted(s, i)
            continue
        if c == sep:
            out.append(s[start:i])
            start = i + 1
        i += 1
    out.append(s[start:])
    return out


# RFC 3261 7.3.1: header fields whose grammar is a comma-separated list may be combined on one
# line; commas inside quoted strings and <...> (a URI's user part may hold one) do not separate.
#   COMMA  =  SWS "," SWS ; comma
def split_commas(value):
    """The comma-separated elements of a header value, stripped of LWS, in order.  Commas in
    quoted strings and inside ``<...>`` do not split.  Empty elements are kept (as ``""``) so a
    caller can reject them where the grammar does; ParseError on an unterminated quote."""
    if "," not in value:
        return [value.strip(WSP)]
    if '"' not in value and "<" not in value:
        return [p.strip(WSP) for p in value.split(",")]
    out = []
    start = i = 0
    n = len(value)
    in_angle = False
    while i < n:
        c = value[i]
        if c == '"' and not in_angle:
            i = skip_quoted(value, i)
            continue
        if c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            out.append(value[start:i].strip(WSP))
            start = i + 1
        i += 1
    out.append(value[start:].strip(WSP))
    return out


# RFC 3261 25.1
#   generic-param  =  token [ EQUAL gen-value ]
#   gen-value      =  token / host / quoted-string
#   SEMI   =  SWS ";" SWS ; semicolon
#   EQUAL  =  SWS "=" SWS ; equal
# Values are checked leniently: an unquoted value may hold any octet but LWS, DQUOTE, "<", ">"
# (real devices put "/" and such in branch and tag values); names must be tokens.
def parse_generic_params(text):
    """``[(name, value-or-None), ...]`` from the text after a header value's first ``;``.
    Names and values are kept as written (quoted values keep their quotes)."""
    out = []
    if " " not in text and '"' not in text and "\t" not in text and "<" not in text \
            and ">" not in text:
        # fast path: no LWS, no quoted string
        if ";" not in text:     # one parameter: a Via's branch, a From's tag
            name, eq, value = text.partition("=")
            if name not in USUAL_PARAMS and (not name or name.strip(TOKEN_CHARS)):
                raise ParseError(f"bad parameter {text[:40]!r}")
            return [(name, value if eq else None)]
        for p in text.split(";"):
            name, eq, value = p.partition("=")
            if name not in USUAL_PARAMS and (not name or name.strip(TOKEN_CHARS)):
                raise ParseError(f"bad parameter {p[:40]!r}")
            out.append((name, value if eq else None))
        return out
    for p in split_quoted(text, ";"):
        eq = p.find("=")
        if eq < 0:
            name = p.strip(WSP)
            value = None
        else:
            name = p[:eq].strip(WSP)
            value = p[eq + 1:].strip(WSP)
            if value:
                if value[0] == '"':
                    if skip_quoted(value, 0) != len(value):
                        raise ParseError(f"bad parameter value {value[:40]!r}")
                elif " " in value or "\t" in value or '"' in value or "<" in value \
                        or ">" in value:
                    raise ParseError(f"bad parameter value {value[:40]!r}")
        if not name or name.strip(TOKEN_CHARS):
            raise ParseError(f"bad parameter {p.strip(WSP)[:40]!r}")
        out.append((name, value))
    return out


def find_param(params, name):
    """Index of parameter ``name`` (lower-case) in ``params``, or -1.  Names compare
    case-insensitively, and after unescaping when written with ``%`` escapes (RFC 3261 19.1.4)."""
    i = 0
    for n, _v in params:
        # the same spelling, the same in another case (same length), or an escaped name
        if n == name or (len(n) == len(name) and n.lower() == name) or (
                "%" in n and unescape(n.lower()).lower() == name):
            return i
        i += 1
    return -1


def param_value(params, name):
    """The value of parameter ``name`` (lower-case) in ``params``, found as ``find_param``
    does; None when absent or valueless."""
    for n, v in params:
        if n == name or (len(n) == len(name) and n.lower() == name) or (
                "%" in n and unescape(n.lower()).lower() == name):
            return v
    return None


def set_param(params, name, value):
    """Set parameter ``name`` in ``params`` in place: its first occurrence keeps its position
    and spelling, or it is appended."""
    i = find_param(params, name.lower())
    if i >= 0:
        params[i] = (params[i][0], value)
    else:
        params.append((name, value))


def remove_param(params, name):
    """Remove every occurrence of parameter ``name``; return how many were removed."""
    name = name.lower()
    count = 0
    while True:
        i = find_param(params, name)
        if i < 0:
            return count
        del params[i]
        count += 1


def params_text(params):
    """Serialise ``[(name, value)]`` as ``;name=value;flag``."""
    return "".join(";" + n if v is None else ";" + n + "=" + v for n, v in params)


# RFC 3261 25.1
#   SIP-date      =  rfc1123-date
#   rfc1123-date  =  wkday "," SP date1 SP time SP "GMT"
#   date1         =  2DIGIT SP month SP 4DIGIT ; day month year (e.g., 02 Jun 1982)
#   time          =  2DIGIT ":" 2DIGIT ":" 2DIGIT ; 00:00:00 - 23:59:59
#   wkday         =  "Mon" / "Tue" / "Wed" / "Thu" / "Fri" / "Sat" / "Sun"
#   month         =  "Jan" / "Feb" / "Mar" / "Apr" / "May" / "Jun" / "Jul" / "Aug"
#                    / "Sep" / "Oct" / "Nov" / "Dec"
# RFC 3261 20.17: only GMT is allowed (RFC 4475 3.1.2.12 baddate).
_WKDAYS = frozenset(("Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"))
_MONTHS = frozenset(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                     "Nov", "Dec"))


def is_sip_date(value):
    """``value`` is an rfc1123-date in GMT."""
    p = value.split(" ")
    if len(p) != 6 or p[5] != "GMT" or p[0] not in _WKDAYS or p[2] not in _MONTHS:
        return False
    day, year, t = p[1], p[3], p[4]
    return (len(day) == 2 and not day.strip(DIGITS) and len(year) == 4
            and not year.strip(DIGITS) and len(t) == 8 and t[2] == ":" and t[5] == ":"
            and not t.replace(":", "").strip(DIGITS))
