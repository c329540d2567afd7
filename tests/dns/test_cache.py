"""serlite.dns.cache: TTL clamps, negative answers, the size bound."""

from serlite.dns.cache import FAILED, NXDOMAIN, Cache, Negative


def test_entries_live_their_clamped_ttl():
    cache = Cache(min_ttl=10, max_ttl=100)
    cache.put("a", 1, 0, ("1.2.3.4",), now=1000)
    cache.put("b", 1, 10 ** 6, ("1.2.3.5",), now=1000)
    assert cache.get("a", 1, 1009.9) == ("1.2.3.4",)
    assert cache.get("a", 1, 1010) is None            # 0 clamped to 10
    assert cache.get("b", 1, 1099) == ("1.2.3.5",)
    assert cache.get("b", 1, 1100) is None            # a day clamped to 100
    assert len(cache) == 0                            # expired entries go when read


def test_negative_answers_soa_ttl_default_and_failures():
    cache = Cache(max_negative_ttl=60, default_negative_ttl=30, failure_ttl=5)
    cache.put_negative("x", 1, NXDOMAIN, "no such name", 3600, now=0)
    cache.put_negative("y", 1, NXDOMAIN, "no such name", None, now=0)
    cache.put_negative("z", 1, FAILED, "silent", None, now=0)
    cache.put_negative("w", 1, NXDOMAIN, "no such name", 0, now=0)
    assert isinstance(cache.get("x", 1, 59), Negative) and cache.get("x", 1, 60) is None
    assert cache.get("y", 1, 29).kind == NXDOMAIN and cache.get("y", 1, 30) is None
    assert cache.get("z", 1, 4.9).kind == FAILED and cache.get("z", 1, 5) is None
    assert cache.get("w", 1, 0) is None


def test_bounded_oldest_out_and_a_refreshed_entry_is_young_again():
    cache = Cache(max_entries=3)
    for i, name in enumerate("abc"):
        cache.put(name, 1, 60, (str(i),), now=0)
    cache.put("a", 1, 60, ("again",), now=1)          # a is now the youngest
    cache.put("d", 1, 60, ("3",), now=2)              # b, the oldest, goes
    assert len(cache) == 3
    assert cache.get("b", 1, 3) is None
    assert cache.get("a", 1, 3) == ("again",) and cache.get("c", 1, 3) == ("2",)


def test_a_zero_size_cache_keeps_nothing():
    cache = Cache(max_entries=0)
    cache.put("a", 1, 60, ("x",), now=0)
    cache.put_negative("b", 1, NXDOMAIN, "-", 60, now=0)
    assert len(cache) == 0
