"""The real clients on the shared, reset Salesforce emulator (``sf_emulator``).

``sf`` is simple-salesforce (REST, SOQL, describe), ``bulk`` the project's BulkClient (Bulk API
2.0, a fresh token on 401, quick polls).
"""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce

from talklog.salesforce.bulk import BulkClient
from talklog_dev.emulator.process import EmulatorHandle


@pytest.fixture
def sf(sf_emulator: EmulatorHandle) -> Salesforce:
    return sf_emulator.salesforce()


@pytest.fixture
def bulk(sf_emulator: EmulatorHandle) -> BulkClient:
    return BulkClient(
        sf_emulator.session(),
        sf_emulator.instance_url,
        sf_emulator.token(),
        refresh_token=sf_emulator.token,
        poll_interval=0.01,
    )
