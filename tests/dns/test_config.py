"""serlite.dns.config: resolv.conf and hosts text."""

from serlite.dns.config import parse_hosts, parse_resolv_conf


def test_resolv_conf_servers_in_order_options_clamped_and_junk_skipped():
    conf = parse_resolv_conf("# comment\nsearch lan home\nnameserver 192.168.1.1\n"
                             "nameserver fe80::1%br-lan\nnameserver not-an-ip\n"
                             "options ndots:2 timeout:0 attempts:9 rotate\n"
                             "nameserver 10.0.0.1\nnameserver 10.0.0.2\nbogus line\n", port=5353)
    assert conf.nameservers == [("192.168.1.1", 5353), ("fe80::1", 5353), ("10.0.0.1", 5353)]
    assert conf.timeout == 1.0 and conf.attempts == 5 and conf.ndots == 2
    assert conf.search == ["lan", "home"]


def test_resolv_conf_without_servers_means_the_local_one():
    conf = parse_resolv_conf("")
    assert conf.nameservers == [("127.0.0.1", 53)] and conf.timeout == 2.0
    assert conf.attempts == 2


def test_hosts_names_and_aliases_both_families_first_line_first():
    table = parse_hosts("127.0.0.1 localhost\n::1 localhost ip6-localhost\n"
                        "192.168.1.10 Provider.example provider # trunk\n"
                        "192.168.1.11 provider.example.\nbad-ip name\n")
    assert table["localhost"] == (("127.0.0.1",), ("::1",))
    assert table["provider.example"] == (("192.168.1.10", "192.168.1.11"), ())
    assert table["provider"] == (("192.168.1.10",), ())
    assert "name" not in table
