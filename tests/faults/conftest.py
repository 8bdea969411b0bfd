"""Clips for the fault suite, encoded once per run by the ffmpeg command.

The bare RTMP publisher (tests/support/raw_rtmp.py) replays these FLV tags with
whatever timestamps or payloads a test needs, costing no encoder CPU while it
plays; main is marked red and backup blue, as the recording reader expects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.show import Clip, make_marked_clip


@pytest.fixture(scope="session")
def main_clip(clips_dir: Path) -> Clip:
    return make_marked_clip(clips_dir / "main-360p.flv", "red", "640x360")


@pytest.fixture(scope="session")
def backup_clip(clips_dir: Path) -> Clip:
    return make_marked_clip(clips_dir / "backup-360p.flv", "blue", "640x360")


# Small pictures, for tests about connections, timestamps and packets rather than the picture
# (test_publisher_faults.py; its resolution change goes from this size to 640x360).
@pytest.fixture(scope="session")
def small_main(clips_dir: Path) -> Clip:
    return make_marked_clip(clips_dir / "main-180p.flv", "red", "320x180")


@pytest.fixture(scope="session")
def small_backup(clips_dir: Path) -> Clip:
    return make_marked_clip(clips_dir / "backup-180p.flv", "blue", "320x180")


@pytest.fixture(scope="session")
def main_hd_clip(clips_dir: Path) -> Clip:
    return make_marked_clip(clips_dir / "main-720p.flv", "red", "1280x720")
