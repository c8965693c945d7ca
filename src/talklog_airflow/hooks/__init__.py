"""Hooks of the talklog project.

`TalkLogSalesforceHook` is loaded on first access: the Salesforce provider's hook imports
simple-salesforce, which a DAG file parse must not pay for (`hooks.store` stays cheap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

__all__ = ["TalkLogSalesforceHook"]


def __getattr__(name: str) -> Any:
    if name == "TalkLogSalesforceHook":
        from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

        return TalkLogSalesforceHook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
