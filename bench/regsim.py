"""In-process REGISTER simulation through the seed config: CPU per REGISTER without sockets.

    python3 bench/regsim.py [CONFIG] [REGISTERS] [--prof]

Feeds REGISTERs of unique users (each a new binding), then the same users again (a refresh:
same Call-ID, higher CSeq), straight into Core.receive with a recording transport, once with
usrloc db_mode 0 (memory) and once with db_mode 2 (write-back: the table file is written by the
timer, which does not run here, so both measure the registrar's save()).  Prints the CPU time
per REGISTER in all and inside Core.receive alone.
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from callsim import SEED, Harness, run  # noqa: E402


def register(i, cseq):
    return (f"REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK-reg{i}-{cseq}\r\n"
            f"From: <sip:user{i}@127.0.0.1:5060>;tag=r{i}\r\n"
            f"To: <sip:user{i}@127.0.0.1:5060>\r\n"
            f"Call-ID: reg{i}@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:user{i}@127.0.0.1:6000>\r\nExpires: 3600\r\n"
            f"User-Agent: regsim\r\nContent-Length: 0\r\n\r\n").encode()


def config_with_db_mode(config, db_mode, directory):
    """A copy of ``config`` (in ``directory``) whose usrloc runs in ``db_mode``."""
    with open(config, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r'modparam\("usrloc",\s*"db_(mode|url)".*\n', "", text)
    text = text.replace('loadmodule "/usr/lib/ser/modules/registrar.so"',
                        'loadmodule "/usr/lib/ser/modules/registrar.so"\n'
                        f'modparam("usrloc", "db_mode", {db_mode})\n'
                        f'modparam("usrloc", "db_url", "dbtext://{directory}/db")')
    path = os.path.join(directory, f"db_mode{db_mode}.cfg")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def bench(config, db_mode, n, prof):
    with tempfile.TemporaryDirectory() as tmp:
        h = Harness(config_with_db_mode(config, db_mode, tmp))
        tr = h.tr
        src = h.source("127.0.0.1", 6000)

        def one(cseq):
            def one_register(i):
                tr.sent.clear()
                h.receive(register(i, cseq), src)
                assert tr.sent[0][2].startswith(b"SIP/2.0 200 OK"), tr.sent
            return one_register

        for i in range(50):
            one(1)(-i - 1)
        print(f"usrloc db_mode {db_mode}:")
        run(n, "registers", one(1), prof, h)
        print("  (refreshes of the same users:)")
        run(n, "registers", one(2), prof, h)
        h.stop()


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    config = args[0] if args else SEED
    n = int(args[1]) if len(args) > 1 else 3000
    for db_mode in (0, 2):
        bench(config, db_mode, n, "--prof" in argv)


if __name__ == "__main__":
    main(sys.argv)
