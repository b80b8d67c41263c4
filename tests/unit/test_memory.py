"""The gateway hands the C heap's free pages back to the system (``gateway.memory``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.memory import Trimmer, _libc, trim

GLIBC = sys.platform.startswith("linux") and _libc() is not None


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_trim_gives_freed_holes_back() -> None:
    if not GLIBC:  # documented: without glibc there is nothing to trim, and trim says so
        assert trim() is False
        return
    # 80 MiB in 8 KiB blocks (below glibc's mmap threshold, so inside the heap), then all
    # freed but every 16th: the heap keeps its size (holes between live blocks) until
    # trimmed.
    blocks = [bytearray(8192) for _ in range(10_000)]
    kept = blocks[::16]
    del blocks
    before = _rss_mib()
    assert trim()
    after = _rss_mib()
    assert before - after > 20, (before, after)
    assert len(kept) == 625


def test_the_trimmer_runs_while_started() -> None:
    async def run() -> int:
        t = Trimmer(every=0.05)
        t.start()
        await asyncio.sleep(0.5)
        await t.stop()
        return t.runs

    # Without glibc the trimmer does not start (nothing to trim); with it, it runs.
    assert (asyncio.run(run()) > 0) is GLIBC
