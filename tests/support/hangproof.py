"""Run test work that encodes AV1 (the tests' clips, Relay's own slate and bridge) in a
forked child, killed and run again if it hangs.

SVT-AV1, as PyAV bundles it, now and then deadlocks inside ``svt_av1_enc_get_packet``
(every encoder thread idle on a futex; seen in full runs of the suite), and a C call
cannot be interrupted: the pytest worker would wait until its timeout kills it. The work
still runs the real code; only a hang is retried (a failed assertion or an error fails)."""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")
TIMEOUT_S = 120.0
TRIES = 3
_in_child = False  # set in a child: work nested in it runs there (the child is the guard)


def _child(work: Callable[..., Any], args: tuple[Any, ...], send: Connection) -> None:
    global _in_child
    _in_child = True
    try:
        result = work(*args)
    except BaseException:
        send.send((False, traceback.format_exc()))
    else:
        send.send((True, result))


def in_child(work: Callable[..., T], *args: Any, timeout_s: float = TIMEOUT_S) -> T:
    """``work(*args)`` in a forked child; its result (pickled back), or its failure raised
    here with the child's traceback. A child silent for ``timeout_s`` is killed and the
    work run again, ``TRIES`` times in all. Called in such a child, it runs ``work`` there."""
    if _in_child:
        return work(*args)
    ctx = multiprocessing.get_context("fork")
    for _ in range(TRIES):
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(work, args, send), daemon=True)
        child.start()
        send.close()
        if receive.poll(timeout_s):
            try:
                ok, value = receive.recv()
            except EOFError:
                child.join(10)
                raise AssertionError(f"the AV1 child died (exit code {child.exitcode})") from None
            child.join(10)
            if not ok:
                raise AssertionError(f"in the AV1 child:\n{value}")
            result: T = value
            return result
        child.kill()  # hung in the encoder: run it again
        child.join(10)
    raise AssertionError(f"SVT-AV1 hung {TRIES} times in a row (each cut after {timeout_s:g} s)")


def hang_proof(body: Callable[[str], None], codec: str) -> None:
    """``body(codec)`` here, or for AV1 in a child (see the module docstring)."""
    if codec == "av1":
        in_child(body, codec)
    else:
        body(codec)
