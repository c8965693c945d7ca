"""The faults of the matrix: emulator faults, and the message store unreachable for a while.

A fault is armed before the job's first run and lifted before each re-run (the incident is
over: the budget is back, the store answers again). Store outages start at the first Bulk job
the run creates, so they hit the run in the middle: claims committed, rows being loaded.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from tests.integration.talklog_world import World

STORE_OUTAGE_S = 3.0


@dataclass(frozen=True)
class Fault:
    """`arm(world, calls)` switches the fault on (`calls`: API calls of the fault-free job);
    it may return an event that is set once the fault actually hit."""

    name: str
    arm: Callable[[World, int], threading.Event | None]


def emulator_faults(**faults: Any) -> Callable[[World, int], None]:
    def arm(world: World, calls: int) -> None:
        world.emulator.set_faults(**faults)

    return arm


def bursts(status: int, every: int = 4) -> Callable[[World, int], None]:
    """After every `every` answered API calls the next 3 answer `status` (the retry budget)."""

    def arm(world: World, calls: int) -> None:
        emulator, seen = world.emulator, Counter[str]()

        def inject(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            if "/services/data/" in response.url and response.status_code < 500:
                seen["ok"] += 1
                if seen["ok"] % every == 0:
                    emulator.set_faults(http_5xx_count=3, http_5xx_status=status)

        emulator.set_faults(http_5xx_count=3, http_5xx_status=status)
        world.clients.http_session.hooks["response"].append(inject)

    return arm


def budget_mid_run(world: World, calls: int) -> None:
    """The daily API budget runs out half-way through the job."""
    used = world.emulator.stats()["daily_api_requests"]["used"]
    world.emulator.set_faults(daily_api_budget=used + max(1, calls // 2))


def on_first_bulk_job(world: World, action: Callable[[], None]) -> threading.Event:
    """Run `action` once, when the first Bulk ingest job of the run has been created."""
    fired = threading.Event()

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if fired.is_set() or request.method != "POST" or not response.url.endswith("/ingest"):
            return
        fired.set()
        action()

    world.clients.http_session.hooks["response"].append(hook)
    return fired


def sqlite_locked(world: World, calls: int) -> threading.Event:
    """Another connection holds the SQLite store's write lock for a while."""
    path = world.url.removeprefix("sqlite:///")

    def hold() -> None:
        locker = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        locker.execute("BEGIN EXCLUSIVE")
        threading.Thread(target=_release_later, args=(locker,), daemon=True).start()

    return on_first_bulk_job(world, hold)


def _release_later(connection: sqlite3.Connection) -> None:
    time.sleep(STORE_OUTAGE_S)
    connection.execute("ROLLBACK")
    connection.close()


class RefusingProxy:
    """A TCP proxy on 127.0.0.1 in front of PostgreSQL that can refuse connections for a while
    (its listener closed, its open connections cut)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self.listen()

    def listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def refuse_for(self, seconds: float) -> None:
        """Cut every connection and refuse new ones for `seconds` (in the background)."""
        self.close()
        threading.Timer(seconds, self.listen).start()

    def close(self) -> None:
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
                self._listener.close()
                self._listener = None
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def postgres_refused(proxy: RefusingProxy) -> Callable[[World, int], threading.Event]:
    def arm(world: World, calls: int) -> threading.Event:
        return on_first_bulk_job(world, lambda: proxy.refuse_for(STORE_OUTAGE_S))

    return arm


FAULTS = (
    Fault("row locks 5%", emulator_faults(lock_failure_rate=0.05, lock_seed=11)),
    Fault("row locks 50%", emulator_faults(lock_failure_rate=0.5, lock_seed=12)),
    Fault("500 bursts", bursts(500)),
    Fault("503 bursts", bursts(503)),
    Fault("session expiry every 4 calls", emulator_faults(session_expire_after_calls=4)),
    Fault("slow jobs (6 polls InProgress)", emulator_faults(bulk_polls_in_progress=6)),
    Fault("daily API budget spent mid-run", budget_mid_run),
    Fault(f"SQLite store locked {STORE_OUTAGE_S:.0f} s mid-run", sqlite_locked),
)
