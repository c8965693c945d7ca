"""Reliability tests (issue 9): faults, crashes, concurrency, bad input, secrets."""
