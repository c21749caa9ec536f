"""recstream.cohorts: watch-through cohorts with their open views, and their persisted form."""
from __future__ import annotations

from recstream.cohorts import FEATURE, Cohorts

H = 3600.0


def make(**kw) -> Cohorts:
    return Cohorts(bucket_s=600.0, keep_s=3 * H + 600.0, **kw)


def test_a_completion_counts_once_in_its_start_bucket():
    c = make()
    c.start(0, 1, "a", 100.0, 100.0)
    c.start(0, 2, "a", 700.0, 700.0)
    assert c.complete(1, "a") == 100.0
    assert c.complete(1, "a") is None  # a second crossing of the threshold: not again
    assert c.complete(3, "a") is None  # never a recommended view
    assert c.totals_between(0.0, 600.0) == (1, 1)
    assert c.totals_between(600.0, 1200.0) == (1, 0)


def test_encode_load_round_trip_keeps_open_views():
    c = make()
    c.start(2, 1, "a", 100.0, 100.0)
    c.start(2, 2, "b", 150.0, 150.0)
    c.complete(2, "b")
    items = [(c.key(p, b), bucket.encode()) for p, b, bucket in c.dirty()]
    assert items[0][0] == f"2|{FEATURE}|0.000".encode()
    other = make()
    assert other.load(items + [(b"2|rating|0.000", b"\x00" * 8)], {2}, 200.0) == []
    assert other.totals_between(0.0, 600.0) == (2, 1)
    assert other.complete(1, "a") == 100.0  # started before the "restart", completes after
    assert make().load(items, {3}, 200.0) == [] and not make().buckets  # not our partition


def test_bounded_open_views_and_stale_keys():
    c = make(max_open=1)
    c.start(0, 1, "a", 10.0, 10.0)
    c.start(0, 2, "a", 20.0, 20.0)  # over the cap: a start, never completed
    assert c.totals_between(0.0, 600.0) == (2, 0) and c.dropped == 1
    assert c.complete(2, "a") is None
    stale = make().load([(f"0|{FEATURE}|0.000".encode(), b"not json"),
                         (f"0|{FEATURE}|0.000".encode(), c.buckets[(0, 0)].encode())],
                        {0}, 5 * H)  # 5 h later the bucket is out of the kept span
    assert len(stale) == 2
    assert c.advance(5 * H) == [] and not c.buckets and not c.where
