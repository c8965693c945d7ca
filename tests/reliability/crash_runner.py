"""A worker process for the crash tests: runs one job and freezes at a boundary.

`python -m tests.reliability.crash_runner SPEC.json` runs the talk-log window or the link
sync of SPEC through the real pipeline. When the HTTP response that marks the boundary
arrives, it writes SPEC's `ready_file` and sleeps, so the test can look at the state and
SIGKILL it exactly there. Boundaries (response on the run's session, counted from the start):

- `after_extract`: the first Bulk job was created: claims committed, nothing uploaded.
- `mid_upload`: the TalkLog rows were uploaded, the job not yet closed.
- `between_objects`: the first job reported it was done (nothing failed, so no results are
  read). Link sync: the second object's job not created. Talk-log windows: the TalkLog and Task
  jobs were submitted together before the first look, so both are loaded.
- `after_bulk_before_ledger`: the second object's job reported it was done; dead letters and
  the ledger not written yet.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from talklog.links import sync_links
from talklog.loading import BulkLoader
from talklog.pipeline import write_talk_logs
from talklog.salesforce.bulk import TERMINAL_STATES
from talklog.store import make_session_factory
from talklog.talklogs import TalkLogSettings
from talklog.windows import TalkWindow
from talklog_dev.emulator.process import EmulatorHandle
from tests.integration.talklog_world import direct_clients

INGEST_JOB = re.compile(r"/jobs/ingest/[^/?]+$")


def _job_created(response: requests.Response) -> bool:
    return response.request.method == "POST" and response.url.endswith("/jobs/ingest")


def _rows_uploaded(response: requests.Response) -> bool:
    return response.request.method == "PUT" and "/batches" in response.url


def _job_done(response: requests.Response) -> bool:
    """The final poll of an ingest job: the job info in a terminal state."""
    if response.request.method != "GET" or not INGEST_JOB.search(response.url):
        return False
    return response.ok and response.json().get("state") in TERMINAL_STATES


BOUNDARIES: dict[str, tuple[Callable[[requests.Response], bool], int]] = {
    # boundary -> (which responses count, how many of them)
    "after_extract": (_job_created, 1),
    "mid_upload": (_rows_uploaded, 1),
    "between_objects": (_job_done, 1),
    "after_bulk_before_ledger": (_job_done, 2),
}


def freeze_at(boundary: str, ready_file: Path) -> Callable[..., None]:
    """A response hook that signals readiness and sleeps at `boundary`."""
    matches, nth = BOUNDARIES[boundary]
    seen = Counter[str]()

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if not matches(response):
            return
        seen[boundary] += 1
        if seen[boundary] == nth:
            ready_file.write_text(boundary, encoding="utf-8")
            time.sleep(3600)  # the test SIGKILLs us here

    return hook


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    clients = direct_clients(EmulatorHandle(**spec["emulator"]))
    clients.http_session.hooks["response"].append(
        freeze_at(spec["boundary"], Path(spec["ready_file"]))
    )
    sessions = make_session_factory(spec["url"])
    loader = BulkLoader(clients.bulk, sessions, sleep=lambda _: None)
    if spec["job"] == "link sync":
        sync_links(sessions=sessions, query_all=clients.query_all, loader=loader)
    else:
        start, end = (dt.datetime.fromisoformat(value) for value in spec["window"])
        write_talk_logs(
            sessions=sessions,
            store_url=spec["url"],
            query_all=clients.query_all,
            loader=loader,
            window=TalkWindow(start, end),
            settings=TalkLogSettings(),
            run_id="crashed",
        )
    Path(spec["ready_file"]).write_text("finished", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
