"""The stand-in platform: studio's nginx-rtmp, `live on`, nothing recorded.

Unlike the demo's and the tests' nginx it records nothing: an hour of two 6 Mbit/s
streams would write gigabytes and the disk writes would cost CPU the measurement
should not pay. Viewers play the same URL publishers push to.
"""

from __future__ import annotations

from pathlib import Path

from studio.platform import NginxRtmp


def bench_platform(workdir: Path) -> NginxRtmp:
    """nginx-rtmp on a free port under `workdir/nginx-<port>`, not started yet."""
    return NginxRtmp(workdir, record=False, worker_connections=256)
