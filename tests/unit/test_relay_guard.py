"""The relayer guard's pure parts: token buckets and the client a request counts against."""

from __future__ import annotations

from backend.api.relay.budget import DAY, day_of, until_next_day
from backend.api.relay.guard import TokenBuckets, client_of


def test_token_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    buckets = TokenBuckets(burst=3, per_minute=6.0)  # one token per 10 s
    assert [buckets.take("a", now=100.0) for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a", now=100.0) == 10  # empty: the next token in 10 s
    assert buckets.take("b", now=100.0) == 0  # another key has its own bucket
    assert buckets.take("a", now=105.0) == 5
    assert buckets.take("a", now=110.0) == 0
    assert buckets.take("a", now=110.0) == 10
    assert [buckets.take("a", now=1000.0) for _ in range(4)] == [0, 0, 0, 10]  # never above the burst


def test_token_buckets_keep_a_bounded_number_of_keys() -> None:
    buckets = TokenBuckets(burst=1, per_minute=1.0, max_keys=2)
    for key in ("a", "b", "c"):
        assert buckets.take(key, now=0.0) == 0
    assert buckets.take("c", now=0.0) > 0
    assert len(buckets._buckets) == 2


def test_client_is_the_proxy_appended_value_or_the_peer() -> None:
    headers = {"x-forwarded-for": "6.6.6.6, 10.1.2.3"}  # the first value is the client's own claim
    assert client_of(headers, "127.0.0.1", "X-Forwarded-For") == "10.1.2.3"
    assert client_of(headers, "127.0.0.1", "") == "127.0.0.1"
    assert client_of({}, "127.0.0.1", "X-Forwarded-For") == "127.0.0.1"
    assert client_of({}, None, "") == "unknown"


def test_budget_days_are_utc_days() -> None:
    assert day_of(DAY * 5 + 1) == 5 and until_next_day(DAY * 5 + 1) == DAY - 1
