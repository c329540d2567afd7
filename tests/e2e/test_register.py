"""serlite's registrar driven by sipp: register, query and remove bindings on every transport.

register.xml fails a call unless the 200 lists the contact just registered, query.xml unless
a REGISTER without Contact lists it, unregister.xml if the 200 to Expires: 0 still lists it.
"""

import pytest

from . import sipnet
from .sipnet import FAMILIES, LOOPBACK, V4

SEED = sipnet.SEED_CFG.read_text()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_register_query_unregister(ser, tmp_path, transport, family):
    server = ser(SEED, ipv6=family != V4)
    target = server.address(family)
    host = LOOPBACK[family]
    rows = [(f"user{i}", sipnet.contact_uri(f"user{i}", host, 7000 + i), transport, 600)
            for i in range(10)]
    for scenario in ("register.xml", "query.xml", "unregister.xml"):
        sipnet.run_bindings(target, rows, workdir=tmp_path, scenario=scenario,
                            transport=transport, timeout=10).assert_ok(len(rows))
    assert [sipnet.query_bindings(target, user) for user, *_ in rows] == [[]] * len(rows)
