"""Store summaries, the `talklog` command and the demo."""

from __future__ import annotations

import datetime as dt

from talklog import cli
from talklog.store.describe import describe_store
from talklog.store.migrate import upgrade
from talklog_dev import cli as dev_cli
from talklog_dev import demo_store as demo
from talklog_dev.synth import GeneratorConfig, generate
from talklog_dev.synth.examples import SCENARIOS, write_examples


def test_summary_counts_match_what_was_generated(store_url):
    upgrade(store_url)
    config = GeneratorConfig(seed=3, day=dt.date(2025, 1, 9), days=3, messages=2_000)
    report = generate(store_url, config)
    summary = describe_store(store_url, "Asia/Tokyo")

    assert summary.messages == report.messages == sum(summary.messages_per_day.values())
    assert summary.messages_by_type == report.messages_by_type
    assert list(summary.messages_per_day) == [dt.date(2025, 1, d) for d in (9, 10, 11)]
    assert summary.rooms_by_type == report.rooms_by_type
    assert summary.members == report.room_members
    assert summary.lw_users == report.lw_users and summary.line_users == report.line_users
    assert {k: c.total for k, c in summary.links_by_target.items()} == report.links_by_target
    assert summary.links.unlinked == report.unlinked_links
    assert summary.link_periods == report.link_periods


def test_days_are_local_days(sqlite_url):
    upgrade(sqlite_url)
    write_examples(sqlite_url, dt.date(2025, 1, 9))  # 10:00 Tokyo is 01:00 UTC, same day
    assert list(describe_store(sqlite_url, "Asia/Tokyo").messages_per_day) == [dt.date(2025, 1, 9)]
    assert list(describe_store(sqlite_url, "America/Los_Angeles").messages_per_day) == [
        dt.date(2025, 1, 8)
    ]


def test_an_empty_store_is_described_without_failing(sqlite_url):
    upgrade(sqlite_url)
    summary = describe_store(sqlite_url)
    assert summary.messages == 0 and summary.messages_per_day == {}
    assert "messages: 0" in summary.render()


def test_cli_upgrades_generates_and_describes(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    cli.main(["store", "upgrade", "--url", url])
    dev_cli.main(["generate", "--url", url, "--messages", "300", "--days", "2", "--seed", "9"])
    cli.main(["store", "describe", "--url", url])
    out = capsys.readouterr().out
    assert "wrote 300 messages" in out
    assert "messages: 300" in out


def test_demo_builds_a_fresh_store_and_prints_what_is_in_it(tmp_path, capsys):
    for _ in range(2):  # a second run starts afresh
        demo.main(["--dir", str(tmp_path)])
    out = capsys.readouterr().out.split("Demo store:")[-1]
    summary = describe_store(f"sqlite:///{tmp_path / 'store.db'}")
    examples = sum(len(s.script) for s in SCENARIOS)
    assert summary.messages == demo.DEMO_CONFIG.messages + examples
    assert f"messages: {summary.messages:,}" in out
    assert "group_two_staff_same_target" in out
    assert "per day (Asia/Tokyo)" in out
    assert not any(word in out.lower() for word in ("placeholder", "todo", "not implemented"))
