"""Unit tests of the retry policy and the Retry-After parser (no server)."""

from __future__ import annotations

import email.utils

import pytest

from twh import RetryPolicy
from twh._core import looks_like_mutation, parse_retry_after


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_full_jitter_is_capped() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=4.0, max_retry_after=10.0)
    for retry in range(8):
        ceiling = min(4.0, 0.5 * 2**retry)
        delays = [policy.delay(retry) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # spread over the range, not fixed
    assert policy.delay(0, retry_after=2.0) == 2.0
    assert policy.delay(0, retry_after=3600.0) == 10.0


def test_mutation_detection() -> None:
    assert looks_like_mutation("mutation { createItem }")
    assert looks_like_mutation("# hi\n  mutation M($a: Int) { x }")
    assert not looks_like_mutation("{ items { nodes { sku } } }")
    assert not looks_like_mutation("query Q { items(search: \"mutation\") { nodes { sku } } }")
    assert not looks_like_mutation("# mutation\nquery Q { a }")
