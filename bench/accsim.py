"""What following calls costs: CPU per call of the dialog tracker, acc's log lines and the call
history, beside the same calls without them (bench/callsim.py's in-process calls through the
seed config: INVITE/180/200/ACK/BYE/200).

    python3 bench/accsim.py [CALLS] [ROUNDS]

Variants, each run ROUNDS times (the best kept), interleaved so that a busy machine hurts them
alike:
  seed           the seed config (tests/data/configs/valid/seed.cfg)
  acc-loaded     + loadmodule acc with no flag and no history: tm's hooks stay off
  tracker        seed + tm's dialog tracker with one listener that does nothing
  acc-log        + acc with log_flag/log_missed_flag/failed_transaction_flag set on every
                 request (2 lines a call, to /dev/null)
  acc-history    + acc's history_file (on tmpfs: the fsync's disk wait left out; the CPU of
                 the write and fsync calls is in)
Prints one JSON line: us/call inside Core.receive for each, and the differences to seed.
"""
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, ROOT)
import callsim  # noqa: E402

FLAGS = ('modparam("acc", "log_flag", 10)\nmodparam("acc", "log_missed_flag", 11)\n'
         'modparam("acc", "failed_transaction_flag", 12)\n')


def config(tmp, name, modparams, flags):
    seed = open(callsim.SEED).read()
    load = 'loadmodule "/usr/lib/ser/modules/registrar.so"\n'
    text = seed.replace(load, load + 'loadmodule "/usr/lib/ser/modules/acc.so"\n' + modparams)
    if flags:
        text = text.replace("route {\n", "route {\n    setflag(10); setflag(11); setflag(12);\n", 1)
    path = os.path.join(tmp, name + ".cfg")
    with open(path, "w") as f:
        f.write(text)
    return path


def measure(cfg, calls, tracker=False):
    h = callsim.Harness(cfg)
    if tracker:
        h.core.tm.dialog_tracker().subscribe(lambda dlg, old: None)
    one = callsim.call_sim(h)
    for i in range(50):
        one(f"w{i}")
    h.cpu = 0.0
    for i in range(calls):
        one(i)
        if i % 200 == 199:
            h.run_timers(0.1)
    h.stop()
    return h.cpu / calls * 1e6


def main(argv):
    calls = int(argv[1]) if len(argv) > 1 else 1000
    rounds = int(argv[2]) if len(argv) > 2 else 5
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    sys.stderr = open(os.devnull, "w")      # the acc lines
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory(dir=shm) as fast:
        variants = {
            "seed": (callsim.SEED, False),
            "acc-loaded": (config(tmp, "loaded", "", False), False),
            "tracker": (callsim.SEED, True),
            "acc-log": (config(tmp, "log", FLAGS, True), False),
            "acc-history": (config(tmp, "hist", FLAGS + 'modparam("acc", "history_file", '
                                   f'"{fast}/calls")\nmodparam("acc", "history_size", 100000)\n',
                                   True), False),
        }
        best = {name: float("inf") for name in variants}
        for _ in range(rounds):
            for name, (cfg, tracker) in variants.items():
                if name == "acc-history":
                    try:
                        os.unlink(os.path.join(fast, "calls"))
                    except FileNotFoundError:
                        pass
                best[name] = min(best[name], measure(cfg, calls, tracker))
    out = {name: round(us, 1) for name, us in best.items()}
    out["delta_us"] = {name: round(us - best["seed"], 1) for name, us in best.items()
                       if name != "seed"}
    out["calls"], out["rounds"] = calls, rounds
    out["unit"] = "CPU us per call inside Core.receive (process_time)"
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
