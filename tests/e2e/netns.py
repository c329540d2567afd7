"""A router between "the Internet" and "the LAN", in network namespaces the test creates.

Three namespaces, joined by veth pairs made directly inside them (no interface of this
machine is touched, and nothing is ever routed to a real network):

    internet  192.0.2.2/24, 198.51.100.1-N/24 (a pool of attackers), 198.18.0.0/15 local
       |                     (AnyIP: every address of the RFC 2544 range is local there)
    router    wan 192.0.2.1/24 (default route via 192.0.2.2), lan 192.168.77.1/24,
       |      ip_forward=1, nftables masquerade on wan (as OpenWrt's firewall4 does)
    lan       192.168.77.2/24, default route via 192.168.77.1

``Net(phones=True)`` adds what calls between homes need (tests/e2e/test_audio.py):

    router    br-lan (a bridge, as OpenWrt's) holds 192.168.77.1; its ports: lan, lan2
    lan2      a second LAN phone, 192.168.77.3/24, default route via 192.168.77.1
    internet  a WAN phone, 192.0.2.10 (public, no NAT); forwards to the second home
       |      uplink2 203.0.113.1/24 (RFC 5737 TEST-NET-3)
    home2     another house's router: wan 203.0.113.2/24 (default via 203.0.113.1),
       |      lan 192.168.1.1/24, nftables masquerade on wan
    home2lan  the phone behind that NAT, 192.168.1.2/24, default route via 192.168.1.1

``Net(phones=True, ipv6=True)`` adds IPv6 (no NAT66, as OpenWrt with a delegated prefix):

    router    br-lan 2001:db8:77::1/64, wan 2001:db8:2::1/64 (default via 2001:db8:2::2),
              forwarding; firewall4's rule for IPv6 from the WAN: only what answers the LAN
              (ct state established,related) is forwarded, the rest dropped (counted)
    lan, lan2 2001:db8:77::2/64, ::3/64, default via 2001:db8:77::1
    internet  2001:db8:2::2/64 and the WAN phone's 2001:db8:2::10/64; the LAN /64 via the router

serlite runs in the router namespace as the init script runs it (``python3 -m serlite.uci``
on a UCI file, then the server on the generated config, listening on the LAN and WAN
addresses).  Attackers run in the internet namespace (``ip netns exec``), and the test's own
sockets are opened inside a namespace with setns(2) (``Net.inside``) so that the harness's
raw UDP peers work unchanged.

Names carry the pid of the test process ("slt<pid>x<hex>-router"): a namespace left behind by
a run whose process is gone is removed (and reported) before new ones are made.
"""

import contextlib
import ctypes
import os
import re
import secrets
import subprocess
import time

NS_PREFIX = "slt"
CLONE_NEWNET = 0x40000000
RUN_NETNS = "/run/netns"

WAN_NET = "192.0.2.0/24"        # RFC 5737 TEST-NET-1: the router's WAN and its gateway
ROUTER_WAN = "192.0.2.1"
INTERNET = "192.0.2.2"
POOL = "198.51.100"             # RFC 5737 TEST-NET-2: a pool of attacking sources
FLOOD_NET = "198.18.0.0/15"     # RFC 2544 benchmarking range: 131072 sources for the flood
ROUTER_LAN = "192.168.77.1"
LAN_PHONE = "192.168.77.2"
LAN_NET = "192.168.77.0/24"
LAN_PHONE2 = "192.168.77.3"     # Net(phones=True): the second phone of the house (lan2)
WAN_PHONE = "192.0.2.10"        # ... a phone on the Internet, not behind any NAT
HOME2_GATEWAY = "203.0.113.1"   # ... the Internet's side of the second home's uplink
HOME2_WAN = "203.0.113.2"       # ... the second home's router: its public address
HOME2_LAN = "192.168.1.1"       # ... and its LAN address
HOME2_NET = "192.168.1.0/24"
HOME2_PHONE = "192.168.1.2"     # ... the phone behind the second home's NAT
# Net(phones=True, ipv6=True): IPv6 beside, from the documentation prefix 2001:db8::/32 (RFC
# 3849); no NAT66: the LAN's addresses are global, the router forwards them, and its firewall
# (as OpenWrt's firewall4) lets in from the WAN only what answers the LAN
LAN6_NET = "2001:db8:77::/64"
ROUTER_LAN6 = "2001:db8:77::1"  # on br-lan
LAN6_PHONE = "2001:db8:77::2"
LAN6_PHONE2 = "2001:db8:77::3"
WAN6_NET = "2001:db8:2::/64"
ROUTER_WAN6 = "2001:db8:2::1"
INTERNET6 = "2001:db8:2::2"     # the router's IPv6 gateway
WAN6_PHONE = "2001:db8:2::10"   # the WAN phone's IPv6 address

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(AssertionError):
    """A namespace, link or address could not be made or removed."""


def run(*cmd, check=True, timeout=10, input=None):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(map(str, cmd))}: exit {proc.returncode}: "
                         f"{proc.stderr.strip()}")
    return proc


def namespaces():
    out = run("ip", "netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers():
    """Delete the namespaces of earlier runs whose test process is gone; their names."""
    removed = []
    for ns in namespaces():
        m = re.fullmatch(rf"{NS_PREFIX}(\d+)x[0-9a-f]+-\w+", ns)
        if m and not _pid_alive(int(m.group(1))):
            _kill_inside(ns)
            run("ip", "netns", "del", ns, check=False)
            removed.append(ns)
    return removed


def _kill_inside(ns):
    """Processes still running in ``ns`` (a server of a crashed run): SIGKILL, by their pid."""
    out = run("ip", "netns", "pids", ns, check=False).stdout
    for word in out.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(word), 9)


def udp_sockets(pid):
    """The local addresses ("ip:port") of the UDP sockets process ``pid`` holds, as its own
    namespace sees them: the inodes of its socket fds found in its /proc/PID/net/udp{,6}.
    (A relay's sockets are counted this way: after BYE they must be gone.)"""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table in ("udp", "udp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[9] in inodes:
                    found.append(_proc_address(fields[1]))
    return sorted(found)


def _proc_address(text):
    """/proc/net/udp's "0100A8C0:13C4" as "192.168.0.1:5060" (IPv6 as hex words)."""
    hexip, hexport = text.split(":")
    port = int(hexport, 16)
    if len(hexip) == 8:
        return f"{'.'.join(str(b) for b in bytes.fromhex(hexip)[::-1])}:{port}"
    words = [bytes.fromhex(hexip[i:i + 8])[::-1].hex() for i in range(0, 32, 8)]
    return f"[{''.join(words)}]:{port}"


class Net:
    """The three namespaces and their links; ``close()`` removes them all (idempotent)."""

    def __init__(self, pool_size=12, phones=False, ipv6=False):
        self.leftovers = remove_leftovers()
        self.run_id = f"{NS_PREFIX}{os.getpid()}x{secrets.token_hex(2)}"
        self.router = f"{self.run_id}-router"
        self.internet = f"{self.run_id}-internet"
        self.lan = f"{self.run_id}-lan"
        self.phones = phones
        self.ipv6 = ipv6
        self.lan2 = f"{self.run_id}-lan2" if phones else None
        self.home2 = f"{self.run_id}-home2" if phones else None
        self.home2lan = f"{self.run_id}-home2lan" if phones else None
        self.pool = [f"{POOL}.{i}" for i in range(1, pool_size + 1)]
        self.made = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _ip(self, ns, *args):
        return run("ip", "-n", ns, *args)

    def _no_dad(self, ns):
        """ipv6: links made in ``ns`` from now on skip duplicate address detection: their
        link-local addresses (neighbour discovery's, a router's next hop) are usable at once
        rather than "tentative" for a second or two."""
        if self.ipv6:
            run("ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")

    def _build(self):
        for ns in (self.router, self.internet, self.lan):
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            self._ip(ns, "link", "set", "lo", "up")
            self._no_dad(ns)
        # veth pairs made inside the namespaces: short names (IFNAMSIZ 16) that are unique per
        # namespace, so two runs side by side never meet
        run("ip", "link", "add", "wan", "netns", self.router, "type", "veth",
            "peer", "name", "uplink", "netns", self.internet)
        run("ip", "link", "add", "lan", "netns", self.router, "type", "veth",
            "peer", "name", "eth0", "netns", self.lan)
        self._ip(self.router, "addr", "add", f"{ROUTER_WAN}/24", "dev", "wan")
        if self.phones:
            # OpenWrt's br-lan: the LAN phones are ports of a bridge that holds the address
            self._ip(self.router, "link", "add", "br-lan", "type", "bridge")
            self._ip(self.router, "link", "set", "lan", "master", "br-lan")
            self._ip(self.router, "link", "set", "br-lan", "up")
        self._ip(self.router, "addr", "add", f"{ROUTER_LAN}/24",
                 "dev", "br-lan" if self.phones else "lan")
        self._ip(self.internet, "addr", "add", f"{INTERNET}/24", "dev", "uplink")
        for address in self.pool:
            self._ip(self.internet, "addr", "add", f"{address}/24", "dev", "uplink")
        # AnyIP: the whole benchmarking range is local to the internet namespace, so a UDP
        # socket there can send from (IP_PKTINFO) and receive at any of its addresses
        self._ip(self.internet, "route", "add", "local", FLOOD_NET, "dev", "lo")
        self._ip(self.lan, "addr", "add", f"{LAN_PHONE}/24", "dev", "eth0")
        for ns, dev in ((self.router, "wan"), (self.router, "lan"), (self.internet, "uplink"),
                        (self.lan, "eth0")):
            self._ip(ns, "link", "set", dev, "up")
        self._ip(self.router, "route", "add", "default", "via", INTERNET)
        self._ip(self.lan, "route", "add", "default", "via", ROUTER_LAN)
        run("ip", "netns", "exec", self.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        # OpenWrt's firewall4: the LAN goes out masqueraded behind the WAN address
        run("ip", "netns", "exec", self.router, "nft", "-f", "-", input=(
            "table inet fw4 {\n"
            "  counter wan_sip { }\n"
            "  chain srcnat { type nat hook postrouting priority srcnat; policy accept;\n"
            f"    oifname \"wan\" ip saddr {LAN_NET} masquerade\n  }}\n"
            "  chain sip_in { type filter hook input priority filter; policy accept;\n"
            "    iifname \"wan\" udp dport 5060 counter name wan_sip\n  }\n"
            "}\n"))
        if self.phones:
            self._build_phones()
        if self.ipv6:
            self._build_ipv6()

    def _build_phones(self):
        """The second LAN phone, the WAN phone, and a second home behind its own NAT."""
        self._ip(self.internet, "addr", "add", f"{WAN_PHONE}/24", "dev", "uplink")
        # what the WAN phone sends to the router leaves from its own address, as a phone's
        # would: baresip binds its RTP socket to the wildcard, and the namespace's first
        # address (INTERNET) would otherwise be the source, which no relay lets in
        self._ip(self.internet, "route", "add", f"{ROUTER_WAN}/32", "dev", "uplink",
                 "src", WAN_PHONE)
        for ns in (self.lan2, self.home2, self.home2lan):
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            self._ip(ns, "link", "set", "lo", "up")
            self._no_dad(ns)
        # the second LAN phone has a namespace of its own (two phones in one namespace talk
        # over its loopback, from whichever of its addresses the kernel picks)
        run("ip", "link", "add", "lan2", "netns", self.router, "type", "veth",
            "peer", "name", "eth0", "netns", self.lan2)
        self._ip(self.router, "link", "set", "lan2", "master", "br-lan")
        self._ip(self.lan2, "addr", "add", f"{LAN_PHONE2}/24", "dev", "eth0")
        self._ip(self.router, "link", "set", "lan2", "up")
        self._ip(self.lan2, "link", "set", "eth0", "up")
        self._ip(self.lan2, "route", "add", "default", "via", ROUTER_LAN)
        run("ip", "link", "add", "uplink2", "netns", self.internet, "type", "veth",
            "peer", "name", "wan", "netns", self.home2)
        run("ip", "link", "add", "lan", "netns", self.home2, "type", "veth",
            "peer", "name", "eth0", "netns", self.home2lan)
        self._ip(self.internet, "addr", "add", f"{HOME2_GATEWAY}/24", "dev", "uplink2")
        self._ip(self.home2, "addr", "add", f"{HOME2_WAN}/24", "dev", "wan")
        self._ip(self.home2, "addr", "add", f"{HOME2_LAN}/24", "dev", "lan")
        self._ip(self.home2lan, "addr", "add", f"{HOME2_PHONE}/24", "dev", "eth0")
        for ns, dev in ((self.internet, "uplink2"), (self.home2, "wan"), (self.home2, "lan"),
                        (self.home2lan, "eth0")):
            self._ip(ns, "link", "set", dev, "up")
        self._ip(self.home2, "route", "add", "default", "via", HOME2_GATEWAY)
        self._ip(self.home2lan, "route", "add", "default", "via", HOME2_LAN)
        # the Internet carries packets between the two homes' public addresses
        run("ip", "netns", "exec", self.internet, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        run("ip", "netns", "exec", self.home2, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        run("ip", "netns", "exec", self.home2, "nft", "-f", "-", input=(
            "table inet fw4 {\n"
            "  chain srcnat { type nat hook postrouting priority srcnat; policy accept;\n"
            f"    oifname \"wan\" ip saddr {HOME2_NET} masquerade\n  }}\n"
            "}\n"))

    def _build_ipv6(self):
        """IPv6 beside IPv4 (see the module's docstring); addresses without duplicate address
        detection (nodad: usable at once, and the test made every one of them)."""
        lan_dev = "br-lan" if self.phones else "lan"
        six = [(self.router, ROUTER_LAN6, lan_dev), (self.router, ROUTER_WAN6, "wan"),
               (self.internet, INTERNET6, "uplink"), (self.internet, WAN6_PHONE, "uplink"),
               (self.lan, LAN6_PHONE, "eth0")]
        if self.phones:
            six.append((self.lan2, LAN6_PHONE2, "eth0"))
        for ns, address, dev in six:
            self._ip(ns, "-6", "addr", "add", f"{address}/64", "dev", dev, "nodad")
        self._ip(self.router, "-6", "route", "add", "default", "via", INTERNET6)
        self._ip(self.internet, "-6", "route", "add", LAN6_NET, "via", ROUTER_WAN6)
        # the WAN phone sends from its own address (as for IPv4 above)
        self._ip(self.internet, "-6", "route", "add", f"{ROUTER_WAN6}/128", "dev", "uplink",
                 "src", WAN6_PHONE)
        for ns in ((self.lan, self.lan2) if self.phones else (self.lan,)):
            self._ip(ns, "-6", "route", "add", "default", "via", ROUTER_LAN6)
        run("ip", "netns", "exec", self.router, "sysctl", "-q", "-w",
            "net.ipv6.conf.all.forwarding=1")
        run("ip", "netns", "exec", self.router, "nft", "-f", "-", input=(
            "table inet fw4 {\n"
            "  counter wan6_dropped { }\n"
            "  chain forward { type filter hook forward priority filter; policy accept;\n"
            "    iifname \"wan\" meta nfproto ipv6 ct state established,related accept\n"
            "    iifname \"wan\" meta nfproto ipv6 counter name wan6_dropped drop\n  }\n"
            "}\n"))

    def wan6_dropped(self):
        """IPv6 packets from the WAN the router's firewall dropped (not answers to the LAN)."""
        out = run("ip", "netns", "exec", self.router, "nft", "list", "counter", "inet", "fw4",
                  "wan6_dropped").stdout
        m = re.search(r"packets (\d+)", out)
        if not m:
            raise NetnsError(f"no packet count in {out!r}")
        return int(m.group(1))

    def wan_sip_packets(self):
        """UDP packets to port 5060 that came in on the router's WAN (nft counter)."""
        out = run("ip", "netns", "exec", self.router, "nft", "list", "counter", "inet", "fw4",
                  "wan_sip").stdout
        m = re.search(r"packets (\d+)", out)
        if not m:
            raise NetnsError(f"no packet count in {out!r}")
        return int(m.group(1))

    def exec_args(self, ns):
        return ["ip", "netns", "exec", ns]

    @contextlib.contextmanager
    def inside(self, ns):
        """Sockets made within this block belong to ``ns`` (setns(2) on this thread)."""
        with open("/proc/thread-self/ns/net") as home, open(os.path.join(RUN_NETNS, ns)) as there:
            if _libc.setns(there.fileno(), CLONE_NEWNET) != 0:
                raise NetnsError(f"setns {ns}: {os.strerror(ctypes.get_errno())}")
            try:
                yield
            finally:
                if _libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                    raise NetnsError(f"setns back: {os.strerror(ctypes.get_errno())}")

    def close(self):
        for ns in reversed(self.made):
            _kill_inside(ns)
            run("ip", "netns", "del", ns, check=False)
        self.made = []
        deadline = time.monotonic() + 5
        while any(ns.startswith(self.run_id) for ns in namespaces()):
            if time.monotonic() > deadline:
                raise NetnsError(f"namespaces of {self.run_id} still there after ip netns del")
            time.sleep(0.05)
