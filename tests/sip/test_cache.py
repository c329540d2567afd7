"""BoundedCache: the parser's memos stay within their bound."""
from serlite.sip import headers, message, uri
from serlite.sip.cache import BoundedCache


def test_a_full_cache_is_emptied_before_the_next_entry():
    c = BoundedCache(3)
    for i in range(3):
        assert c.put(i, str(i)) == str(i)
    assert len(c) == 3
    c.put(3, "3")
    assert dict(c) == {3: "3"}
    c.make_room(1)
    c.make_room(2)          # 1 + 2 entries fit in 3
    assert dict(c) == {3: "3"}
    c.make_room(3)
    assert len(c) == 0


def test_every_memo_of_the_parser_is_bounded():
    for cache in (message._LINE_KEYS, message._CSEQS, message._REQUEST_LINES,
                  message._STATUS_LINES, headers._SENT, headers._NAME_ADDRS,
                  headers._NAME_ADDR_HEADS, uri._PARSED):
        assert isinstance(cache, BoundedCache) and 0 < cache.limit <= 512
    for i in range(3 * uri._PARSED.limit):
        uri.URI.parse(f"sip:u{i}@h{i}.example.com;lr")
    assert len(uri._PARSED) <= uri._PARSED.limit
