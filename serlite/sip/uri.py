"""SIP, SIPS and tel URIs: parsing, serialising and RFC 3261 19.1.4 comparison.

``URI.parse`` understands ``sip:`` and ``sips:`` (RFC 3261 19.1, 25.1) and a minimal ``tel:``
(RFC 3966: the number and its parameters).  Any other well-formed scheme raises
``ParseError(..., 416)`` (Unsupported URI Scheme, RFC 3261 21.4.15); malformed text raises
``ParseError`` (400).  Components are kept as written (escapes included), except that ``scheme``
and ``host`` are lower-cased; ``str()`` still gives back the text as written for an unmodified
URI.  Change parameters with ``set_param``/``remove_param``; the other fields are plain
attributes.
"""

from .cache import BoundedCache
from .errors import ParseError
from .grammar import (DIGITS, HOSTNAME_CHARS, PARAM_CHARS, PASSWORD_CHARS, PORTS,
                      URI_HEADERS_CHARS, USER_CHARS, USUAL_PARAMS, check_escapes, find_param,
                      is_host, is_scheme, params_text, parse_port, remove_param, set_param,
                      unescape)

__all__ = ["URI", "unescape"]

# RFC 3966 3
#   phonedigit-hex    =  HEXDIG / "*" / "#" / [ visual-separator ]
#   visual-separator  =  "-" / "." / "(" / ")"
#   global-number-digits  =  "+" *phonedigit DIGIT *phonedigit
_TEL_CHARS = DIGITS + "abcdefABCDEF*#-.()+"
_TEL_SEPARATORS = str.maketrans("", "", "-.()")

# RFC 3261 19.1.4: these uri-parameters make URIs differ when present in only one of them
# ("transport" too, as the section's own examples require).
_MUST_MATCH = ("user", "ttl", "method", "maddr", "transport")

# URI.parse: a sip/sips URI's text -> its parts (immutable), for the next time it comes: the
# R-URIs, Contacts and Routes of a home router's few phones come back on every message
_PARSED = BoundedCache(256)
_parsed_get = _PARSED.get      # a hit's lookup, without the attribute's
# what ``_PARSED`` keeps of a sip/sips URI (``_parts_of``): these fields of the URI, in this
# order (``params`` as a tuple), which ``URI.parse`` unpacks in one step.  A plain tuple and
# not a namedtuple: CPython unpacks an exact tuple on a fast path, a subclass through its
# iterator, 40 ns more on each hit (15 %)
_PARTS_FIELDS = ("scheme", "_scheme_raw", "user", "password", "headers", "params",
                 "_host_raw", "host", "_port_raw", "port")
_PARAMS = _PARTS_FIELDS.index("params")


class URI:
    """A parsed ``sip:``/``sips:``/``tel:`` URI.

    ``scheme`` lower-case; ``user``/``password`` as written (``None`` when absent; for ``tel:``
    ``user`` is the number); ``host`` lower-cased, IPv6 with brackets (``""`` for tel);
    ``port`` int or None; ``params`` ``[(name, value-or-None)]`` in order, names as written;
    ``headers`` the raw text after ``?`` or None.
    """

    __slots__ = ("scheme", "user", "password", "host", "port", "params", "headers",
                 "_scheme_raw", "_host_raw", "_port_raw")

    def __init__(self, scheme="sip", user=None, host="", port=None, params=None, headers=None,
                 password=None):
        self.scheme = scheme.lower()
        self.user = user
        self.password = password
        self.host = host.lower()
        self.port = port
        self.params = [] if params is None else list(params)
        self.headers = headers
        self._scheme_raw = self._host_raw = self._port_raw = None

    # RFC 3261 25.1
    #   SIP-URI   =  "sip:" [ userinfo ] hostport uri-parameters [ headers ]
    #   SIPS-URI  =  "sips:" [ userinfo ] hostport uri-parameters [ headers ]
    #   userinfo  =  ( user / telephone-subscriber ) [ ":" password ] "@"
    #   hostport  =  host [ ":" port ]
    #   uri-parameters  =  *( ";" uri-parameter)
    #   uri-parameter   =  transport-param / user-param / method-param / ttl-param
    #                      / maddr-param / lr-param / other-param
    #   other-param     =  pname [ "=" pvalue ]
    #   pname  =  1*paramchar ;  pvalue  =  1*paramchar
    @classmethod
    def parse(cls, text):
        """Parse ``text``; ParseError(416) for a scheme other than sip/sips/tel, ParseError(400)
        when malformed."""
        known = _parsed_get(text)
        if known is not None:      # parsed before: a new URI of the same parts
            u = cls.__new__(cls)
            (u.scheme, u._scheme_raw, u.user, u.password, u.headers, params, u._host_raw,
             u.host, u._port_raw, u.port) = known
            u.params = list(params)
            return u
        # the same URI with other parameters (a Route's ";ftag=", a Contact's ";expires="):
        # its part before the first ";" parsed before, only the parameters are new.  Only
        # when that ";" is not in the user part (no "@" after it) and there are no headers
        # (a "?" anywhere: the text before it would be cut elsewhere).
        cut = text.find(";") if ";" in text else -1
        if cut > 0 and "?" not in text and "@" not in text[cut:]:
            known = _parsed_get(text[:cut])
            if known is not None and not known[_PARAMS]:
                params = _parse_uri_params(text[cut + 1:], text)
                u = cls.__new__(cls)
                (u.scheme, u._scheme_raw, u.user, u.password, u.headers, _, u._host_raw,
                 u.host, u._port_raw, u.port) = known
                u.params = params
                _PARSED.put(text, _parts_of(u, tuple(params)))
                return u
        scheme_raw, colon, rest = text.partition(":")
        if not colon:
            scheme_raw = ""
        scheme = scheme_raw if scheme_raw == "sip" else scheme_raw.lower()
        if scheme != "sip" and scheme != "sips":
            return cls._parse_other(text, scheme_raw, scheme, rest)
        u = cls.__new__(cls)
        u.scheme = scheme
        u._scheme_raw = scheme_raw
        # userinfo ends at "@"; user may hold ";", "?", "," and "/" (user-unreserved)
        userinfo, at, hostpart = rest.partition("@")
        if at:
            rest = hostpart
            user, password = _checked_userinfo(userinfo, text)
        else:
            user = password = None
        u.user = user
        u.password = password
        if "?" in rest:
            rest, q, headers = rest.partition("?")
            _check_headers(headers, text)
        else:
            headers = None
        u.headers = headers
        if ";" in rest:
            hostport, semi, param_part = rest.partition(";")
            u.params = _parse_uri_params(param_part, text)
        else:
            hostport = rest
            u.params = []
        host, port = _split_hostport(hostport, text)
        u._host_raw = host
        u.host = host.lower()
        u._port_raw = port
        if port is None:
            u.port = None
        else:
            number = PORTS.get(port)
            u.port = number if number is not None else parse_port(port)
        _remember(text, cut, u)
        return u

    @classmethod
    def _parse_other(cls, text, scheme_raw, scheme, rest):
        """A URI of a scheme other than sip and sips: tel, else ParseError (416 for a
        well-formed scheme, 400 for none)."""
        if scheme == "tel":
            return cls._parse_tel(text, scheme_raw)
        if is_scheme(scheme_raw) and rest:
            raise ParseError(f"unsupported URI scheme {scheme_raw[:40]!r}", 416)
        raise ParseError(f"malformed URI {text[:60]!r}")

    # RFC 3966 3
    #   telephone-uri  =  "tel:" telephone-subscriber
    #   telephone-subscriber  =  global-number / local-number
    #   global-number  =  global-number-digits *par
    #   par  =  parameter / extension / isdn-subaddress
    #   parameter  =  ";" pname ["=" pvalue ]
    @classmethod
    def _parse_tel(cls, text, scheme_raw):
        rest = text[len(scheme_raw) + 1:]
        semi = rest.find(";")
        number = rest if semi < 0 else rest[:semi]
        if not number or number.strip(_TEL_CHARS) or "?" in rest:
            raise ParseError(f"malformed tel URI {text[:60]!r}")
        u = cls.__new__(cls)
        u.scheme = "tel"
        u._scheme_raw = scheme_raw
        u.user = number
        u.password = None
        u.host = u._host_raw = ""
        u.port = u._port_raw = None
        u.params = [] if semi < 0 else _parse_uri_params(rest[semi + 1:], text)
        u.headers = None
        return u

    def __str__(self):
        scheme = self._scheme_raw
        if scheme is None or scheme.lower() != self.scheme:
            scheme = self.scheme
        if self.scheme == "tel":
            return scheme + ":" + (self.user or "") + params_text(self.params)
        parts = [scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":")
                parts.append(self.password)
            parts.append("@")
        host = self._host_raw
        parts.append(host if host is not None and host.lower() == self.host else self.host)
        if self.port is not None:
            p = self._port_raw
            parts.append(":")
            parts.append(p if p is not None and p.isdecimal() and int(p) == self.port
                         else str(self.port))
        if self.params:
            parts.append(params_text(self.params))
        if self.headers is not None:
            parts.append("?")
            parts.append(self.headers)
        return "".join(parts)

    def __repr__(self):
        return f"URI({str(self)!r})"

    def copy(self):
        u = URI.__new__(URI)
        u.scheme = self.scheme
        u.user = self.user
        u.password = self.password
        u.host = self.host
        u.port = self.port
        u.params = list(self.params)
        u.headers = self.headers
        u._scheme_raw = self._scheme_raw
        u._host_raw = self._host_raw
        u._port_raw = self._port_raw
        return u

    # -- parameters ---------------------------------------------------------------------------
    def param(self, name):
        """Value of uri-parameter ``name`` (any case; escaped names match too), None if absent
        or valueless -- use ``has_param`` to tell those apart."""
        i = find_param(self.params, name.lower())
        return None if i < 0 else self.params[i][1]

    def has_param(self, name):
        return find_param(self.params, name.lower()) >= 0

    def set_param(self, name, value=None):
        """Set (replace in place, or append) uri-parameter ``name``; ``value`` None: a flag."""
        set_param(self.params, name, value)

    def remove_param(self, name):
        """Remove uri-parameter ``name``; return how many occurrences were removed."""
        return remove_param(self.params, name)

    @property
    def transport(self):
        """The ``transport`` parameter lower-cased, or None."""
        t = self.param("transport")
        return t.lower() if t else None

    @property
    def maddr(self):
        return self.param("maddr")

    @property
    def lr(self):
        """True when the ``lr`` parameter is present (RFC 3261 16.4 loose routing)."""
        return self.has_param("lr")

    def host_port(self):
        """``host:port``, or ``host`` when the URI has no port."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    # -- comparison ---------------------------------------------------------------------------
    def equals(self, other):
        """RFC 3261 19.1.4 URI equality (``other`` a URI or a URI string).

        userinfo compares case-sensitively after unescaping; host, parameter names and values
        case-insensitively; a port written or not, or a user/ttl/method/maddr/transport
        parameter present in only one URI makes them differ; other parameters present in only
        one URI are ignored; headers must all be present in both."""
        if not isinstance(other, URI):
            try:
                other = URI.parse(other)
            except ParseError:
                return False
        if self.scheme != other.scheme:
            return False
        if self.scheme == "tel":
            # RFC 3966 4: visual separators do not count; the number is case-insensitive
            a = (self.user or "").translate(_TEL_SEPARATORS).lower()
            b = (other.user or "").translate(_TEL_SEPARATORS).lower()
            return a == b and _norm_params(self.params) == _norm_params(other.params)
        if (_unescape_opt(self.user) != _unescape_opt(other.user)
                or _unescape_opt(self.password) != _unescape_opt(other.password)
                or self.host != other.host or self.port != other.port):
            return False
        mine = _norm_params(self.params)
        theirs = _norm_params(other.params)
        for name, value in mine.items():
            if name in theirs:
                if theirs[name] != value:
                    return False
            elif name in _MUST_MATCH:
                return False
        for name in theirs:
            if name in _MUST_MATCH and name not in mine:
                return False
        return _norm_headers(self.headers) == _norm_headers(other.headers)


def _remember(text, cut, u):
    """Keep the parts of ``u``, just parsed from ``text``, in ``_PARSED`` for the next time
    ``text`` comes; and under the text before its parameters (``cut``: the first ";" of
    ``text``), for the next URI that differs from it only in them."""
    _PARSED.put(text, _parts_of(u, tuple(u.params)))
    if cut > 0 and u.params and u.headers is None and "@" not in text[cut:]:
        # (see URI.parse; ``cut`` is after the userinfo here)
        _PARSED.put(text[:cut], _parts_of(u, ()))


def _parts_of(u, params):
    """What ``_PARSED`` keeps of the sip/sips URI ``u`` (``_PARTS_FIELDS``), with the
    parameters ``params``."""
    return (u.scheme, u._scheme_raw, u.user, u.password, u.headers, params, u._host_raw,
            u.host, u._port_raw, u.port)


def _check_headers(headers, text):
    """RFC 3261 25.1 headers (the text after "?") of the URI ``text``; ParseError if bad."""
    if headers.strip(URI_HEADERS_CHARS) or not check_escapes(headers):
        raise ParseError(f"bad headers in URI {text[:60]!r}")


def _checked_userinfo(userinfo, text):
    """``(user, password)`` of the userinfo of the URI ``text`` (password None when absent);
    ParseError when either has a character RFC 3261 25.1 does not allow or a bad escape."""
    user, c, password = userinfo.partition(":")
    if c:
        if password.strip(PASSWORD_CHARS) or ("%" in password and not check_escapes(password)):
            raise ParseError(f"bad password in URI {text[:60]!r}")
    else:
        password = None
    if not (user.isalnum() and user.isascii()) and (
            not user or user.strip(USER_CHARS) or ("%" in user and not check_escapes(user))):
        raise ParseError(f"bad user part in URI {text[:60]!r}")
    return user, password


def _split_hostport(hostport, text):
    """``(host as written, port text or None)`` of the hostport of the URI ``text``; IPv6
    with its brackets; ParseError for a malformed host."""
    if hostport[:1] == "[":
        rb = hostport.find("]") + 1
        host = hostport[:rb] if rb else hostport
        after = hostport[rb:] if rb else ""
        if not is_host(host) or (after and after[0] != ":"):
            raise ParseError(f"bad host in URI {text[:60]!r}")
        return host, (after[1:] if after else None)
    host, colon, port = hostport.partition(":")
    if not host or host.strip(HOSTNAME_CHARS):      # is_host, for a hostname/IPv4
        raise ParseError(f"bad host in URI {text[:60]!r}")
    return host, (port if colon else None)


def _parse_uri_params(text, uri_text):
    params = []
    escapes = "%" in text       # else no escape to check
    for p in text.split(";"):
        name, eq, value = p.partition("=")
        if not eq:
            value = None
        elif not (value.isalnum() and value.isascii()) and (
                value.strip(PARAM_CHARS) or (escapes and not check_escapes(value))):
            raise ParseError(f"bad parameter in URI {uri_text[:60]!r}")
        if name not in USUAL_PARAMS and (
                not name or name.strip(PARAM_CHARS) or (escapes and not check_escapes(name))):
            raise ParseError(f"bad parameter in URI {uri_text[:60]!r}")
        params.append((name, value))
    return params


def _unescape_opt(s):
    return None if s is None else unescape(s)


def _norm_params(params):
    """{unescaped lower name: unescaped lower value}; the first occurrence of a name wins."""
    out = {}
    for n, v in params:
        n = unescape(n).lower()
        if n not in out:
            out[n] = None if v is None else unescape(v).lower()
    return out


def _norm_headers(headers):
    if not headers:
        return {}
    out = {}
    for h in headers.split("&"):
        n, _, v = h.partition("=")
        out[unescape(n).lower()] = unescape(v)
    return out
