"""Hooks of the talklog project."""

from talklog_airflow.hooks.salesforce import TalkLogSalesforceHook

__all__ = ["TalkLogSalesforceHook"]
