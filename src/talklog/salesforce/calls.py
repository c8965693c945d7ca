"""Counting the Salesforce API calls a run makes (every HTTP response on its session)."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlparse

import requests


class ApiCallCounter:
    """Counts responses on a `requests.Session`, by method and API area (query, jobs, ...)."""

    def __init__(self, session: requests.Session) -> None:
        self.by_kind: Counter[str] = Counter()
        self.limit_info: str | None = None
        session.hooks.setdefault("response", []).append(self._count)

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = urlparse(response.url).path
        if "/services/data/" not in path:
            return  # token endpoint and the emulator's admin API are not API calls
        area = path.split("/services/data/", 1)[1].split("/")[1:2] or ["versions"]
        self.by_kind[f"{response.request.method} {area[0]}"] += 1
        self.limit_info = response.headers.get("Sforce-Limit-Info", self.limit_info)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())
