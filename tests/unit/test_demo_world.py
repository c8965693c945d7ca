"""The demo's LINE WORKS emulator holds the demo store's world (same people and rooms)."""

from __future__ import annotations

from talklog_dev.demo import lineworks_args
from talklog_dev.demo_store import DEMO_CONFIG
from talklog_dev.lineworks_emulator.__main__ import build_parser


def test_the_emulator_is_started_with_every_setting_of_the_demo_world():
    args = build_parser().parse_args(["serve", *lineworks_args(DEMO_CONFIG)])
    started = {
        "seed": args.seed, "day": args.day, "days": args.days, "messages": args.messages,
        "n_staff": args.staff, "n_customers": args.customers, "n_rooms": args.rooms,
        "tz": args.tz, "quiet_day_share": args.quiet_day_share,
    }  # fmt: skip
    assert started == {name: getattr(DEMO_CONFIG, name) for name in started}
    assert DEMO_CONFIG.salesforce_user_ids is None  # a callable would change the world's plan
