"""Running one `relay` command (the console script of this venv) from an async test."""

from __future__ import annotations

import asyncio
import os
import sys

RELAY_SCRIPT = os.path.join(os.path.dirname(sys.executable), "relay")


async def relay_cli(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """`relay ARGS...`: its exit code, stdout and stderr; killed after ``timeout`` s
    (the wait fails the test then), so a hung command never hangs the suite."""
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(RELAY_SCRIPT, *args, stdout=pipe, stderr=pipe)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
