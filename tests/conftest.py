from __future__ import annotations

import os
import sys

import pytest

from tests.support.realtime import no_realtime

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


# -- the order files are handed out in ---------------------------------------------------------
# ./scripts/test runs whole files on two workers (pyproject: -n 2 --dist loadfile): a real-time
# file waits most of its time (encoders in real time, failovers, timeouts), but each relay now
# decodes every picture of its inputs and several files drive Chromium, so more workers starve
# the 2-core machine (load 5-7 with four, 12 with six: real-time bounds failed). Files start
# in this order: first those that only compute (the unit tests, the analysis cost, `relay
# config-check`, the slate's pictures, the install), all together while no real-time test runs
# beside them to be starved of CPU; then the real-time files, longest first, so that none starts
# late and keeps the run waiting. The figures are their serial wall times in seconds, measured
# on the 2-core machine: they order the files and bound nothing. A file not named runs after
# these, in collection order.
COMPUTE_FIRST = ("tests/unit/", "tests/integration/test_analysis_codecs.py",
                 "tests/integration/test_analysis_matrix.py",  # ~25 s of CPU: encodes, then replays
                 "tests/integration/test_config_cli.py", "tests/integration/test_slate.py",
                 "tests/integration/test_slate_codecs.py", "tests/integration/test_systemd_units.py")
LONGEST_FIRST = {
    "test_bench_smoke.py": 187, "test_decode_plan_e2e.py": 88, "test_mqtt_e2e.py": 84,
    "test_interleaved_faults.py": 79, "test_codecs_e2e.py": 78, "test_obs.py": 75,
    "test_publisher_faults.py": 75, "test_demo.py": 67, "test_failover_e2e.py": 62,
    "test_drill_e2e.py": 55, "test_run_watch.py": 54, "test_output.py": 51, "test_hostile_peers.py": 36,
    "test_dashboard_browser.py": 32, "test_preflight_check.py": 31, "test_push_codecs.py": 31,
    "test_control_plane_faults.py": 30, "test_platform_faults.py": 25, "test_rtmp_ingest.py": 24,
    "test_unlike_encoders.py": 24, "test_mqtt_control.py": 24, "test_srt_ingest.py": 23,
    "test_http_flood.py": 30, "test_dashboard_logout.py": 10,
    "test_analysis.py": 16, "test_record_reload.py": 36, "test_reload_cli.py": 20,
    "test_preview_browser.py": 45,
    # the zh-CN pages and the report from the dashboard: 40 s serial at load 12-17 beside the
    # dashboard test's 86 s (25 s and 65 s in other runs): about half its 32 s when idle
    "test_i18n_browser.py": 18,
    "test_live_bridge_e2e.py": 40, "test_daemon_kill.py": 27, "test_picture_faults.py": 24,
}


# xdist hands a worker its next file while the current one has two tests or fewer to go, so
# the file after the one-test bench smoke waits behind all of it: let that be one of seconds.
BEHIND_THE_LONGEST = "test_push_hostile.py"


def _rank(item: pytest.Item) -> tuple[int, float]:
    path = item.nodeid.split("::")[0]
    if path.startswith(COMPUTE_FIRST):
        return (0, 0)
    name = path.rsplit("/", 1)[-1]
    if name == BEHIND_THE_LONGEST:
        return (1, -max(LONGEST_FIRST.values()) + 0.5)
    return (1, -LONGEST_FIRST.get(name, 0))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: a file's tests keep their order
