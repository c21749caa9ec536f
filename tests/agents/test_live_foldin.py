"""Issue #10: with an implicit-ALS version serving, each user's vector is the exact fold-in
of every movie they watched or rated, recomputed on their events (no SGD, no item steps).

The real app (Kafka recorded), a real registry directory, a real ImplicitALS fit.
"""
from __future__ import annotations

import numpy as np
import pytest

from models.als import ImplicitALS
from models.registry import Registry
from recstream.records import Rating, WatchMinute
from tables.broadcast import decode_item_state
from tables.codecs import decode_movie_stats, user_key
from tests.agents.test_model_swap import fill_online, movies
from tests.wiring import model_follower, movie_writer, user_writer


@pytest.fixture
def settings(settings, tmp_path):
    import dataclasses
    return dataclasses.replace(settings, registry_dir=str(tmp_path / "registry"))


def promote_ials(rt) -> tuple[dict, ImplicitALS]:
    rng = np.random.default_rng(3)
    names = movies()
    users = np.repeat(np.arange(1, 101), 12)
    items = np.array([names[(u * 7 + j * 13 + int(rng.integers(0, 3))) % len(names)]
                      for u, j in zip(users, np.tile(np.arange(12), 100))])
    model = ImplicitALS(n_factors=rt.settings.n_factors, regularization=5.0, alpha=2.0,
                        seed=0, confidence="binary").fit(users, items, np.ones(users.size))
    registry = Registry(rt.settings.registry_path)
    version = registry.add(model.to_arrays(), {"model": "ImplicitALS",
                                               "hyperparameters": model.get_params()})
    return registry.promote(version, decision={"passed": True}), model


def oracle(model: ImplicitALS, watched: list[str]) -> np.ndarray:
    """(Y^T Y + alpha Y_I^T Y_I + reg I) x = (1 + alpha) Y_I^T 1, solved in float64."""
    y = model.item_factors.astype(np.float64)
    rows = [list(model.item_ids).index(m) for m in watched]
    yi = y[rows]
    a = y.T @ y + model.alpha * yi.T @ yi + model.regularization * np.eye(y.shape[1])
    return np.linalg.solve(a, (1 + model.alpha) * yi.sum(axis=0))


async def test_events_fold_the_user_in_exactly_once_per_batch(rt, recorder, make_event):
    fill_online(rt)
    pointer, model = promote_ials(rt)
    assert await model_follower(rt).switch(pointer)
    assert rt.recommender.popularity_blend == 0.0 and rt.current_model.model.implicit
    writer = user_writer(rt)
    seen = [m for m in movies() if m in set(model.item_ids)][:8]
    events = [WatchMinute(time=100.0 + i, user=777, movie=m, minute=0)
              for i, m in enumerate(seen[:5])]
    events += [Rating(time=200.0 + i, user=777, movie=m, rating=2)
               for i, m in enumerate(seen[5:])]
    batch = [(make_event(r, key=user_key(777)), r) for r in events]
    await writer.apply(batch)
    row = rt.users.get_row(777)
    np.testing.assert_allclose(rt.users.factors[row], oracle(model, seen), rtol=1e-4,
                               atol=1e-5)
    first = rt.users.factors[row].copy()
    pairs = rt.metrics.registry.get_sample_value("recstream_interactions_total")
    assert pairs == len(seen)  # new (user, movie) pairs: the retrain's volume trigger
    await writer.apply(batch + [(make_event(r, key=user_key(777)), r)  # redelivered, more
                                for r in [WatchMinute(time=300.0, user=777, movie=seen[0],
                                                      minute=30)]])
    np.testing.assert_array_equal(rt.users.factors[row], first)  # nothing new: unchanged
    assert rt.metrics.registry.get_sample_value("recstream_interactions_total") == pairs
    # Order-free: the same movies in reverse order give the same vector.
    reverse = [(make_event(r, key=user_key(778)), r) for r in
               [WatchMinute(time=100.0 + i, user=778, movie=m, minute=0)
                for i, m in enumerate(reversed(seen))]]
    await writer.apply(reverse)
    np.testing.assert_allclose(rt.users.factors[rt.users.get_row(778)], first, rtol=1e-5,
                               atol=1e-6)
    # No item-side SGD: items change only by batch fits.
    assert all(not value.steps for _, value in recorder.on("movie_updates"))
    line, source = rt.recommender.answer(777)
    assert source == "personal" and not set(line.split(",")) & set(seen)
    # A user the fit never saw, whose vector a swap left behind, is folded in by refit.
    rt.users.has_vector[row] = False
    rt.current_model.queue_refit(777)
    model_follower(rt).refit_some()
    np.testing.assert_allclose(rt.users.factors[row], first, rtol=1e-5, atol=1e-6)


def weighted_oracle(model: ImplicitALS, watched: list[str], half_life: float) -> np.ndarray:
    """The same solve with item j of n weighing ``alpha * 2^(-(n-1-j)/h)`` (oldest first)."""
    y = model.item_factors.astype(np.float64)
    yi = y[[list(model.item_ids).index(m) for m in watched]]
    c = model.alpha * 2.0 ** (-(len(watched) - 1 - np.arange(len(watched))) / half_life)
    a = y.T @ y + (yi.T * c) @ yi + model.regularization * np.eye(y.shape[1])
    return np.linalg.solve(a, yi.T @ (1 + c))


async def test_recency_weights_at_fold_in_and_every_user_refolded_after_a_swap(rt, make_event):
    fill_online(rt)
    pointer, model = promote_ials(rt)
    registry = Registry(rt.settings.registry_path)
    model.recent_half_life = 3.0  # the same factors, folded in with recency weights
    version = registry.add(model.to_arrays(), {"model": "ImplicitALS",
                                               "hyperparameters": model.get_params()})
    pointer = registry.promote(version, decision={"passed": True})
    writer = user_writer(rt)
    seen = [m for m in movies() if m in set(model.item_ids)][:8]
    # User 1 is in the fit; before the swap their events land on the online model.
    await writer.apply([(make_event(r, key=user_key(1)), r) for r in
                        [WatchMinute(time=100.0 + i, user=1, movie=m, minute=0)
                         for i, m in enumerate(seen)]])
    follower = model_follower(rt)
    assert await follower.switch(pointer)
    row = rt.users.get_row(1)
    batch_vector = model.user_factors[list(model.user_ids).index(1)]
    np.testing.assert_allclose(rt.users.factors[row], batch_vector)  # until refolded
    while rt.current_model.pending_refits:
        follower.refit_some()
    expected = weighted_oracle(model, seen, 3.0)
    np.testing.assert_allclose(rt.users.factors[row], expected, rtol=1e-4, atol=1e-5)
    assert np.max(np.abs(rt.users.factors[row] - oracle(model, seen))) > 1e-4  # not binary
    # Order matters now: the same movies newest-first give another vector.
    await writer.apply([(make_event(r, key=user_key(779)), r) for r in
                        [WatchMinute(time=100.0 + i, user=779, movie=m, minute=0)
                         for i, m in enumerate(reversed(seen))]])
    np.testing.assert_allclose(rt.users.factors[rt.users.get_row(779)],
                               weighted_oracle(model, list(reversed(seen)), 3.0),
                               rtol=1e-4, atol=1e-5)


async def test_a_swap_never_scores_an_old_vector_and_a_request_refits_on_the_spot(
        rt, make_event):
    """Issue #11: users left behind by a swap are not ranked with the replaced model's
    vector against the new item factors; asked for before their refit, they are folded in
    on the spot, and the refit queue does not redo (or undo) it."""
    fill_online(rt)
    pointer, model = promote_ials(rt)  # fitted on users 1..100
    writer = user_writer(rt)
    seen = [m for m in movies() if m in set(model.item_ids)][:6]
    await writer.apply([(make_event(r, key=user_key(777)), r) for r in  # an online vector
                        [Rating(time=100.0 + i, user=777, movie=m, rating=4)
                         for i, m in enumerate(seen)]])
    follower = model_follower(rt)
    assert await follower.switch(pointer)
    users = rt.users
    for user in (777, 150):  # 150: an online vector, no history
        row = users.get_row(user)
        assert users.pending[row] and not users.has_vector[row]
        assert not users.factors[row].any() and users.bias[row] == 0.0
        assert row not in users.dirty  # the refresher leaves them to the refit
    line, source = rt.recommender.answer(777)
    row = users.get_row(777)
    assert source == "personal" and not users.pending[row]
    np.testing.assert_allclose(users.factors[row], oracle(model, seen), rtol=1e-4, atol=1e-5)
    assert not set(line.split(",")) & set(seen)
    line, source = rt.recommender.answer(150)  # nothing to fold in: no personal part
    assert source == "popular" and line and not users.factors[users.get_row(150)].any()
    folded = users.factors[row].copy()
    stamp = int(users.stamp[row])
    while rt.current_model.pending_refits:
        assert await follower.refit_batch(solve=64, gather=16) >= 0
    assert users.stamp[row] == stamp  # already refit: skipped
    np.testing.assert_array_equal(users.factors[row], folded)
    fitted = users.get_row(5)  # in the fit: its own factors, at once
    np.testing.assert_array_equal(users.factors[fitted], model.user_factors[
        list(model.user_ids).index(5)])


async def test_a_refit_never_overwrites_a_vector_set_while_it_was_solved(rt, make_event):
    from agents.model_swap import apply_refits, solve_refits, take_refits
    fill_online(rt)
    pointer, model = promote_ials(rt)
    writer = user_writer(rt)
    seen = [m for m in movies() if m in set(model.item_ids)][:4]
    for user in (801, 802):
        await writer.apply([(make_event(r, key=user_key(user)), r) for r in
                            [Rating(time=100.0 + i, user=user, movie=m, rating=4)
                             for i, m in enumerate(seen)]])
    assert await model_follower(rt).switch(pointer)
    cm, users = rt.current_model, rt.users
    taken = take_refits(current_model=cm, users=users, user_store=rt.user_store, limit=10_000)
    assert {801, 802} <= set(taken.users)
    vectors = solve_refits(cm.model, taken)
    users.set_vector(802, 0.0, np.full(rt.settings.n_factors, 7.0, np.float32))  # the writer
    assert apply_refits(taken, vectors, current_model=cm, users=users) == len(taken.users) - 1
    np.testing.assert_allclose(users.factors[users.get_row(801)], oracle(model, seen),
                               rtol=1e-4, atol=1e-5)
    assert np.all(users.factors[users.get_row(802)] == 7.0)


async def test_item_steps_learnt_under_a_replaced_model_never_reach_its_successor(
        rt, recorder, make_event):
    """Issue #10 phase 5: the movie writer lags the user writer (its backlog reached 70k
    updates on a replay), so online-MF item steps computed under generation 0 were applied,
    after the swap, to the implicit-ALS version's item factors -- stepped with old-space
    user vectors and written and broadcast as the new generation's.  The popular movies
    (most steps) drifted furthest: on the service 128 factors + recency served 0.84x
    popularity with coverage 0.029 while its replica was 1.72x.  A step carries the
    generation it was learnt under and is dropped by any other."""
    fill_online(rt)
    writer = user_writer(rt)
    pointer, model = promote_ials(rt)
    seen = [m for m in movies() if m in set(model.item_ids)][:6]
    await writer.apply([(make_event(r, key=user_key(user)), r) for user in (3, 4) for r in
                        [Rating(time=100.0 + i, user=user, movie=m, rating=5)
                         for i, m in enumerate(seen)]])
    backlog = [value for _, value in recorder.on("movie_updates")]
    assert backlog and all(u.steps for u in backlog)  # online MF: item halves sent
    movie_writer_ = movie_writer(rt)
    rt.current_model.on_swap(movie_writer_.forget)
    assert await model_follower(rt).switch(pointer)
    await movie_writer_.apply([make_event(u, key=u.movie.encode(),
                                          topic="recstream-movie-updates") for u in backlog])
    for movie in seen:  # the version's own factors, in the index, the table and the broadcast
        want = model.item_factors[list(model.item_ids).index(movie)]
        np.testing.assert_array_equal(rt.items.vector(movie)[1], want)
        assert not recorder.writes("item_factors", movie.encode())
    await movie_writer_.broadcast()
    sent = {key.decode(): decode_item_state(value) for key, value in
            recorder.on("item_broadcast")}
    for movie in seen:
        _, factors, *_, generation = sent[movie]
        assert generation == rt.current_model.generation
        np.testing.assert_array_equal(factors, model.item_factors[
            list(model.item_ids).index(movie)])
    # Counting is unaffected: the plays and ratings of the backlog still count.
    stats = decode_movie_stats(rt.tables.movie_stats.get(seen[0].encode()))
    assert stats.ratings == 2


async def test_movies_an_implicit_version_never_saw_are_not_ranked_by_a_random_vector(rt):
    """Issue #10 phase 5: a movie newer than the implicit-ALS fit kept its online init
    vector (random, scale ``init_scale``) after the swap and was ranked by it against every
    folded-in user; with ials user vectors sharing a large common direction the same few
    unknown movies rose for everyone.  Now they score 0 until the next fit."""
    fill_online(rt)
    rt.items.update("before+swap+2024", bias=0.0, pop_score=1.0, pop_time=0.0)
    assert rt.items.vector("before+swap+2024")[1].any()  # its online init vector
    pointer, model = promote_ials(rt)
    assert "before+swap+2024" not in set(model.item_ids)
    assert await model_follower(rt).switch(pointer)
    for movie in ("before+swap+2024", "after+swap+2025"):  # in the index / arriving later
        rt.items.row(movie)
        bias, factors = rt.items.vector(movie)
        assert bias == 0.0 and not factors.any(), movie
    known = model.item_ids[0]
    np.testing.assert_array_equal(rt.items.vector(known)[1], model.item_factors[0])
