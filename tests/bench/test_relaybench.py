"""bench/relaybench.py stays working: the whole bench at a tiny size (2 calls, 1 s per relay)
against the real serlite and a real rtpengine (userspace), and its ng protocol's bencode.
The figures themselves are the bench's (bench/RESULTS.md), not asserted here: only that every
packet went through each relay, that the sessions were there and are gone, and that the
table is printed."""

import datetime
import json
import subprocess
import sys
from pathlib import Path

from bench import relaybench, suite

REPO = Path(__file__).resolve().parents[2]


def test_bencode_round_trip():
    value = {"command": "offer", "sdp": "v=0\r\n", "flags": ["a", "b"], "n": -3}
    data = relaybench.bencode(value)
    assert data == b"d7:command5:offer5:flagsl1:a1:be1:ni-3e3:sdp5:v=0\r\ne"
    assert relaybench.bdecode(data) == (value, len(data))


def test_two_calls_for_a_second_through_serlite_and_rtpengine(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.relaybench", "--calls", "2", "--secs",
                          "1", "--baseline-secs", "0.5", "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout)
    assert res["sessions_open"] == {"serlite": 2, "rtpengine": 2}
    assert res["sessions_after"] == {"serlite": 0, "rtpengine": 0}
    for name in ("baseline", "serlite", "rtpengine"):
        phase = res["phases"][name]
        # 4 streams at 50/s: 200 packets in 1 s (100 in the baseline's 0.5 s), all through
        want = 200 if name != "baseline" else 100
        assert abs(phase["sent"] - want) <= 4, phase
        assert phase["received"] == phase["sent"] and phase["lost"] == 0, phase
        assert None not in phase["delay_us"] and phase["delay_us"][0] > 0, phase
    for name in ("serlite", "rtpengine"):
        assert res["phases"][name]["cpu_per_1000"] is not None
        assert res["memory"][name]["hwm_kb"] >= res["memory"][name]["idle_kb"] > 0
    text = relaybench.table(res)
    assert "| serlite | " in text and "| rtpengine | " in text and "MIPS core" in text
    # bench/run --relay-only: its section into RESULTS.md, in place of the last one's
    res["command"] = "python3 -m bench.relaybench --calls 2"
    results = tmp_path / "RESULTS.md"
    results.write_text("# serlite benchmark results\n\n## Overload (serlite)\n\nx\n\n"
                       "## Profile (serlite under cProfile)\n\ny\n")
    when = datetime.datetime(2026, 12, 8, 1, 0)
    suite.splice_relay(results, res, when)
    suite.splice_relay(results, res, when)
    out = results.read_text()
    assert out.count(suite.RELAY_HEADING) == 1 and out.count("| serlite | ") == 1, out
    assert out.index("## Overload") < out.index(suite.RELAY_HEADING) < out.index("## Profile")
    assert res["workdir"] not in out and "$WORK" in out
