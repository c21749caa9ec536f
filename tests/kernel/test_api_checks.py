"""Schema enforcement wiring: API objects counted and quarantined, outcomes compared (#12)."""
from __future__ import annotations

from recstream.api_checks import ApiObjectGate, SentAnswers
from recstream.prometheus import Metrics


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_api_objects_are_counted_by_field_and_reason_and_quarantined():
    metrics, quarantined = Metrics(), []

    async def quarantine(rejected):
        quarantined.append(rejected)

    gate = ApiObjectGate(violations=metrics.api_violations, quarantine=quarantine)
    good = {"id": "up+2009", "title": "Up", "adult": "False", "genres": [{"id": 1, "name": "A"}],
            "release_date": "2009-05-28", "runtime": "96"}
    assert await gate.check("movie", good) and quarantined == []
    quirky = dict(good, runtime="null", adult="maybe")
    assert await gate.check("movie", quirky)  # usable, but reported
    assert value(metrics, "recstream_api_schema_violations_total", api="movie",
                 field="runtime", reason="missing") == 1
    assert len(quarantined) == 1 and quarantined[0].reason.startswith("movie_api:")
    assert "runtime:missing" in quarantined[0].reason and '"maybe"' in quarantined[0].line
    # no usable id: dropped (never reaches a table), and never a crash on junk
    for junk in ({"title": "x"}, [], "text", None, {"id": {"nested": [1] * 10}}):
        assert not await gate.check("movie", junk)
    assert not await gate.check("user", {"user_id": "not a number", "age": "-4"})
    user_fields = {s.labels["field"] for m in metrics.api_violations.collect()
                   for s in m.samples if s.labels.get("api") == "user"
                   and s.name.endswith("_total") and s.value > 0}
    assert "user_id" in user_fields
    assert sum(1 for r in quarantined if r.reason.startswith("user_api:")) == 1


def test_outcome_lines_are_compared_with_what_we_sent():
    metrics = Metrics()
    sent = SentAnswers(mismatches=metrics.outcome_mismatches,
                       compared=metrics.outcomes_compared)
    assert sent.compare(5, 200, ["a"]) is None  # nothing sent to user 5: not ours
    sent.record(5, "a,b,c")
    sent.record(5, "d,e")
    assert sent.compare(5, 200, ["a", "b", "c"]) == []  # matches an earlier answer
    assert sent.compare(5, 200, ["e", "d"]) == [("result", "reordered")]
    sent.record(5, "a,b")
    assert sent.compare(5, 500, [], "timeout") == [("status", "non_200")]
    sent.record(6, "x,y")
    assert sent.compare(6, 200, ["x"]) == [("result", "lost_ids")]
    got = {reason: value(metrics, "recstream_outcome_mismatches_total", reason=reason)
           for reason in ("non_200", "lost_ids", "extra_ids", "reordered")}
    assert got == {"non_200": 1, "lost_ids": 1, "extra_ids": 0, "reordered": 1}
    assert value(metrics, "recstream_outcomes_compared_total") == 4
