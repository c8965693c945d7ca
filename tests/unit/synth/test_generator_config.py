"""Generator config, the allocation of messages to time slices and the vocabulary."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from talklog.store.models import MessageType
from talklog_dev.synth import GeneratorConfig, vocab
from talklog_dev.synth.generator import allocate, media_content


def test_day_and_days_give_local_midnights_in_utc():
    start, end = GeneratorConfig(day=dt.date(2025, 1, 9), days=2).window()
    assert start == dt.datetime(2025, 1, 8, 15, tzinfo=dt.UTC)
    assert end == dt.datetime(2025, 1, 10, 15, tzinfo=dt.UTC)


def test_explicit_start_and_end_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        GeneratorConfig(start=dt.datetime(2025, 1, 9), end=dt.datetime(2025, 1, 10))
    with pytest.raises(ValueError, match="both"):
        GeneratorConfig(start=dt.datetime(2025, 1, 9, tzinfo=dt.UTC))


def test_messages_per_day_scales_with_the_window():
    config = GeneratorConfig(messages=None, messages_per_day=1_000, days=3)
    assert config.total_messages() == 3_000
    with pytest.raises(ValueError, match="exactly one"):
        GeneratorConfig(messages=10, messages_per_day=10)


@given(
    st.integers(0, 100_000),
    st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=300),
    st.floats(0, 0.999),
)
def test_allocate_splits_the_total_exactly(total, weights, offset):
    counts = allocate(total, weights, offset)
    assert len(counts) == len(weights)
    assert all(c >= 0 for c in counts)
    if sum(weights) > 0:
        assert sum(counts) == total
        assert all(c == 0 for c, w in zip(counts, weights, strict=True) if w == 0)


def test_allocate_gives_small_weights_their_share_on_average():
    counts = allocate(100, [1.0] * 50 + [0.01] * 1000, 0.3)
    assert sum(counts[50:]) in (16, 17)  # 100 * 10 / 60


@pytest.mark.parametrize("length", [1, 32_001, 131_073])
def test_long_text_has_exactly_the_length_asked(length):
    assert len(vocab.long_text(random.Random(1), length)) == length


def test_non_text_messages_have_file_names_or_readable_text():
    rng = random.Random(3)
    for kind in (MessageType.IMAGE, MessageType.FILE, MessageType.AUDIO, MessageType.VIDEO):
        text, file_name, size = media_content(rng, kind)
        assert text is None and file_name and "." in file_name and size > 0
    for kind in (MessageType.STICKER, MessageType.LOCATION):
        text, file_name, size = media_content(rng, kind)
        assert text and file_name is None and size is None


def test_names_are_japanese_and_some_carry_emoji():
    rng = random.Random(5)
    names = [vocab.person_name(rng) for _ in range(300)]
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names)
    assert any(any(ch in vocab.EMOJI for ch in n) for n in names)
