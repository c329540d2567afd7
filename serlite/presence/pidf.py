"""Presence documents without an XML library (OpenWrt's python3-light has none): RFC 3863 PIDF
and RFC 4235 dialog-info bodies checked for being well formed with the expected root element,
several publishers' PIDF merged into one, and the few values the status page shows read out.

The merge is Kamailio presence_xml's: the newest publication's document is the base; the
top-level children (``<tuple>``, ``<person>``, ``<device>``, ``<note>``) of every publication
are concatenated under its root, newest first, and a ``<tuple>`` whose id an earlier (newer)
document already gave is left out.  A child copied from another document carries its root's
namespace declarations, so a prefix means the same in the merged document.

A document is text (str, decoded UTF-8).  ``check`` raises ``DocumentError`` with the offset.
No entity is expanded and no DOCTYPE accepted (no entity-expansion tricks), nesting is bounded.
"""

from __future__ import annotations

import re

PIDF_NS = "urn:ietf:params:xml:ns:pidf"
DIALOG_NS = "urn:ietf:params:xml:ns:dialog-info"
MAX_DEPTH = 32

# one markup item: comment, processing instruction, CDATA, DOCTYPE, or an element tag (end tag,
# start tag with its attributes, empty-element tag); a '<' that starts none of these is an error
_MARKUP = re.compile(
    r"<!--.*?-->|<\?.*?\?>|<!\[CDATA\[.*?\]\]>|<!DOCTYPE|"
    r"<(/?)([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)"
    r"((?:\s+[A-Za-z_][\w.\-:]*\s*=\s*(?:\"[^\"<]*\"|'[^'<]*'))*)\s*(/?)>|<", re.S)
_ATTR = re.compile(r"([A-Za-z_][\w.\-:]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_BASIC = re.compile(r"<(?:[\w.\-]+:)?basic\s*>\s*(open|closed)\s*<", re.I)
_DIALOG_STATE = re.compile(r"<(?:[\w.\-]+:)?state(?:\s[^>]*)?>\s*([a-z]+)\s*<", re.I)
_VERSION = re.compile(r"""(\sversion\s*=\s*)("[^"]*"|'[^']*')""")


class DocumentError(ValueError):
    """Not a well-formed document of the expected kind; ``offset`` where it went wrong."""

    def __init__(self, message, offset=0):
        super().__init__(f"{message} (at offset {offset})")
        self.offset = offset


class Document:
    """A checked document: its text, its root element's name and start tag's span, the
    namespace declarations of the root, and the top-level children as (start, end, local
    name, id attribute or None) spans of ``text``."""

    __slots__ = ("text", "root", "root_start", "root_tag_end", "root_close", "namespaces",
                 "children")

    def __init__(self, text, root, root_start, root_tag_end, root_close, namespaces, children):
        self.text = text
        self.root = root
        self.root_start = root_start
        self.root_tag_end = root_tag_end
        self.root_close = root_close
        self.namespaces = namespaces
        self.children = children


def _attrs(text):
    return {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _ATTR.finditer(text)}


def check(text, root_local, namespace):
    """The ``Document`` of ``text`` when it is one element ``root_local`` in ``namespace``
    (with any prefix), well formed; else DocumentError."""
    stack = []
    root = None
    children = []
    child_start = child_name = child_id = None
    pos = 0
    for m in _MARKUP.finditer(text):
        if root is not None and not stack and text[pos:m.start()].strip():
            raise DocumentError("text after the root element", pos)
        if root is None and text[pos:m.start()].strip():
            raise DocumentError("text before the root element", pos)
        pos = m.end()
        name = m.group(2)
        whole = m.group(0)
        if name is None:
            if whole == "<" or whole == "<!DOCTYPE":
                raise DocumentError("not XML markup" if whole == "<" else "DOCTYPE refused",
                                    m.start())
            if whole.startswith("<![CDATA[") and not stack:
                raise DocumentError("CDATA outside the root element", m.start())
            continue
        if m.group(1):                          # an end tag
            if m.group(3) or m.group(4):
                raise DocumentError("attributes in an end tag", m.start())
            if not stack or stack[-1] != name:
                raise DocumentError(f"</{name}> does not close "
                                    f"{'<' + stack[-1] + '>' if stack else 'anything'}",
                                    m.start())
            stack.pop()
            if len(stack) == 1:
                children.append((child_start, m.end(), child_name, child_id))
            elif not stack:
                root = (root[0], root[1], root[2], m.start(), root[4])
            continue
        empty = bool(m.group(4))
        if root is None:
            attrs = _attrs(m.group(3))
            prefix, _, local = name.rpartition(":")
            ns = attrs.get(f"xmlns:{prefix}" if prefix else "xmlns")
            if local != root_local or ns != namespace:
                raise DocumentError(f"the root element is not {root_local} in {namespace}",
                                    m.start())
            decls = {k: v for k, v in attrs.items() if k == "xmlns" or k.startswith("xmlns:")}
            root = (name, m.start(), m.end(), None, decls)
            if empty:
                root = (name, m.start(), m.end(), m.start(), decls)
                pos = m.end()
                continue
            stack.append(name)
            continue
        if not stack:
            raise DocumentError("a second root element", m.start())
        if len(stack) == 1:
            child_start, child_name = m.start(), name.rpartition(":")[2]
            child_id = _attrs(m.group(3)).get("id")
            if empty:
                children.append((child_start, m.end(), child_name, child_id))
                continue
        if empty:
            continue
        stack.append(name)
        if len(stack) > MAX_DEPTH:
            raise DocumentError(f"nested deeper than {MAX_DEPTH}", m.start())
    if root is None:
        raise DocumentError("no root element", 0)
    if stack:
        raise DocumentError(f"<{stack[-1]}> is not closed", len(text))
    if text[pos:].strip():
        raise DocumentError("text after the root element", pos)
    name, start, tag_end, close, decls = root
    if close == start:          # <presence .../>: no children, nothing to close
        close = None
    return Document(text, name, start, tag_end, close, decls, children)


def _with_decls(text, decls, base_decls):
    """A copied top-level element (``text``) with the namespace declarations of its own root
    that the base root does not make the same way, so its prefixes keep their meaning."""
    extra = "".join(f' {k}="{v}"' for k, v in decls.items()
                    if base_decls.get(k) != v and not re.search(rf"\s{re.escape(k)}\s*=",
                                                                text[:text.find(">")]))
    if not extra:
        return text
    m = re.match(r"<[^\s/>]+", text)
    return text[:m.end()] + extra + text[m.end():]


def merge(documents):
    """One PIDF from the checked ``documents`` (newest first): see the module's docstring."""
    base = documents[0]
    if len(documents) == 1:
        return base.text
    text = base.text
    seen = set()
    parts = []
    for doc in documents:
        for start, end, local, ident in doc.children:
            if local == "tuple" and ident is not None:
                if ident in seen:
                    continue
                seen.add(ident)
            piece = doc.text[start:end]
            if doc is not base:
                piece = _with_decls(piece, doc.namespaces, base.namespaces)
            parts.append(piece)
    head = text[:base.root_tag_end]
    if base.root_close is None:         # <presence .../>: open it
        head = head[:head.rstrip().rfind("/")].rstrip() + ">"
        tail = f"</{base.root}>" + text[base.root_tag_end:]
    else:
        tail = text[base.root_close:]
    return head + "".join(parts) + tail


def closed_document(entity):
    """The PIDF of a presentity nobody published for: one tuple, basic ``closed`` (RFC 3863),
    the same whether or not the user exists."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<presence xmlns="{PIDF_NS}" entity="{escape_attr(entity)}">'
            '<tuple id="serlite"><status><basic>closed</basic></status></tuple></presence>\n')


def empty_dialog_info(entity, version):
    """RFC 4235 full state with no dialog: the presentity is idle."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<dialog-info xmlns="{DIALOG_NS}" version="{version}" state="full" '
            f'entity="{escape_attr(entity)}"/>\n')


def with_version(text, version):
    """The dialog-info document ``text`` with its root's ``version`` set to ``version`` (RFC
    4235 4.1: counted per subscription, so each watcher's NOTIFYs number their own)."""
    start = text.find("<dialog-info")
    if start < 0:
        m = re.search(r"<[\w.\-]+:dialog-info", text)
        if m is None:
            return text
        start = m.start()
    end = text.find(">", start)
    tag = text[start:end]
    if _VERSION.search(tag):
        tag = _VERSION.sub(lambda m: f'{m.group(1)}"{version}"', tag, count=1)
    else:
        tag = tag.rstrip("/").rstrip() + f' version="{version}"' + ("/" if tag.endswith("/")
                                                                  else "")
    return text[:start] + tag + text[end:]


def basic_status(text):
    """``open`` when any tuple of the PIDF ``text`` is open, ``closed`` when all are closed,
    None when it says neither."""
    found = None
    for m in _BASIC.finditer(text):
        if m.group(1).lower() == "open":
            return "open"
        found = "closed"
    return found


_BUSY_ORDER = {"confirmed": 3, "early": 2, "proceeding": 1, "trying": 1}


def dialog_activity(text):
    """The most engaged state of the dialog-info ``text``'s dialogs: ``confirmed`` (on the
    phone), ``early`` (ringing), ``trying``/``proceeding``, or None (idle)."""
    best, rank = None, 0
    for m in _DIALOG_STATE.finditer(text):
        state = m.group(1).lower()
        r = _BUSY_ORDER.get(state, 0)
        if r > rank:
            best, rank = state, r
    return best


def escape_attr(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
            .replace(">", "&gt;"))
