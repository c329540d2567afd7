"""serlite.media.ports: even RTP ports, RTCP above, a bounded pool."""

import pytest

from serlite.media.ports import PortPool, PortsExhausted


def test_even_ports_in_range_until_exhausted_then_a_clear_error():
    pool = PortPool(10001, 10007)       # pairs 10002/3, 10004/5, 10006/7
    taken = [pool.take() for _ in range(3)]
    assert taken == [10002, 10004, 10006]
    with pytest.raises(PortsExhausted, match="no free RTP port in 10002-10007: all 3 pairs"):
        pool.take()
    pool.give(10004)
    assert pool.take() == 10004
    assert pool.size == 3


def test_a_port_given_back_is_reused_last_and_twice_given_is_ignored():
    pool = PortPool(20000, 20005)
    a = pool.take()
    pool.give(a)
    pool.give(a)
    pool.give(12345)
    assert [pool.take(), pool.take(), pool.take()] == [20002, 20004, 20000]
    with pytest.raises(PortsExhausted):
        pool.take()


def test_a_range_without_a_pair_is_refused():
    with pytest.raises(ValueError, match="no even/odd pair"):
        PortPool(10001, 10002)
