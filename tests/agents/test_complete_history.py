"""Issue #10: every movie a user watched or rated stays excluded, however long the history.

The bounded history keeps ``history_limit`` (200) entries; a user with 1,200 watched
movies used to get the oldest 1,000 recommended back.  Replayed through the real user
writer, read back from the table after a cache flush, ranked by the real recommender.
"""
from __future__ import annotations

import numpy as np

from tables.codecs import UserHistory, decode_history, encode_history, user_key
from tests.agents.test_writers import apply_lines, history_of
from tests.wiring import user_writer

USER, WATCHED, UNSEEN = 5, 1_200, 60


def watch_line(user: int, movie: str, i: int) -> str:
    minute, second = divmod(i, 60)
    return f"2024-10-14T{15 + minute // 60:02d}:{minute % 60:02d}:{second:02d},{user}," \
           f"GET /data/m/{movie}/0.mpg"


async def test_a_user_with_1200_watched_movies_never_gets_one_back(rt, make_event):
    writer = user_writer(rt)
    watched = [f"seen+{i}" for i in range(WATCHED)]
    for start in range(0, WATCHED, 100):  # micro-batches of 100, the cache dropped midway
        await apply_lines(rt, make_event, writer,
                          *[watch_line(USER, m, start + j)
                            for j, m in enumerate(watched[start:start + 100])])
        if start == WATCHED // 2:
            rt.user_store.forget_cache()
    rt.user_store.forget_cache()
    stored = history_of(rt, USER)
    assert len(stored.watches) == rt.settings.history_limit  # bounded, as before
    assert stored.items == watched  # complete, in first-seen order

    # Watched movies score highest, the oldest ones most: only unseen ones may be served.
    k = rt.settings.n_factors
    axis = np.zeros(k, np.float32)
    axis[0] = 1.0
    for i, movie in enumerate(watched):
        rt.items.update(movie, bias=0.0, factors=axis * (10.0 - i / WATCHED))
        rt.items.set_flags(movie, adult=False, minors_ok=True)  # confirmed by the movie API
    unseen = [f"new+{i}" for i in range(UNSEEN)]
    for i, movie in enumerate(unseen):
        rt.items.update(movie, bias=0.0, factors=axis * (1.0 - i / UNSEEN))
        rt.items.set_flags(movie, adult=False, minors_ok=True)
    rt.users.set_vector(USER, 0.0, axis)
    rt.users.invalidate(rt.users.row(USER))
    line, source = rt.recommender.answer(USER)
    served = line.split(",")
    assert source == "personal"
    assert served == unseen[:rt.settings.top_k]
    assert not set(served) & set(watched)


def test_old_records_adopt_their_bounded_history_and_ratings_join_the_set():
    old = b'{"w":{"a":[3,1.0,1.0,3]},"r":{"b":[4,2.0]},"c":null}'
    history = decode_history(old)
    assert history.items == ["a", "b"]
    history.rate("a", 5, 3.0)  # already in the set: not added twice
    history.rate("c", 2, 4.0)
    history.trim(1)
    again = decode_history(encode_history(history))
    assert again.items == ["a", "b", "c"] and again.seen() == {"a", "b", "c"}
    assert UserHistory().seen() == set()
