"""Suite-wide: no test writes into this machine's own router paths.

Tests run the server on the router's configs with each file moved into the test's directory;
one that is not moved would write into /etc/ser (flash on the router) or /etc/config here and
leak from one test into the next.  The session ends with an error naming what changed.
"""

import os

import pytest

ROUTER_PATHS = ("/etc/ser", "/etc/config/ser", "/var/etc/ser")


def _state():
    seen = {}
    for top in ROUTER_PATHS:
        if os.path.isfile(top):
            st = os.stat(top)
            seen[top] = (st.st_size, st.st_mtime_ns)
        for folder, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                seen[path] = (st.st_size, st.st_mtime_ns)
    return seen


@pytest.fixture(scope="session", autouse=True)
def router_paths_untouched():
    before = _state()
    yield
    after = _state()
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert not changed, f"tests wrote into the machine's router paths: {changed}"


# hypothesis (tests/run installs it): the property tests are deterministic (the same examples
# on every run and machine, derandomize) and bounded in count and time, and write no example
# database into the tree.  HYPOTHESIS_PROFILE=explore runs them with fresh random examples.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None, max_examples=200,
                                      deadline=1000, print_blob=True)
_hypothesis_settings.register_profile("explore", database=None, max_examples=2000,
                                      deadline=1000)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
