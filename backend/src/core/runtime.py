"""Process-level tuning, applied once the application has started."""

from __future__ import annotations

import gc

# Requests allocate many short-lived objects that reference counting frees at once; what the cyclic
# collector finds is rare. With the default threshold (700) it ran every few requests and its older
# generations scanned every object made at start-up, stalling the event loop: in the benchmark that was
# the list route's p99 (111 ms against a 34 ms median). Freezing start-up objects and collecting less
# often gave 41 ms and 15% more throughput, for no measurable memory.
GENERATION_0_THRESHOLD = 50_000
OLDER_GENERATIONS_THRESHOLD = 20


def settle_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(GENERATION_0_THRESHOLD, OLDER_GENERATIONS_THRESHOLD, OLDER_GENERATIONS_THRESHOLD)
