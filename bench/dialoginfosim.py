"""What busy lamps cost: CPU per call of pua_dialoginfo (a call marked with dialoginfo_set(),
its documents built and handed to presence), with nobody watching and with one watcher of
the callee (a NOTIFY per change, answered), beside the tracker alone; and the memory a call
in progress holds in pua_dialoginfo.

    python3 bench/dialoginfosim.py [CALLS] [ROUNDS]

bench/callsim.py's in-process calls (INVITE/180/200/ACK/BYE/200 through the seed config; the
caller is not local, the callee bob is: three documents a call, early, confirmed,
terminated).  Variants, each run ROUNDS times (the best kept), interleaved:
  tracker        seed + tm's dialog tracker with one listener that does nothing
  lamps          + presence and pua_dialoginfo, dialoginfo_set() on each new INVITE
  lamps-watched  + one dialog watcher of bob (each NOTIFY answered 200)
Prints one JSON line: us/call inside Core.receive, the differences to tracker, and the
bytes per call in progress (tracemalloc: 1000 confirmed calls of one party each).
"""
import gc
import json
import os
import re
import sys
import tempfile
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, ROOT)
import callsim  # noqa: E402


def config(tmp):
    seed = open(callsim.SEED).read()
    load = 'loadmodule "/usr/lib/ser/modules/registrar.so"\n'
    text = seed.replace(load, load + 'loadmodule "/usr/lib/ser/modules/presence.so"\n'
                        'loadmodule "/usr/lib/ser/modules/pua_dialoginfo.so"\n')
    text = text.replace("route {\n", 'route {\n    if (method == "SUBSCRIBE") '
                        '{ handle_subscribe(); exit; }\n    if (method == "INVITE" && '
                        '!has_totag()) { dialoginfo_set(); }\n', 1)
    path = os.path.join(tmp, "lamps.cfg")
    with open(path, "w") as f:
        f.write(text)
    return path


SUBSCRIBE = ("SUBSCRIBE sip:bob@127.0.0.1:5060 SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:7100;branch=z9hG4bK-sub1\r\n"
             "From: <sip:watcher@127.0.0.1:5060>;tag=w1\r\nTo: <sip:bob@127.0.0.1:5060>\r\n"
             "Call-ID: sub1\r\nCSeq: 1 SUBSCRIBE\r\nMax-Forwards: 70\r\n"
             "Contact: <sip:watcher@127.0.0.1:7100>\r\nEvent: dialog\r\nExpires: 3600\r\n"
             "Content-Length: 0\r\n\r\n").encode()


def answer_notifies(h, watcher):
    for ip, port, data in list(h.tr.sent):
        if port == 7100 and data.startswith(b"NOTIFY "):
            h.receive(callsim.resp_from(data, 200, b"OK", b"w1"), watcher)


def measure(cfg, calls, tracker=False, watched=False):
    h = callsim.Harness(cfg)
    if tracker:
        h.core.tm.dialog_tracker().subscribe(lambda dlg, old: None)
    watcher = h.source("127.0.0.1", 7100)
    if watched:
        h.tr.sent.clear()
        h.receive(SUBSCRIBE, watcher)
        answer_notifies(h, watcher)
    one = callsim.call_sim(h)

    def call(i):
        sent = []
        orig = h.tr.send

        def keep(proto, ip, port, data, local=None, conn=None):
            sent.append((ip, port, data))
            return orig(proto, ip, port, data, local, conn)
        h.tr.send = keep
        one(i)
        h.tr.send = orig
        if watched:
            h.tr.sent = sent
            answer_notifies(h, watcher)
            notifies = sum(1 for _, p, d in sent if p == 7100 and d.startswith(b"NOTIFY "))
            assert notifies == 3, notifies
    for i in range(50):
        call(f"w{i}")
    h.cpu = 0.0
    for i in range(calls):
        call(i)
        if i % 200 == 199:
            h.run_timers(0.1)
    h.stop()
    return h.cpu / calls * 1e6


def memory(n=1000):
    """Bytes per call in progress held by pua_dialoginfo's DialogInfo (the tracker's Dialog
    is the tracker's, measured by bench/accsim.py's neighbours)."""
    from serlite.dialog.tracker import DialogTracker
    from serlite.presence.dialoginfo import Call, DialogInfo
    tracker = DialogTracker(max_dialogs=n * 2)
    dialogs = [tracker.invite(f"{i:032x}@192.168.1.{i % 250}", f"{i:016x}",
                              f"sip:{100 + i}@192.168.1.1", f"sip:{5000 + i}@192.168.1.1", 0.0)
               for i in range(n)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    info = DialogInfo(max_calls=n * 2)
    for i, dlg in enumerate(dialogs):
        call = Call(dlg.call_id, dlg.from_tag, dlg.caller, dlg.callee,
                    caller_name=f"Phone {100 + i}", caller_target=f"sip:{100 + i}@192.168.1.23:5060",
                    caller_aor=dlg.caller, callee_aor=dlg.callee)
        info.mark(call, 0.0)
        info.changed(dlg, None)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(info) == n
    return round(used / n)


def main(argv):
    calls = int(argv[1]) if len(argv) > 1 else 1000
    rounds = int(argv[2]) if len(argv) > 2 else 5
    with tempfile.TemporaryDirectory() as tmp:
        lamps = config(tmp)
        variants = {"tracker": (callsim.SEED, True, False), "lamps": (lamps, False, False),
                    "lamps-watched": (lamps, False, True)}
        best = {name: float("inf") for name in variants}
        for _ in range(rounds):
            for name, (cfg, tracker, watched) in variants.items():
                best[name] = min(best[name], measure(cfg, calls, tracker, watched))
    out = {name: round(us, 1) for name, us in best.items()}
    out["delta_us"] = {name: round(us - best["tracker"], 1) for name, us in best.items()
                       if name != "tracker"}
    out["bytes_per_call_in_progress"] = memory()
    out["calls"], out["rounds"] = calls, rounds
    out["unit"] = "CPU us per call inside Core.receive (process_time)"
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
