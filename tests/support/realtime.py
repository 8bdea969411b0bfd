"""No real-time scheduling in the test session, as under systemd (RestrictRealtime=yes).

SVT-AV1 (libsvtav1, through PyAV) probes for real-time priority when its encoder opens:
run as root, it switches the calling thread to SCHED_FIFO 99 and never switches it
back. A pytest worker that encoded one AV1 clip became real-time, and so did every
process it started afterwards (`relay run`, nginx, ffmpeg, OBS): a busy real-time
process takes a whole core from everything else on the machine, so relays elsewhere
saw their encoders stall, tests timed out, and SIGKILL waited for a free core.
Dropping CAP_SYS_NICE makes the probe fail (SVT-AV1 says so and encodes on); the
bounding set passes the drop on to every child.
"""

from __future__ import annotations

import ctypes
import os

CAP_SYS_NICE = 23
PR_CAPBSET_DROP = 24
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def no_realtime() -> None:
    """Drop CAP_SYS_NICE from this thread (and so from everything it starts later)."""
    if os.geteuid() != 0:
        return  # without root there is nothing to drop (RLIMIT_RTPRIO is 0 here)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_SYS_NICE)")
    header, data = _Header(_LINUX_CAPABILITY_VERSION_3, 0), (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    keep = ~(1 << CAP_SYS_NICE) & 0xFFFFFFFF
    data[0].effective &= keep
    data[0].permitted &= keep
    data[0].inheritable &= keep
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
