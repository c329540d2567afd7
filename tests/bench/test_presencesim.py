"""bench/presencesim.py stays working, and a subscription stays within its budget: at most
1 kB of Python heap each (the issue's target; 10 000 measured in docs/architecture.md)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_subscription_takes_at_most_a_kilobyte():
    out = subprocess.run([sys.executable, "bench/presencesim.py", "2000"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout)
    assert res["subscriptions"] == 2000 and res["watchers_per_publish"] == 20
    assert 300 < res["bytes_per_subscription"] <= 1024, res
    assert res["bytes_per_publication"] <= 2048, res
