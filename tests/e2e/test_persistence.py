"""Bindings survive kill -9: usrloc db_mode 1 writes each REGISTER through before its 200.

1000 users register (sipp register.xml, one user per call from an injection file), serlite
is killed with SIGKILL and started again on the same files, and every binding must be back:
sipp query.xml asks for each user's bindings and fails the call unless the 200 lists the
contact registered (checked per user by strcmp in the scenario).
"""

from . import sipnet

USERS = 1000
RATE = 250  # calls per second for sipp; 1000 users take 4 s each way


def rows():
    return [(f"u{i:04d}", f"sip:u{i:04d}@127.0.0.1:{20000 + i}", "udp", 3600)
            for i in range(USERS)]


def test_1000_bindings_survive_kill_9(ser, tmp_path):
    db = tmp_path / "usrloc"
    config = (sipnet.CONFIGS / "persistence.cfg").read_text().replace("@DB_URL@", f"dbtext://{db}")
    server = ser(config)
    bindings = rows()

    sipnet.run_bindings(server.addr, bindings, workdir=tmp_path, rate=RATE,
                        name="register").assert_ok(USERS)

    server.kill9()
    server.start()

    sipnet.run_bindings(server.addr, bindings, workdir=tmp_path, rate=RATE,
                        scenario="query.xml", name="query").assert_ok(USERS)
    # One binding per user, not a duplicate from a replayed journal.
    assert sipnet.query_bindings(server.addr, "u0999") == ["sip:u0999@127.0.0.1:20999;transport=udp"]
