"""The ban table with a fake clock: the window, the ban and its doubling up to the cap, trusted
networks, the per-account alarm (once an hour, never a lock), bounds under a flood of
addresses, and the scanner user agents."""

import pytest

from serlite.security.bans import (ALARM_INTERVAL, BanTable, DEFAULT_SCANNER_AGENTS,
                                   is_scanner, normal_address, parse_agents, parse_networks)

IP = "203.0.113.5"


def fail(t, n, now, ip=IP, user="100", spacing=1.0, known=True):
    """``n`` failures; the ban made by the last one that made one (or None)."""
    ban = None
    for i in range(n):
        b, _ = t.failed(ip, user, now + i * spacing, known)
        ban = b or ban
    return ban


def test_fifth_failure_within_the_window_bans_for_ban_time():
    t = BanTable()
    assert fail(t, 4, 0.0) is None and not t.active
    ban, _ = t.failed(IP, "100", 10.0)
    assert ban is not None and IP in t.active
    assert (ban.until, ban.failures, ban.user, ban.offences) == (910.0, 5, "100", 1)
    assert t.banned(IP, 909.0) is ban
    assert t.banned(IP, 910.0) is None and IP not in t.active
    assert t.banned("203.0.113.6", 10.0) is None


def test_failures_spread_wider_than_the_window_do_not_ban():
    t = BanTable(failures=5, window=600)
    # 4 failures, then the window ends: the count starts again
    assert fail(t, 4, 0.0, spacing=100) is None
    assert fail(t, 4, 700.0, spacing=100) is None
    assert not t.active
    assert fail(t, 1, 1000.0) is not None      # the 5th of the window that began at 700


def test_unknown_users_count_too():
    t = BanTable(failures=3)
    assert fail(t, 3, 0.0, user="nobody", known=False) is not None


def test_repeat_offences_double_up_to_the_cap():
    t = BanTable(failures=1, ban_time=900, ban_time_max=3000)
    now, times = 0.0, []
    for _ in range(4):
        ban = fail(t, 1, now)
        times.append(ban.until - now)
        now = ban.until + 1
    assert times == [900, 1800, 3000, 3000]
    assert t.bans[IP].offences == 4


def test_offences_are_forgotten_ban_time_max_after_the_ban():
    t = BanTable(failures=1, ban_time=900, ban_time_max=3000)
    ban = fail(t, 1, 0.0)
    ban = fail(t, 1, ban.until + 3001)
    assert ban.offences == 1 and ban.until - ban.since == 900


def test_trusted_networks_are_never_banned():
    t = BanTable(failures=1, trusted=parse_networks("192.168.1.10, 10.0.0.0/8 fd00::/8"))
    for ip in ("192.168.1.10", "10.1.2.3", "fd00::5"):
        assert fail(t, 10, 0.0, ip=ip) is None
        assert t.ban(ip, 0.0, "manual") is None
    assert not t.active and not t.failures
    assert fail(t, 1, 0.0, ip="192.168.1.11") is not None


def test_bad_trusted_entry_is_named():
    with pytest.raises(ValueError, match="'10.0.0.1/8'"):
        parse_networks("192.168.1.10,10.0.0.1/8")
    with pytest.raises(ValueError, match="'lan'"):
        parse_networks("lan")


def test_ban_time_max_shorter_than_ban_time_is_refused():
    with pytest.raises(ValueError, match="ban_time_max"):
        BanTable(ban_time=900, ban_time_max=600)


def test_unban_lifts_and_forgets():
    t = BanTable(failures=1)
    fail(t, 1, 0.0)
    assert t.unban(IP) is True
    assert t.banned(IP, 1.0) is None and IP not in t.bans
    assert t.unban(IP) is False
    assert fail(t, 1, 2.0).offences == 1          # offences forgotten with the ban


def test_a_banned_source_failing_again_is_not_counted_twice():
    t = BanTable(failures=2)
    fail(t, 2, 0.0)
    assert fail(t, 5, 3.0) is None and t.bans[IP].offences == 1 and IP not in t.failures


def test_alarm_once_per_account_and_hour_never_a_ban_of_the_account():
    t = BanTable(failures=5, alarm_sources=3)
    alarms = []
    now = 0.0
    # a botnet: 40 addresses, 2 guesses each (under the ban), on one account, for two hours
    for i in range(40):
        for _ in range(2):
            _, a = t.failed(f"198.51.100.{i}", "100", now)
            alarms.append((now, a))
            now += 180.0 / 2
    raised = [when for when, a in alarms if a is not None]
    assert raised[0] == 4 * 90.0               # the 3rd address's first failure
    assert all(b - a >= ALARM_INTERVAL for a, b in zip(raised, raised[1:]))
    assert len(raised) == 2                     # 7200 s of guessing: two alarms
    assert not t.active                         # no address reached 5 failures
    assert [u for u, _ in t.alarms(now)] == ["100"]
    assert t.alarms(now + ALARM_INTERVAL + 1) == []


def test_no_alarm_for_one_source_or_for_unknown_users():
    t = BanTable(failures=100)
    assert all(t.failed(IP, "100", float(i))[1] is None for i in range(50))
    assert all(t.failed(f"198.51.100.{i}", "ghost", 0.0, known=False)[1] is None
               for i in range(10))


def test_flood_of_spoofed_addresses_stays_bounded_oldest_first():
    t = BanTable(failures=1, max_bans=100)
    for i in range(10000):
        t.failed(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "100", float(i))
    assert len(t.bans) == 100 and len(t.active) == 100
    assert "10.0.39.15" in t.active and "10.0.0.0" not in t.bans     # the newest kept
    t2 = BanTable(failures=5, max_bans=100)
    for i in range(10000):
        t2.failed(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "100", float(i))
    assert len(t2.failures) == 100 and not t2.active
    assert len(t2.accounts) == 1 and len(t2.accounts["100"].sources) <= 64


def test_expire_moves_ended_bans_out_and_forgets_old_offences():
    t = BanTable(failures=1, ban_time=10, ban_time_max=100)
    fail(t, 1, 0.0)
    assert t.expire(5.0) == [] and IP in t.active
    assert t.expire(10.0) == [IP] and IP not in t.active and IP in t.bans
    t.expire(111.0)
    assert IP not in t.bans


def test_scanner_agents_any_case_substring():
    agents = parse_agents(",".join(DEFAULT_SCANNER_AGENTS))
    for ua in ("friendly-scanner", "Friendly-Scanner/1.0", "sipcli/v1.8", "VaxSIPUserAgent/3.1",
               "sipvicious", "pplsip"):
        assert is_scanner(ua, agents), ua
    for ua in ("baresip v2.0.0 (x86_64/linux)", "Asterisk PBX 18.0", "Yealink SIP-T46S",
               "kamailio (5.7)", "sipsak 0.9.8", "Linphone/5.0", None, ""):
        assert not is_scanner(ua, agents), ua
    assert parse_agents(" a , ,B ") == ("a", "b")


def test_normal_address():
    assert normal_address(" 203.0.113.5 ") == "203.0.113.5"
    assert normal_address("2001:DB8:0::1") == "2001:db8::1"
    with pytest.raises(ValueError, match="not an IP address"):
        normal_address("example.com")


def test_a_long_user_name_is_cut():
    t = BanTable(failures=1)
    ban, _ = t.failed(IP, "x" * 5000, 0.0)
    assert ban.user == "x" * 64
