"""Benchmark: generate N messages (default 1,000,000) in one day into a fresh SQLite store.

    .venv/bin/python bench/generate_store.py [--messages 1000000] [--path var/bench/store.db]

Prints wall time, messages per second and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from talklog.store.migrate import upgrade
from talklog_dev.demo_store import remove_store_files
from talklog_dev.synth import GeneratorConfig, generate

REPO_ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS, KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--path", type=Path, default=REPO_ROOT / "var" / "bench" / "store.db")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    args = parser.parse_args(argv)

    args.path.parent.mkdir(parents=True, exist_ok=True)
    remove_store_files(args.path)
    url = f"sqlite:///{args.path}"
    upgrade(url)
    rss_before = _peak_rss_mib()
    config = GeneratorConfig(
        seed=args.seed,
        days=1,
        n_staff=200,
        n_customers=5_000,
        n_rooms=4_000,
        messages=args.messages,
        chunk_size=args.chunk_size,
    )
    began = time.perf_counter()
    report = generate(url, config)
    seconds = time.perf_counter() - began
    print(
        f"messages:       {report.messages:,} in one day ({report.rooms:,} rooms, "
        f"{report.links:,} links)"
    )
    print(f"wall time:      {seconds:.1f} s")
    print(f"rate:           {report.messages / seconds:,.0f} messages/s")
    print(f"peak RSS:       {_peak_rss_mib():.0f} MiB (after migrations: {rss_before:.0f} MiB)")
    print(f"store size:     {args.path.stat().st_size / 2**20:,.0f} MiB at {args.path}")


if __name__ == "__main__":
    main()
