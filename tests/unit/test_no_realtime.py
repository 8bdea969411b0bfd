"""The test session runs nothing real-time (tests/support/realtime.py): SVT-AV1 opening an
encoder leaves the test's thread as it was, and no child may take real-time priority."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from typing import Any

import av


def test_an_av1_encoder_leaves_the_thread_as_it_was() -> None:
    before = os.sched_getscheduler(0)
    ctx: Any = av.CodecContext.create("libsvtav1", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 320, 180, "yuv420p", Fraction(1, 30)
    ctx.options = {"preset": "12"}
    ctx.open()  # as root with CAP_SYS_NICE this switched the thread to SCHED_FIFO 99
    assert os.sched_getscheduler(0) == before == os.SCHED_OTHER


def test_no_child_can_take_real_time_priority() -> None:
    probe = ("import os\ntry:\n    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))\n"
             "except PermissionError:\n    print('refused')\nelse:\n    print('granted')\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30,
                            check=True)
    assert result.stdout.strip() == "refused"
