"""A client's clock and sleep at the emulator's `time_scale` (paced Bulk jobs, scaled down).

With the emulator at ``--time-scale 100`` a job paced at 30 s ends after 0.3 s of wall time;
a `BulkClient` given ``sleep=scaled.sleep, clock=scaled.clock`` of ``ScaledTime(100)`` waits
and times out in the same emulated seconds, so it makes the calls it would make against an
org that takes 30 s. `slept_s` adds up the wall time it slept (what a benchmark leaves out).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class ScaledTime:
    """Emulated seconds at `scale` per wall-clock second."""

    scale: float = 1.0
    slept_s: float = 0.0

    def sleep(self, seconds: float) -> None:
        wall = max(0.0, seconds) / self.scale
        began = time.perf_counter()
        time.sleep(wall)
        self.slept_s += time.perf_counter() - began

    def clock(self) -> float:
        return time.monotonic() * self.scale
