"""The worker's book of experiments: newest version wins, arms cached per user."""
from __future__ import annotations

from models.experiments.spec import ExperimentSpec, parse_arm
from recstream.experiments import ExperimentBook, parse_label


def ranker(exp_id="cost", version=1, state="running", exposure=1.0) -> ExperimentSpec:
    return ExperimentSpec(exp_id, "ranker", (parse_arm("control=baseline"),
                                             parse_arm("cheap=cost:1")), (1.0, 1.0),
                          exposure=exposure, version=version, state=state)


def coldstart() -> ExperimentSpec:
    return ExperimentSpec("desc", "coldstart", (parse_arm("on=describe:on"),
                                                parse_arm("off=describe:off")), (1.0, 1.0))


def test_only_a_newer_version_replaces_a_spec():
    book = ExperimentBook()
    assert book.apply(ranker(version=2))
    assert not book.apply(ranker(version=2, state="stopped"))  # redelivered / same version
    assert not book.apply(ranker(version=1, state="stopped"))  # older
    assert book.specs["cost"].running
    assert book.apply(ranker(version=3, state="stopped"))
    assert book.ranker_of(7) is None and book.label(7) == ""


def test_labels_and_policies_follow_the_assignment():
    book = ExperimentBook()
    book.apply(ranker())
    book.apply(coldstart())
    users = range(2_000)
    labels = [parse_label(book.label(u)) for u in users]
    assert all(set(l) == {"cost", "desc"} for l in labels)
    for u, l in zip(users, labels):
        assert l["cost"] == ranker().allocation.arm_of(u)
        assert book.describes(u) == (l["desc"] == "on")
        assert book.ranker_of(u)[1].name == l["cost"]
    shares = sum(l["cost"] == "cheap" for l in labels) / len(labels)
    assert 0.45 < shares < 0.55


def test_the_cache_is_dropped_when_a_spec_changes():
    book = ExperimentBook()
    book.apply(ranker(exposure=0.0))
    assert book.label(5) == ""
    book.apply(ranker(version=2, exposure=1.0))
    assert book.label(5).startswith("cost:")
    assert book.describes(5)  # no cold-start experiment: descriptions are used
