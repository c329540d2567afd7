"""The host's network interfaces and their addresses, as the kernel reports them: IPv4 by
ioctl(SIOCGIFADDR/SIOCGIFNETMASK) per interface, IPv6 from /proc/net/if_inet6 (link-local
left out), the default route's devices from /proc/net/route and ipv6_route.  No process is
started and nothing outside python3-light is needed (pyroute2 would be, ip(8) a fork)."""

import socket

SIOCGIFADDR, SIOCGIFNETMASK = 0x8915, 0x891B


def names():
    try:
        return [name for _, name in socket.if_nameindex()]
    except OSError:
        return []


def addresses(devices=None):
    """(address, prefix length, device) of every interface, or of those in ``devices``."""
    if devices is None:
        devices = names()
    wanted = set(devices)
    return ([row for row in _ipv4(devices)] +
            [row for row in _ipv6() if row[2] in wanted])


def _ipv4(devices):
    try:
        import fcntl
        import struct
    except ImportError:
        return []
    rows = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in devices:
            req = struct.pack("256s", name.encode()[:15])
            try:
                addr = fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)[20:24]
                mask = fcntl.ioctl(s.fileno(), SIOCGIFNETMASK, req)[20:24]
            except OSError:                 # no IPv4 address on this interface
                continue
            prefix = bin(int.from_bytes(mask, "big")).count("1")
            rows.append((socket.inet_ntop(socket.AF_INET, addr), prefix, name))
    return rows


def _ipv6():
    """/proc/net/if_inet6: address, index, prefix length, scope, flags, device (all hex)."""
    rows = []
    try:
        with open("/proc/net/if_inet6") as f:
            lines = f.read().splitlines()
    except OSError:
        return rows
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or int(fields[3], 16) == 0x20:     # scope link
            continue
        try:
            address = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(fields[0]))
        except ValueError:
            continue
        rows.append((address, int(fields[2], 16), fields[5]))
    return rows


def default_route_devices():
    """The devices that hold a default route (IPv4 or IPv6)."""
    devices = set()
    try:
        with open("/proc/net/route") as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 8 and fields[1] == "00000000" and fields[7] == "00000000":
                    devices.add(fields[0])
    except OSError:
        pass
    try:
        with open("/proc/net/ipv6_route") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 10 and fields[0] == "0" * 32 and fields[1] == "00" \
                        and fields[9] != "lo":
                    devices.add(fields[9])
    except OSError:
        pass
    return devices
