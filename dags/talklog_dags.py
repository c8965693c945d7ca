"""LINE WORKS talks into Salesforce: a DAG per schedule choice, link sync, re-link, replay,
export import."""

from talklog.windows import ScheduleChoice
from talklog_airflow.dag_factory import (
    build_import_dag,
    build_lineworks_dags,
    build_link_sync_dag,
    build_relink_dag,
    build_replay_dag,
    build_talklog_dag,
)

talklog_hourly = build_talklog_dag(ScheduleChoice.HOURLY)
talklog_every_6_hours = build_talklog_dag(ScheduleChoice.EVERY_6_HOURS)
talklog_daily = build_talklog_dag(ScheduleChoice.DAILY)
talklog_link_sync = build_link_sync_dag()
talklog_relink = build_relink_dag()
talklog_replay_dead_letters = build_replay_dag()
talklog_import_export = build_import_dag()
globals().update(build_lineworks_dags())  # TALKLOG_TALK_SOURCE=lineworks: directory, history
