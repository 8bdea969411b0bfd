"""The suite's scheduler (tests/support/scheduling.py) driven by fake xdist workers that
behave as real ones do: a worker runs its tests in order but holds its last one until it
has more work or is told to stop. Every test runs once, the running files' weights never
pass the budget, and no arrangement of files leaves the run stuck."""

from __future__ import annotations

import random
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.scheduling import (
    WALL_CLOCK_FILES,
    background_workers,
    is_background,
    is_compute,
    make_scheduler,
    weight,
)


class FakeConfig:
    def __init__(self, workers: int) -> None:
        self.workers = workers

    def getvalue(self, name: str) -> Any:
        assert name == "tx"
        return [f"{self.workers}*popen"]


class FakeWorker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.gateway = SimpleNamespace(id=name)
        self.queue: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        assert not self.shutting_down
        self.queue += indices

    def shutdown(self) -> None:
        self.shutting_down = True

    def runnable(self) -> bool:
        """A real worker runs a test only while another follows it, or once told to stop."""
        return len(self.queue) > 1 or (len(self.queue) == 1 and self.shutting_down)


def run(files: dict[str, int], costs: dict[str, dict[str, float]], workers: int, budget: float,
        seed: int, placed: dict[str, set[str]] | None = None) -> tuple[list[str], float]:
    """Every test of ``files`` (file → test count) through the scheduler; the tests in the
    order they ran and the highest sum of weights seen of the files running on the workers
    the budget governs (not the background ones). ``placed``: file → the workers it ran on."""
    sched = make_scheduler(FakeConfig(workers), None, budget)  # type: ignore[arg-type]
    sched.costs = costs
    collection = [f"{path}::test_{i}" for path, count in files.items() for i in range(count)]
    nodes = [FakeWorker(f"gw{i}") for i in range(workers)]
    for node in nodes:
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    rng, ran, highest = random.Random(seed), [], 0.0  # a random worker finishes a test each step
    for _ in range(100_000):
        running = {collection[n.queue[0]].split("::")[0] for n in nodes
                   if n.runnable() and not is_background(n.name, workers)}
        highest = max(highest, sum(weight(f, costs.get(f, {})) for f in running))
        if sched.tests_finished:  # what xdist does then: every worker told to stop
            for n in nodes:
                n.shutdown()
        ready = [n for n in nodes if n.runnable()]
        if not ready:
            break
        node = rng.choice(ready)
        index = node.queue.pop(0)
        ran.append(collection[index])
        if placed is not None:
            placed.setdefault(collection[index].split("::")[0], set()).add(node.name)
        sched.mark_test_complete(node, index)
    assert all(not n.queue for n in nodes), "a test never ran: the run is stuck"
    return ran, highest


COSTS = {
    "tests/integration/test_long.py": {"wall_s": 180.0, "cpu_s": 40.0},  # 0.22
    "tests/integration/test_browser.py": {"wall_s": 40.0, "cpu_s": 24.0},  # 0.6
    "tests/integration/test_wait_a.py": {"wall_s": 30.0, "cpu_s": 3.0},  # 0.1
    "tests/integration/test_wait_b.py": {"wall_s": 20.0, "cpu_s": 6.0},  # 0.3
    "tests/integration/test_one.py": {"wall_s": 60.0, "cpu_s": 30.0},  # 0.5, a single test
}
FILES = {"tests/integration/test_long.py": 1, "tests/integration/test_browser.py": 1,
         "tests/integration/test_wait_a.py": 7, "tests/integration/test_wait_b.py": 4,
         "tests/integration/test_one.py": 1, "tests/unit/test_a.py": 30, "tests/unit/test_b.py": 12,
         "tests/unit/test_c.py": 1}


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
@pytest.mark.parametrize("seed", range(5))
def test_every_test_runs_once_within_the_budget_and_nothing_sticks(workers: int, seed: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_TEST_BACKGROUND", "0")  # every file under the budget
    ran, highest = run(FILES, COSTS, workers, budget=1.6, seed=seed)
    assert sorted(ran) == sorted(f"{p}::test_{i}" for p, n in FILES.items() for i in range(n))
    # within the budget, or one file alone (a unit test file weighs a whole core)
    assert highest <= 1.6 + 1e-9 or workers == 1, highest


def test_a_budget_below_every_weight_still_runs_everything_one_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_TEST_BACKGROUND", "0")
    ran, highest = run(FILES, COSTS, 3, budget=0.05, seed=1)  # three workers: no background
    assert len(ran) == sum(FILES.values())
    assert highest <= 1.0 + 1e-9  # never two files at once


def test_weights_are_measured_shares_with_a_floor_and_computing_files_a_core() -> None:
    assert weight("tests/integration/test_browser.py", COSTS["tests/integration/test_browser.py"]) == 0.6
    assert weight("tests/integration/test_x.py", {"wall_s": 100.0, "cpu_s": 1.0}) == 0.1
    assert weight("tests/integration/test_x.py", {"wall_s": 10.0, "cpu_s": 30.0}) == 1.0
    assert weight("tests/unit/test_anything.py", {"wall_s": 10.0, "cpu_s": 0.5}) == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_computing_files_run_on_the_background_workers_only_and_the_rest_never_there(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight workers: gw6 and gw7 (niced by tests/conftest.py) take the unit tests and the
    like, beside the real-time files on gw0-gw5, instead of queueing for the budget."""
    monkeypatch.setenv("RELAY_TEST_BACKGROUND", "1")
    placed: dict[str, set[str]] = {}
    ran, highest = run(FILES, COSTS, 8, budget=1.6, seed=seed, placed=placed)
    assert len(ran) == sum(FILES.values())
    assert highest <= 1.6 + 1e-9
    for path, workers in placed.items():
        assert all(is_background(w, 8) == is_compute(path) for w in workers), (path, workers)


def test_background_workers_only_when_asked_and_with_enough_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_TEST_BACKGROUND", "0")
    assert [background_workers(n) for n in (1, 4, 8, 16)] == [0, 0, 0, 0]
    monkeypatch.delenv("RELAY_TEST_BACKGROUND")
    assert [background_workers(n) for n in (1, 2, 3, 4, 6, 8, 16)] == [0, 0, 0, 1, 1, 2, 2]
    assert [w for w in (f"gw{i}" for i in range(8)) if is_background(w, 8)] == ["gw6", "gw7"]
    assert not is_background("gw0", 2) and not is_background("gw1", 2)


def test_the_real_time_workers_stop_when_only_computing_files_are_left(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Their held last tests run at once, not after the whole computing queue."""
    monkeypatch.setenv("RELAY_TEST_BACKGROUND", "1")
    files = {"tests/integration/test_wait_a.py": 2, "tests/unit/test_a.py": 40}
    sched = make_scheduler(FakeConfig(8), None, 1.6)  # type: ignore[arg-type]
    sched.costs = COSTS
    collection = [f"{path}::test_{i}" for path, count in files.items() for i in range(count)]
    nodes = [FakeWorker(f"gw{i}") for i in range(8)]
    for node in nodes:
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    holder = next(n for n in nodes if n.queue and "wait_a" in collection[n.queue[0]])
    sched.mark_test_complete(holder, holder.queue.pop(0))  # the first test ran; the second is held
    assert holder.shutting_down and holder.runnable()
    assert any(n.queue for n in nodes if is_background(n.name, 8))  # the unit tests go on there


def test_every_file_with_a_wall_clock_bound_runs_beside_the_real_time_files() -> None:
    """A niced background worker can be held up for seconds by a burst of real-time files, so
    a computing file that asserts something took under a few wall seconds must be listed in
    WALL_CLOCK_FILES (then it runs under the budget, at normal priority)."""
    root = Path(__file__).resolve().parents[2]
    bound = re.compile(r"assert .*\b(took|elapsed|monotonic\(\) - \w+|perf_counter\(\) - \w+) <")
    paths = [p.relative_to(root).as_posix() for p in sorted((root / "tests").rglob("test_*.py"))]
    bounded = [p for p in paths if is_compute(p) or p in WALL_CLOCK_FILES
               if bound.search((root / p).read_text())]
    assert bounded, "the pattern finds nothing: it no longer matches how the tests are written"
    assert [p for p in bounded if is_compute(p)] == []
