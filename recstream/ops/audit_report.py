"""``recstream audit``'s analyses: pure functions of telemetry, each → a markdown report.

:class:`Telemetry` is what the command reads from Kafka (recstream/ops/audit.py):
our answers (the recommendations topic), the platform's movielog (watch starts,
ratings, accounts), demographics (the user_history changelog), the catalogue's
guardrail flags (the movie-metadata topic) and the live detector's suspects.
The computations are models/fairness.py, models/feedback.py,
models/detectors.py and models/guardrails.py; here they are only joined.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np

from models import feedback
from models.detectors import SybilDetector
from models.fairness import age_band, difference_ci, parity
from models.guardrails import ADULT, audience
from models.poison_reach import reach_by_hour

ATTRIBUTION_S = 3600.0  # a watch within an hour of an answer that listed it converts it
EARLY_MINUTES = 10      # minutes of a young account's watch kept for the sybil replay (it asks ≤ 2)


@dataclasses.dataclass
class Telemetry:
    served: list[tuple[float, int, list[str]]] = dataclasses.field(default_factory=list)
    watches: list[tuple[float, int, str]] = dataclasses.field(default_factory=list)  # starts
    ratings: list[tuple[float, int, str, int]] = dataclasses.field(default_factory=list)
    accounts: list[tuple[float, int]] = dataclasses.field(default_factory=list)
    demographics: dict[int, tuple[Any, str]] = dataclasses.field(default_factory=dict)
    flags: dict[str, tuple[bool, bool]] = dataclasses.field(default_factory=dict)  # all, minors
    suspects: dict[int, set[str]] = dataclasses.field(default_factory=dict)
    # Operator-supplied user → group labels (e.g. a community the platform knows of);
    # users without one are "other".
    groups: dict[int, str] = dataclasses.field(default_factory=dict)
    # The platform's own outcome lines (status 200) in the movielog: what the user was shown,
    # on the movielog's clock.  Our answer log stamps the worker's wall clock, which is not
    # the movielog's under a sped-up simulator or a replay (#14 phase 4).
    shown: list[tuple[float, int, list[str]]] = dataclasses.field(default_factory=list)
    # The first EARLY_MINUTES minutes of each watch by an account created in the movielog:
    # how much a young account watched before it rated (the sybil replay's "shallow" test).
    early_minutes: list[tuple[float, int, str, int]] = dataclasses.field(default_factory=list)
    new_accounts: set[int] = dataclasses.field(default_factory=set)

    def sort(self) -> "Telemetry":
        for rows in (self.served, self.watches, self.ratings, self.accounts, self.shown,
                     self.early_minutes):
            rows.sort(key=lambda r: r[0])
        return self

    def timed(self) -> list[tuple[float, int, list[str]]]:
        """The answers to pair with watches and ratings by time: the platform's outcome
        lines when the movielog has them, else our own log."""
        return self.shown or self.served


def conversions(t: Telemetry, horizon_s: float = ATTRIBUTION_S) -> tuple[np.ndarray, np.ndarray]:
    """Per answer: ``(user, 1.0 if the user started one of its movies within horizon_s)``."""
    starts: dict[int, list[tuple[float, str]]] = {}
    for when, user, movie in t.watches:
        starts.setdefault(user, []).append((when, movie))
    users, converted = [], []
    for when, user, movies in t.timed():
        listed = set(movies)
        hit = any(when <= w <= when + horizon_s and m in listed for w, m in starts.get(user, ()))
        users.append(user)
        converted.append(1.0 if hit else 0.0)
    return np.asarray(users, np.int64), np.asarray(converted)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def fairness(t: Telemetry, *, bound: float = 0.2, n_boot: int = 2000, seed: int = 0) -> str:
    users, conv = conversions(t)
    lines = ["# Fairness audit", "",
             f"{len(conv)} answers; conversion = the user started a listed movie within "
             f"{ATTRIBUTION_S / 3600:g} h. Requirement (system): no group's conversion more "
             f"than {bound:.0%} (relative) below the best group's, judged on the 95% "
             "bootstrap interval of the gap (users resampled with all their answers).", ""]
    if not len(conv):
        return "\n".join(lines + ["No answers in the telemetry."])
    demo = [t.demographics.get(int(u), (None, "")) for u in users]
    ages = np.asarray([a if isinstance(a, int) and not isinstance(a, bool) else -1
                       for a, _ in demo])
    attributes = {"gender": np.asarray([g or "unknown" for _, g in demo], dtype=object),
                  "age band": age_band(ages)}
    if t.groups:
        attributes["group"] = np.asarray([t.groups.get(int(u), "other") for u in users],
                                         dtype=object)
    for name, groups in attributes.items():
        report = parity(conv, groups, bound=bound, n_boot=n_boot, seed=seed, clusters=users)
        lines += [f"## By {name}", "", "| group | answers | conversion |", "|---|---|---|"]
        lines += [f"| {g} | {n} | {_pct(m)} |" for g, (m, n) in sorted(report.means.items())]
        if report.best is None:
            lines += ["", "Fewer than two groups with 30 answers: no comparison.", ""]
            continue
        diff, lo, hi = difference_ci(conv, groups, report.best, report.worst, n_boot=n_boot,
                                     seed=seed, clusters=users)
        verdict = "**bound broken**" if report.broken else (
            "difference visible (CI excludes 0)" if report.visible else "no visible difference")
        lines += ["", f"Best {report.best} vs worst {report.worst}: {100 * diff:+.2f} points "
                      f"(95% CI {100 * lo:+.2f} to {100 * hi:+.2f}); relative gap "
                      f"{report.gap:.1%} (CI {report.lo:.1%} to {report.hi:.1%}) — {verdict}.", ""]
    return "\n".join(lines)


def exposure_counts(t: Telemetry) -> tuple[np.ndarray, list[str]]:
    catalogue = sorted(set(t.flags) | {m for _, _, ms in t.served for m in ms}
                       | {m for _, _, m in t.watches})
    row = {m: i for i, m in enumerate(catalogue)}
    counts = np.zeros(len(catalogue), np.int64)
    for _, _, movies in t.served:
        for m in movies:
            counts[row[m]] += 1
    return counts, catalogue


def feedback_measures(t: Telemetry) -> dict[str, float]:
    counts, _ = exposure_counts(t)
    from_lists = feedback.from_lists(t.watches, t.timed(), horizon_s=ATTRIBUTION_S)
    recommended = feedback.from_lists([(w, u, m) for w, u, m, _ in t.ratings], t.timed(),
                                      horizon_s=24 * ATTRIBUTION_S)
    inflation, compared = feedback.rating_inflation([m for _, _, m, _ in t.ratings],
                                                    [r for *_, r in t.ratings], recommended)
    return {"catalogue": float(len(counts)), "gini": feedback.gini(counts),
            "top1_share": feedback.top_share(counts, 0.01),
            "coverage": feedback.coverage(counts),
            "watches_from_lists": float(from_lists.mean()) if len(from_lists) else 0.0,
            "rating_inflation": inflation, "inflation_movies": float(compared)}


def feedback_report(t: Telemetry) -> str:
    m = feedback_measures(t)
    return "\n".join([
        "# Feedback-loop audit", "",
        f"Over {len(t.served)} answers, {len(t.watches)} watch starts and {len(t.ratings)} "
        f"ratings; catalogue = {int(m['catalogue'])} movies seen in metadata, answers or watches.",
        "", "| measure | value |", "|---|---|",
        f"| exposure Gini (0 even, 1 one title) | {m['gini']:.3f} |",
        f"| top-1% titles' share of exposure | {_pct(m['top1_share'])} |",
        f"| catalogue coverage (exposed at least once) | {_pct(m['coverage'])} |",
        f"| watch starts from our lists (within 1 h) | {_pct(m['watches_from_lists'])} |",
        f"| rating inflation, recommended − organic (same movie) | {m['rating_inflation']:+.3f} "
        f"over {int(m['inflation_movies'])} movies |", ""])


def replay_detector(t: Telemetry, *, min_accounts: int = 10) -> SybilDetector:
    """The live sybil detector fed the movielog's accounts, young accounts' watches (minute by
    minute, as far as its "shallow" test asks) and ratings in time order."""
    detector = SybilDetector(min_accounts=min_accounts)
    events = [(w, 0, u, "", 0) for w, u in t.accounts] + \
        [(w, 1, u, m, 0) for w, u, m in t.watches] + \
        [(w, 1, u, m, minute) for w, u, m, minute in t.early_minutes] + \
        [(w, 2, u, m, r) for w, u, m, r in t.ratings]
    for when, kind, user, movie, value in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == 0:
            detector.account(when, user)
        elif kind == 1:
            detector.watch(when, user, movie, value)
        else:
            detector.rate(when, user, movie, value)
    return detector


def security(t: Telemetry, *, min_accounts: int = 10, reach_bound: float = 0.01) -> str:
    detector = replay_detector(t, min_accounts=min_accounts)
    offline = set(detector.suspected_accounts)
    live = set(t.suspects)
    suspects = offline | live
    pushed = set(detector.pushed_movies) | {m for ms in t.suspects.values() for m in ms}
    # A push begins with the first suspect's rating of the movie (else when it was flagged;
    # else at the start: everything counts).
    first = {m: min((w for w, u, mv, _ in t.ratings if mv == m and u in suspects), default=None)
             for m in pushed}
    pushed_at = {m: w if w is not None else detector.pushed_movies.get(m, float("-inf"))
                 for m, w in first.items()}
    return "\n".join([
        "# Security audit", "",
        "Rating poisoning: the sybil detector (models/detectors.py) replayed over the movielog, "
        "next to what the live detector put on the suspects topic.", "",
        "| | accounts |", "|---|---|",
        f"| suspected offline | {len(offline)} |", f"| suspected live | {len(live)} |",
        f"| both | {len(offline & live)} |", "",
        *reach_section(t, pushed_at, suspects, bound=reach_bound),
        "Scraping is judged live per client address (recstream_scraping_flagged_clients_total); "
        "answers on the recommendations topic carry no client address.", ""])


def reach_section(t: Telemetry, pushed_at: dict[str, float], suspects: set, *,
                  bound: float) -> list[str]:
    """Each pushed movie's reach into other users' lists from its push on, hour by hour, on
    the platform's outcome lines (the movielog's clock, the same as the push's)."""
    head = [f"Pushed movies and their reach into other users' lists from the push on "
            f"(requirement: at most {bound:.0%} of the users shown a list, in every hour):", ""]
    if not pushed_at:
        return head + ["No pushed movie.", ""]
    rows = ["| movie | reached after the push |", "|---|---|"]
    for movie in sorted(pushed_at):
        r = reach_by_hour(t.timed(), {movie: pushed_at[movie]}, suspects)
        rows.append(f"| {movie} | {r.after[1]} of {r.after[0]} users "
                    f"({_pct(r.after[1] / max(r.after[0], 1))}) |")
    r = reach_by_hour(t.timed(), pushed_at, suspects)
    share, hour, users = r.worst()
    over = r.hours_over(bound)
    verdict = "not shown (no list after the push)" if not r.hourly else (
        "**broken**" if over else "**met**")
    return head + rows + [
        "", f"All pushed movies: organically before the push: {r.before[1]} of {r.before[0]} "
            f"users; worst hour: {_pct(share)} ({round(share * users)} of {users}, hour {hour}); "
            f"{over} of {len(r.hourly)} hours over {bound:.0%} — {verdict}.", ""]


def safety_counts(t: Telemetry) -> dict[str, Counter]:
    out = {"adult": Counter(), "minor": Counter(), "unknown": Counter()}
    for _, user, movies in t.served:
        age = t.demographics.get(user, (None, ""))[0]
        who = audience(age)
        for m in movies:
            safe_all, safe_minors = t.flags.get(m, (False, False))
            ok = safe_all if who == ADULT else safe_minors
            out[who]["titles"] += 1
            if m not in t.flags:
                out[who]["unconfirmed"] += 1
            if not ok:
                out[who]["unsafe"] += 1
    return out


def safety(t: Telemetry) -> str:
    counts = safety_counts(t)
    rows = [f"| {who} | {c['titles']} | {c['unconfirmed']} | {c['unsafe']} |"
            for who, c in counts.items()]
    bad = counts["minor"]["unsafe"] + counts["unknown"]["unsafe"]
    shown = counts["minor"]["titles"] + counts["unknown"]["titles"]
    verdict = (f"broken ({bad})" if bad else "met" if shown
               else "not shown (no title was served to minors or users of unknown age)")
    return "\n".join([
        "# Safety audit", "",
        f"Every served title checked against the movie API's record (models/guardrails.py: "
        f"{len(t.flags)} movies confirmed) and the user's audience from the user API "
        "(unknown age gets the minors' rules).", "",
        "| audience | titles served | unconfirmed | unsafe for the audience |",
        "|---|---|---|---|", *rows, "",
        f"Requirement: 0 unsafe titles to minors or users of unknown age — "
        f"**{verdict}**.", ""])


REPORTS = {"fairness": fairness, "feedback": feedback_report, "security": security,
           "safety": safety}
