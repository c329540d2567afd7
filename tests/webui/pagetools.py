"""Reading the status page in the tests: a small element tree from html.parser, and the page's
parts (badge, tables, forms, cards) by the ids serlite.control.page gives them."""

from html.parser import HTMLParser

VOID = {"meta", "link", "input", "br", "img", "hr", "col", "source", "wbr"}


class Element:
    def __init__(self, tag, attrs, parent=None):
        self.tag = tag
        self.attrs = dict(attrs)
        self.parent = parent
        self.children = []          # Elements and strings

    @property
    def text(self):
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def strings(self):
        for c in self.children:
            if isinstance(c, str):
                yield c
            else:
                yield from c.strings()

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Element):
                yield from c.iter()

    def find_all(self, tag=None, **attrs):
        return [e for e in self.iter() if (tag is None or e.tag == tag)
                and all(e.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())]

    def find(self, tag=None, **attrs):
        found = self.find_all(tag, **attrs)
        return found[0] if found else None

    def by_id(self, ident):
        return self.find(id=ident)


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        el = Element(tag, attrs, self.cur)
        self.cur.children.append(el)
        if tag not in VOID:
            self.cur = el

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Element(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        el = self.cur
        while el is not self.root and el.tag != tag:
            el = el.parent
        if el is not self.root:
            self.cur = el.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(html):
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


class Page:
    """The status page as the tests look at it."""

    def __init__(self, html):
        self.html = html
        self.root = parse(html)

    @property
    def badge(self):
        el = self.root.by_id("status")
        return el.text.strip() if el is not None else None

    @property
    def pid(self):
        el = self.root.by_id("pid")
        return int(el.text) if el is not None else None

    def notice(self):
        el = self.root.by_id("notice")
        return el.text.strip() if el is not None else None

    def rows(self, table_id):
        """Body rows of a table: lists of {label or column heading: text}."""
        table = self.root.by_id(table_id)
        if table is None:
            return []
        heads = [th.text.strip() for th in table.find("thead").find_all("th")]
        out = []
        for tr in table.find("tbody").find_all("tr"):
            cells = [c for c in tr.children if isinstance(c, Element) and c.tag in ("td", "th")]
            out.append({heads[i]: c.text.strip() for i, c in enumerate(cells)})
        return out

    def counts(self, row_id):
        """(received n, received bytes, sent n, sent bytes) of a messages row (req-OPTIONS,
        rep-2xx, rep-200)."""
        tr = self.root.by_id(row_id)
        if tr is None:
            return None
        a, b = tr.find_all("td")
        return (int(a.attrs["data-n"]), int(a.attrs["data-bytes"]),
                int(b.attrs["data-n"]), int(b.attrs["data-bytes"]))

    def forms(self):
        """{action value: {input name: value}} of the POST forms."""
        out = {}
        for form in self.root.find_all("form"):
            button = form.find("button")
            fields = {i.attrs.get("name"): i.attrs.get("value", "") for i in form.find_all("input")}
            out[button.attrs.get("value")] = dict(fields, _disabled="disabled" in button.attrs,
                                                  _method=form.attrs.get("method"),
                                                  _action=form.attrs.get("action"))
        return out

    def card(self, ident):
        el = self.root.by_id(ident)
        return " ".join(" ".join(el.strings()).split()) if el is not None else None
