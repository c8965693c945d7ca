"""Airflow side of talklog: hooks and operators around the Airflow-free ``talklog`` package."""
