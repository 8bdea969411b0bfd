"""How the suite shares the machine's cores between its files (pytest-xdist).

Most of the suite's files are real time: a relay, publishers and a platform run for
seconds while the test waits for events, using a tenth of a core or so. A few compute
(the unit tests, the analysis cost, an install with pip) or drive Chromium or encoders,
using a core or more. Plain `--dist loadfile` hands any file to any idle worker, so with
few workers the waiting files leave the cores idle, and with many the computing ones
pile up and starve the real-time bounds of the files beside them.

:class:`CoreBudgetScheduling` keeps whole files on one worker (as `loadfile` does) and
hands a worker its next file only while the files running fit the machine's cores:
each file has a weight (the cores it keeps busy while it runs, measured: its CPU seconds
over its wall seconds, tests/file_costs.json), and the running files' weights stay
within the budget (the core count). Many workers then overlap the waiting, and the
computing files never run more than the cores can carry.

The costs are measured by this module's recorder (`RELAY_TEST_COSTS=dir ./scripts/test`
writes one line per test; `python -m tests.support.scheduling dir > tests/file_costs.json`
folds them per file). A file missing from the table gets :data:`DEFAULT_COST`.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import pytest

COSTS_PATH = Path(__file__).resolve().parents[1] / "file_costs.json"
DEFAULT_COST = {"wall_s": 10.0, "cpu_s": 2.0}
MIN_WEIGHT = 0.1  # a waiting file still wakes for its events and starts processes
COMPUTE_WEIGHT = 1.0  # one Python process computing: one core, however long it waits for none
# Files that compute in the worker itself (or in one child: pip) from start to end: a core
# each, whatever their measured share (measured beside other files, it reads low).
COMPUTE_FILES = ("tests/unit/", "tests/integration/test_analysis_codecs.py",
                 "tests/integration/test_analysis.py", "tests/integration/test_analysis_matrix.py",
                 "tests/integration/test_systemd_units.py", "tests/integration/test_slate.py",
                 "tests/integration/test_slate_codecs.py", "tests/integration/test_config_cli.py")


# With enough workers, the computing files get workers of their own ("background" workers, the
# last ones), which run at a lower priority: they use what the real-time files leave of the
# cores all run long instead of queueing for the budget and running one by one at the end
# while the other core idles (that tail was a third of a full run). The real-time files get
# the other workers and the budget, and never wait for a computing file.
COMPUTE_NICE = 19  # CFS: a worker at 19 gets next to nothing while real-time work wants the cores


# Files among those that hold a wall-clock bound of a few seconds ("500 events handed over in
# under 0.5 s": proof that nothing waited) or pace media in real time: a niced worker could be
# held up that long by a burst of the real-time files, so they run with those, under the budget.
WALL_CLOCK_FILES = ("tests/unit/test_alerts.py", "tests/unit/test_analysis.py",
                    "tests/unit/test_encoder_worker.py",
                    "tests/unit/test_http_door.py", "tests/unit/test_journal.py",
                    "tests/unit/test_push_addresses.py", "tests/unit/test_watch_host.py",
                    "tests/integration/test_analysis.py")


def is_compute(path: str) -> bool:
    return path.startswith(COMPUTE_FILES) and path not in WALL_CLOCK_FILES


def background_workers(workers: int) -> int:
    """How many of ``workers`` run only the computing files (none with fewer than four;
    RELAY_TEST_BACKGROUND=0: none). On this 2-core machine the suite is CPU-bound (99-100 %
    from start to end); full runs on 2026-12-07: background workers at nice 19, 518 s and
    one real-time failure besides a broken test; at nice 10, 408 s and six; none (every
    file under the budget), three failures in the first fifth of a fresh-clone run."""
    if os.environ.get("RELAY_TEST_BACKGROUND") == "0":
        return 0
    return min(2, workers // 4)


def is_background(worker_id: str, workers: int) -> bool:
    """Whether xdist's worker ``worker_id`` ("gw6") is one of the background ones."""
    index = int(worker_id.removeprefix("gw")) if worker_id.removeprefix("gw").isdigit() else -1
    return index >= workers - background_workers(workers)


def load_costs(path: Path = COSTS_PATH) -> dict[str, dict[str, float]]:
    try:
        data: dict[str, dict[str, float]] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def weight(path: str, cost: dict[str, float]) -> float:
    """The cores a file keeps busy while it runs: CPU seconds over wall seconds."""
    if is_compute(path):
        return COMPUTE_WEIGHT
    wall, cpu = cost.get("wall_s", 0.0), cost.get("cpu_s", 0.0)
    if wall <= 0:
        return MIN_WEIGHT
    return min(COMPUTE_WEIGHT, max(MIN_WEIGHT, cpu / wall))


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def order(items: list[pytest.Item], costs: dict[str, dict[str, float]]) -> None:
    """Longest files first (none starts late and keeps the run waiting), in place; a
    file's tests keep their order."""
    def key(item: pytest.Item) -> float:
        return -costs.get(file_of(item.nodeid), DEFAULT_COST)["wall_s"]
    items.sort(key=key)


def make_scheduler(config: pytest.Config, log: Any, budget: float) -> Any:
    """A :class:`CoreBudgetScheduling` (built here: xdist is imported only in a run using it)."""
    from xdist.scheduler import LoadFileScheduling

    class CoreBudgetScheduling(LoadFileScheduling):  # type: ignore[misc]
        """`loadfile`, with a file handed out only while the running files' weights fit
        ``budget`` (always, when nothing else runs)."""

        def __init__(self, config: pytest.Config, log: Any = None) -> None:
            super().__init__(config, log)
            self.costs = load_costs()
            self.budget = budget
            self.background = any(is_background(f"gw{i}", self.numnodes) for i in range(self.numnodes))

        def _is_background(self, node: Any) -> bool:
            """As the worker itself decides to nice itself (tests/conftest.py): a worker that
            replaces a crashed one (gw8 of eight) is a background one."""
            return is_background(node.gateway.id, self.numnodes)

        def _eligible(self, node: Any, scope: str) -> bool:
            """Computing files on background workers, the rest on the others (any file on
            any worker when there are no background workers)."""
            return not self.background or is_compute(scope) == self._is_background(node)

        def _weight(self, scope: str) -> float:
            return weight(scope, self.costs.get(scope, DEFAULT_COST))

        def _pending(self, node: Any) -> int:
            return int(self._pending_of(self.assigned_work.get(node, {})))

        def _weights(self, node: Any) -> float:
            return sum(self._weight(scope) for scope, unit in self.assigned_work.get(node, {}).items()
                       if not all(unit.values()))

        def _busy(self, node: Any) -> list[Any]:
            """The workers other than ``node`` running a test: more than a held one to go, or
            told to stop with one to go."""
            return [n for n in self.nodes if n is not node and not self._is_background(n)
                    and (self._pending(n) > 1 or (self._pending(n) == 1 and n.shutting_down))]

        def _room(self, node: Any) -> float | None:
            """The weight that still fits beside the files the other workers run (None: nothing
            else runs, so any file fits). A worker holds its last test until it has the next
            file or is told to stop (it must know what follows to tear down the right
            fixtures): a held test does not run, so only the workers with more to go count.
            ``node``'s own held test runs once it has its next file, and then that file, one
            after the other: both must fit, not their sum (summing them held test_demo's last
            test for 224 s of a 365-s run). Always, when nothing runs: else nothing ever would."""
            busy = self._busy(node)
            if not busy:
                return None
            return self.budget + 1e-9 - sum(self._weights(n) for n in busy)

        def _next_fitting(self, node: Any) -> str | None:
            """The first file in the queue that fits beside the running ones. (Keeping a core
            for the computing files while any waits was tried: 411 s against 370 s.)"""
            if self._is_background(node):  # niced: it takes what the others leave
                return next((scope for scope in self.workqueue if is_compute(scope)), None)
            room = self._room(node)
            if room is not None and self._weights(node) > room:
                return None  # its held test does not fit yet
            for scope in self.workqueue:
                if self._eligible(node, scope) and (room is None or self._weight(scope) <= room):
                    return scope
            return None

        def _give(self, node: Any, scope: str) -> None:
            work_unit = self.workqueue.pop(scope)
            self.assigned_work.setdefault(node, {})[scope] = work_unit
            collection = self.registered_collections[node]
            node.send_runtest_some([collection.index(nodeid) for nodeid, done in work_unit.items()
                                    if not done])

        def _fill(self) -> None:
            for node in [n for n in self.nodes if n in self.registered_collections]:
                # (a worker replacing a crashed one gets work once it has collected)
                # until it has a test to run beyond the one it holds (a one-test file alone
                # would never run)
                while not node.shutting_down and self._pending(node) <= 1:
                    if not any(self._eligible(node, scope) for scope in self.workqueue):
                        room = None if self._is_background(node) else self._room(node)
                        # told to stop, it runs the test it holds
                        if room is None or room >= self._weights(node):
                            node.shutdown()
                        break
                    scope = self._next_fitting(node)
                    if scope is None:
                        break  # a file finishing frees room: every completion fills again
                    self._give(node, scope)

        def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
            """xdist's, but a finished file leaves ``assigned_work``: every completion weighs
            the running files, and summing over every test ever given cost the controller
            40 s of CPU in a full run (beside the tests it competes with)."""
            nodeid = self.registered_collections[node][item_index]
            scope = self._split_scope(nodeid)
            unit = self.assigned_work[node][scope]
            unit[nodeid] = True
            if all(unit.values()):
                del self.assigned_work[node][scope]
            self._reschedule(node)

        @property
        def tests_finished(self) -> bool:
            """Only when every test ran: xdist stops every worker once this holds, which
            would run all the held tests at once (xdist's own counts a held test as done)."""
            return bool(self.collection_is_completed and not self.workqueue
                        and all(self._pending(n) == 0 for n in self.nodes))

        def _reschedule(self, node: Any) -> None:
            self._fill()

        def schedule(self) -> None:
            assert self.collection_is_completed
            if self.collection is not None:
                self._fill()
                return
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return
            self.collection = list(next(iter(self.registered_collections.values())))
            if not self.collection:
                return
            for nodeid in self.collection:  # in collection order: tests/conftest.py orders it
                self.workqueue.setdefault(self._split_scope(nodeid), {})[nodeid] = False
            self._fill()

    return CoreBudgetScheduling(config, log)


# -- measuring the costs ---------------------------------------------------------------------


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CostRecorder:
    """One JSON line per test (wall and CPU seconds, the worker's own and its children's:
    relays, publishers, browsers; when it started and on which worker, for a timeline)
    into ``directory``, one file per worker."""

    def __init__(self, directory: str) -> None:
        self.out = Path(directory) / f"costs-{os.getpid()}.jsonl"
        self.out.parent.mkdir(parents=True, exist_ok=True)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        cpu, wall, started = _cpu_s(), time.monotonic(), time.time()
        yield
        line = {"id": item.nodeid, "wall_s": time.monotonic() - wall, "cpu_s": _cpu_s() - cpu,
                "started": started, "worker": os.environ.get("PYTEST_XDIST_WORKER", "")}
        with self.out.open("a") as f:
            f.write(json.dumps(line) + "\n")


def fold(lines: Iterable[str]) -> dict[str, dict[str, float]]:
    per_file: dict[str, dict[str, float]] = {}
    for line in lines:
        row = json.loads(line)
        cost = per_file.setdefault(file_of(row["id"]), {"wall_s": 0.0, "cpu_s": 0.0})
        cost["wall_s"] += row["wall_s"]
        cost["cpu_s"] += row["cpu_s"]
    return {f: {k: round(v, 1) for k, v in c.items()} for f, c in sorted(per_file.items())}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.support.scheduling DIR  (the RELAY_TEST_COSTS directory)",
              file=sys.stderr)
        return 2
    lines = [line for path in sorted(Path(argv[0]).glob("costs-*.jsonl")) for line in path.open()]
    print(json.dumps(fold(lines), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
