from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.realtime import no_realtime
from tests.support.scheduling import (
    COMPUTE_NICE,
    CostRecorder,
    is_background,
    load_costs,
    make_scheduler,
    order,
)

# Nothing the tests start runs real-time (tests/support/realtime.py: SVT-AV1 as root).
no_realtime()

# Hermetic: a RELAY_ variable of the shell running the suite (RELAY_MQTT__HOST=...) would
# configure every relay a test starts; only the suite's own RELAY_TEST_* (README) stay.
for _name in [n for n in os.environ if n.upper().startswith("RELAY_")]:
    if not _name.upper().startswith("RELAY_TEST_"):
        del os.environ[_name]

# Tests run the project's own console script from the venv the setup created.
VENV_BIN = os.path.dirname(sys.executable)
os.environ["PATH"] = VENV_BIN + os.pathsep + os.environ.get("PATH", "")

# Property-based tests (tests/unit/test_fuzz_*.py): modest example counts so the suite
# stays fast, derandomized and without an example database so a CI run never depends
# on an earlier one (a failure prints the example and reproduces on every run).
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("relay", max_examples=300, derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("relay")


# -- how files share the cores ------------------------------------------------------------------
# ./scripts/test runs whole files on many workers (pyproject: -n, --dist loadfile), but a file
# is handed out only while the running files' measured weights fit the cores
# (tests/support/scheduling.py, tests/file_costs.json); the longest files start first, so none
# starts late and keeps the run waiting (the computing files on two workers of their own at
# nice 19; RELAY_TEST_BACKGROUND=0: under the budget, see scheduling.py). The budget is 80 % of
# the cores: at 100 % a full run took 370-380 s but two or three real-time bounds failed in
# each of three runs (a different few each time; at 150 %, 319 s and six).
# RELAY_TEST_CORE_BUDGET overrides it.
_COSTS = load_costs()
CORE_BUDGET = float(os.environ.get("RELAY_TEST_CORE_BUDGET", 0.8 * (os.cpu_count() or 2)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    order(items, _COSTS)


def pytest_configure(config: pytest.Config) -> None:
    worker, workers = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if worker and workers and is_background(worker, int(workers)):
        os.nice(COMPUTE_NICE)  # a worker for the computing files (tests/support/scheduling.py)
    if os.environ.get("RELAY_TEST_COSTS"):  # measure the costs (tests/support/scheduling.py)
        config.pluginmanager.register(CostRecorder(os.environ["RELAY_TEST_COSTS"]), "relay-test-costs")


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None  # another distribution asked for on the command line: xdist's own
    return make_scheduler(config, log, CORE_BUDGET)


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of encoded clips for the whole run (tests/faults/show.py's marked clips):
    under xdist the workers share their base temp's parent, so a clip is encoded once, not
    once per worker."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "fault-clips"
    shared.mkdir(exist_ok=True)
    return shared
