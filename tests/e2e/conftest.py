"""Fixtures for the end-to-end tests: a serlite process per test, sipp and sipsak beside it.

`ser(config_text, ipv6=False, python=None)` starts serlite on fresh loopback ports and
returns a started sipnet.SerServer; teardown stops it and fails the test if it died on its
own. When a test fails, the logs of its servers are attached to the report.
"""

import shutil

import pytest

from . import sipnet


@pytest.fixture(scope="session")
def tools():
    missing = [t for t in ("sipp", "sipsak") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run tests/run, which installs them")


@pytest.fixture
def ser(request, tmp_path, tools):
    servers = []
    request.node._serlite_servers = servers

    def start(config, *, ipv6=False, python=None, name=None, port=None):
        name = name or f"serlite{len(servers) + 1}"
        server = sipnet.SerServer(tmp_path / name, config, ipv6=ipv6, python=python, name=name,
                                  port=port)
        servers.append(server)
        return server.start()

    yield start
    sipnet.stop_servers(servers)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in getattr(item, "_serlite_servers", ()):
            report.sections.append((f"{server.name} log ({report.when})", server.tail(300)))
