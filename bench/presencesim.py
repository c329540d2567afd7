"""The presence module's cost, in process: bytes per subscription (tracemalloc over N
subscriptions made by real SUBSCRIBEs through ``handle_subscribe``: the Subscription, its
strings, the tables' entries, the expiry heap's), CPU per SUBSCRIBE (parse, answer, the
first NOTIFY built; tm's sending replaced by nothing), CPU per PUBLISH that notifies W
watchers, and bytes per publication.

    python3 bench/presencesim.py [N]      (default 10000 subscriptions)

The house: N/100 phones, each watching 50 users' presence and dialog state (busy lamps).
One JSON line.
"""
import gc
import json
import os
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from serlite.loop import Loop  # noqa: E402
from serlite.modules import presence as presence_module  # noqa: E402
from serlite.proxy.context import Context, Source  # noqa: E402
from serlite.sip.message import parse  # noqa: E402

PIDF = ('<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'entity="sip:{user}@192.168.1.1"><tuple id="t{user}"><status><basic>open</basic>'
        '</status></tuple></presence>\n')


class Listener:
    name = "udp:192.168.1.1:5060"


class Tm:
    sent = 0

    def reply(self, ctx, status, reason, headers=()):
        self.last = status

    def t_uac(self, method, ruri, rest, hop, callback):
        self.sent += 1


class Core:
    def __init__(self):
        self.loop = Loop()
        self.tm = Tm()
        self.clock = 1000.0
        self.mods = {"tm": self.tm}

    def now(self):
        return self.clock

    def wall(self):
        return 1.8e9 + self.clock

    def module(self, name):
        return self.mods.get(name)

    def local_to_tag(self, msg):
        return "5e41c0de" + "%08x" % (hash(msg.call_id) & 0xffffffff)


def subscribe_bytes(phone, target, event, i):
    ip = f"192.168.1.{10 + phone % 200}"
    return (f"SUBSCRIBE sip:{target}@192.168.1.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {ip}:5060;branch=z9hG4bK{i:08x}a1b2;rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{phone}@192.168.1.1>;tag={i:010x}\r\n"
            f"To: <sip:{target}@192.168.1.1>\r\nCall-ID: {i:08x}-3f2a9c1d7e5b@{ip}\r\n"
            f"CSeq: 1 SUBSCRIBE\r\nContact: <sip:{phone}@{ip}:5060>\r\nEvent: {event}\r\n"
            f"Expires: 3600\r\nAccept: application/pidf+xml\r\nContent-Length: 0\r\n\r\n"
            ).encode()


def make():
    core = Core()
    params = {n: p.default for n, p in presence_module.EXPORTS.params.items()}
    params["max_subscriptions"] = 1000000
    params["max_subscriptions_per_user"] = 1000
    module = presence_module.Presence(params)
    core.mods["presence"] = module
    module.start(core)
    return module, core


def run(n):
    module, core = make()
    phones = max(1, n // 100)
    messages = []
    i = 0
    for phone in range(phones):
        for k in range(50):
            for event in ("presence", "dialog"):
                if i < n:
                    messages.append(subscribe_bytes(1000 + phone, 2000 + k, event, i))
                    i += 1
    source = Source("udp", "192.168.1.10", 5060, Listener())
    # CPU first, without tracemalloc (it slows every allocation), on a module of its own
    timed, _ = make()
    t0 = time.process_time()
    for data in messages:
        timed.handle_subscribe(Context(parse(data), source, None))
    cpu = time.process_time() - t0
    del timed
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for data in messages:
        module.handle_subscribe(Context(parse(data), source, None))
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(module.subscriptions) == n, len(module.subscriptions)
    # a PUBLISH notifying the watchers of one user (the 100 phones of this house)
    watchers = len(module.subscriptions.watchers("2000", "presence"))
    rounds = 200
    t0 = time.process_time()
    for r in range(rounds):
        module.local_publish("sip:2000@192.168.1.1", "presence",
                             PIDF.format(user=2000).encode(), "application/pidf+xml", 60,
                             f"bench{r % 2}")
    publish_cpu = (time.process_time() - t0) / rounds
    # bytes per publication: 1000 users' PIDF
    module2, core2 = make()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for u in range(1000):
        module2.local_publish(f"sip:{u}@192.168.1.1", "presence",
                              PIDF.format(user=u).encode(), "application/pidf+xml", 3600,
                              "bench")
    pub_bytes = (tracemalloc.get_traced_memory()[0] - base) / 1000
    tracemalloc.stop()
    return {"subscriptions": n, "bytes_per_subscription": round(grown / n, 1),
            "us_per_subscribe": round(cpu / n * 1e6, 1),
            "watchers_per_publish": watchers,
            "us_per_publish_notifying_watchers": round(publish_cpu * 1e6, 1),
            "bytes_per_publication": round(pub_bytes, 1)}


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 10000)))
