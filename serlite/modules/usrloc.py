"""usrloc: the location table as a module: its modparams (db_mode, db_url, timer_interval,
use_domain), loading at start, the expiry/flush timer, saving at exit.

The table itself is ``serlite.store.location.LocationStore``; the registrar module reads and
writes it through ``table(name)``.
"""

from .. import log
from ..store.location import LocationStore, parse_db_url
from .export import Module, ModuleSpec, Param


class Usrloc(Module):
    name = "usrloc"

    def __init__(self, params):
        super().__init__(params)
        if params["db_mode"] not in (0, 1, 2):
            raise ValueError(f"usrloc db_mode must be 0, 1 or 2, not {params['db_mode']}")
        self.path = parse_db_url(params["db_url"]) if params["db_mode"] else None
        self.tables = {}        # name -> LocationStore
        self._timer = None

    def table(self, name):
        """The LocationStore called ``name`` ("location"), created on first use."""
        store = self.tables.get(name)
        if store is None:
            store = LocationStore(self.path, self.params["db_mode"], table=name)
            self.tables[name] = store
            if getattr(self, "core", None) is not None:
                self._load(name, store)
        return store

    def _load(self, name, store):
        for warning in store.load(self.core.wall()):
            log.warn(f"usrloc: {warning}")
        log.info(f"usrloc: table {name}: {len(store)} bindings of {store.aor_count()} AORs")

    def start(self, core, previous=None):
        super().start(core, previous)
        if previous is not None:        # SIGHUP: keep the bindings (and the files) we have
            if previous.path == self.path and previous.params["db_mode"] == \
                    self.params["db_mode"]:
                self.tables = previous.tables
                previous.tables = {}
            else:
                try:
                    previous.stop()
                except OSError:
                    pass        # logged by stop(); the reload goes on with the new files
            if previous._timer is not None:
                previous._timer.cancel()
        else:
            for name, store in self.tables.items():   # made by fixups, before the start
                self._load(name, store)
        self._arm()

    def _arm(self):
        self._timer = self.core.loop.call_later(self.params["timer_interval"], self._tick)

    def _tick(self):
        now = self.core.wall()
        for store in self.tables.values():
            store.expire(now)
            try:
                store.flush(now)
            except OSError as exc:
                log.limited("usrloc-flush", log.ERR, f"usrloc: cannot write {self.path}: {exc}")
        self._arm()

    def stop(self):
        if self._timer is not None:
            self._timer.cancel()
        now = self.core.wall() if getattr(self, "core", None) else 0
        failed = []
        for name, store in self.tables.items():
            try:
                store.close(now)
            except OSError as exc:
                log.error(f"usrloc: cannot save table {name}: {exc}")
                failed.append(name)
        if failed:      # the server's exit status must say so (SIGTERM after a full disk)
            raise OSError(f"usrloc: table(s) {', '.join(failed)} not saved")


EXPORTS = ModuleSpec(
    name="usrloc",
    doc="The location table (who is registered where), in memory and on disk.",
    factory=Usrloc,
    params={
        "db_mode": Param(int, 0, "0 memory only, 1 write-through, 2 write-back",
                         min=0, max=2),
        "db_url": Param(str, "dbtext:///var/lib/ser", "where the table files are"),
        "timer_interval": Param(int, 60, "seconds between expiry runs (and db_mode 2 saves)",
                                min=1, max=3600),
        "use_domain": Param(int, 0, "1: the AOR is user@domain; 0: the user part alone",
                            min=0, max=1),
    },
)
