"""Run a test body that encodes AV1 in Relay's own code (the slate, the bridge) in a forked
child, killed and run again if it hangs.

SVT-AV1, as PyAV bundles it, now and then deadlocks inside ``svt_av1_enc_get_packet``
(every encoder thread idle on a futex; seen twice in full runs of the suite), and a C
call cannot be interrupted: the pytest worker would wait until its timeout kills it. The
body still runs Relay's real code; only a hang is retried (a failed assertion fails)."""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection

TIMEOUT_S = 120.0
TRIES = 3


def _child(body: Callable[[str], None], codec: str, send: Connection) -> None:
    try:
        body(codec)
    except BaseException:
        send.send(traceback.format_exc())
    else:
        send.send("")


def hang_proof(body: Callable[[str], None], codec: str) -> None:
    """``body(codec)`` here, or for AV1 in a child (see the module docstring)."""
    if codec != "av1":
        body(codec)
        return
    ctx = multiprocessing.get_context("fork")
    for _ in range(TRIES):
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(body, codec, send), daemon=True)
        child.start()
        send.close()
        if receive.poll(TIMEOUT_S):
            failure = receive.recv()
            child.join(10)
            if failure:
                raise AssertionError(f"in the AV1 child:\n{failure}")
            return
        child.kill()  # hung in the encoder: run it again
        child.join(10)
    raise AssertionError(f"SVT-AV1 hung {TRIES} times in a row (each cut after {TIMEOUT_S:g} s)")
