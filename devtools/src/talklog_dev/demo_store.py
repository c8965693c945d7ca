"""The demo (`make demo`): a fresh, realistic message store, and what is in it.

    python -m talklog_dev.demo_store [--dir var/demo]

Steps: create `var/demo/store.db` afresh and migrate it, generate a few days of talk (fixed
seed), add the six examples of the spec's section 5 on the last day, print a summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from talklog.store.describe import describe_store
from talklog.store.migrate import upgrade
from talklog_dev.synth.examples import Example, write_examples
from talklog_dev.synth.generator import GenerationReport, GeneratorConfig, generate

_PACKAGE_ROOT = Path(__file__).resolve().parents[3]
REPO_ROOT = _PACKAGE_ROOT if (_PACKAGE_ROOT / "pyproject.toml").exists() else Path.cwd()
DEMO_DIR = REPO_ROOT / "var" / "demo"
TIME_ZONE = "Asia/Tokyo"
DEMO_CONFIG = GeneratorConfig(
    seed=20250108,
    day=dt.date(2025, 1, 8),
    days=4,
    tz=TIME_ZONE,
    n_staff=12,
    n_customers=80,
    n_rooms=60,
    messages=4_000,
    quiet_day_share=0.25,
)


def remove_store_files(path: Path) -> None:
    """Remove the SQLite store at `path` with its write-ahead log and shared-memory file (a
    log left behind would be applied to the next store of that name)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def fresh_store(directory: Path) -> str:
    """A new, migrated SQLite store at `directory/store.db` (any previous one is removed)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "store.db"
    remove_store_files(path)
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


def print_generation(report: GenerationReport) -> None:
    print(
        f"Generated {report.messages:,} messages in {report.rooms:,} rooms"
        f" ({report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC)"
        f" in {report.seconds:.1f} s"
    )


def print_examples(examples: dict[str, Example]) -> None:
    print("Section 5 examples (room: links -> expected result):")
    for example in examples.values():
        print(f"  {example.name:<29} {example.talk}")
        print(f"  {'':<29} {example.links} -> {example.result}")
        recipients = ", ".join(sorted(example.recipients)) or "none"
        print(f"  {'':<29} transcripts expected on: {recipients}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the demo store and describe it.")
    parser.add_argument("--dir", type=Path, default=DEMO_DIR, help="where store.db goes")
    args = parser.parse_args(argv)

    url = fresh_store(args.dir)
    print(f"Demo store: {url}")
    print_generation(generate(url, DEMO_CONFIG))
    last_day = DEMO_CONFIG.day + dt.timedelta(days=DEMO_CONFIG.days - 1)
    print_examples(write_examples(url, last_day, tz=TIME_ZONE))
    print()
    print(describe_store(url, TIME_ZONE).render())


if __name__ == "__main__":
    main()
