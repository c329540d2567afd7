"""bench/silo.py runs and its figure meets the target: <= 1 kB per stored message beside its
body (tracemalloc, deterministic)."""

from bench import silo


def test_a_stored_message_costs_under_1_kb_beside_its_body():
    result = silo.run(200, 10)
    assert result["messages"] == 200
    assert 0 < result["bytes_per_message_beside_body"] <= 1024, result
