"""Start-up and rebalance loading: vectors against the serving generation, minors' flags."""
from __future__ import annotations

import numpy as np
import pytest

from recstream.records import UserProfile
from faust.types import TP

from tables.codecs import user_key
from tests.wiring import load_vectors, restore_minors, user_writer


@pytest.fixture(autouse=True)
def all_partitions_assigned(rt, monkeypatch):
    """Table iteration reads the partitions assigned to this worker: all of them here."""
    tps = {TP(table.changelog_topic.get_topic_name(), p)
           for table in rt.tables.all() for p in range(rt.settings.partitions)}
    monkeypatch.setattr(rt.app.assignor, "assigned_actives", lambda: tps)


async def test_minor_flags_come_back_from_stored_profiles(rt, make_event):
    writer = user_writer(rt)
    batch = []
    for user, age in ((11, 15), (12, 40), (13, -1)):
        profile = UserProfile(time=10.0, user=user, age=age, gender="F", source="none")
        batch.append((make_event(profile, key=user_key(user)), profile))
    await writer.apply(batch)
    assert rt.users.minor[rt.users.get_row(11)] and rt.users.minor[rt.users.get_row(13)]
    assert not rt.users.minor[rt.users.get_row(12)]
    rt.users.minor[:] = True  # a restart: rows start under the minors' rules (fail closed)
    assert await restore_minors(rt) == 1  # only the confirmed adult leaves them
    assert rt.users.minor[rt.users.get_row(11)]
    assert not rt.users.minor[rt.users.get_row(12)]
    assert rt.users.minor[rt.users.get_row(13)]  # unknown age: the minors' rules
    assert await restore_minors(rt) == 0  # idempotent


async def test_vectors_load_and_a_rebalance_keeps_newer_in_memory_ones(rt, make_event):
    k = rt.settings.n_factors
    for user in (1, 2):
        await rt.user_store.save_vector(user, 0.5, np.full(k, user, np.float32),
                                        make_event(b"", key=user_key(user)), 0)
    assert await load_vectors(rt) == 2
    np.testing.assert_array_equal(rt.users.factors[rt.users.get_row(2)], np.full(k, 2.0))
    rt.users.set_vector(2, 0.1, np.zeros(k, np.float32))  # learnt since: newer than the table
    assert await load_vectors(rt, keep_loaded=True) == 0
    np.testing.assert_array_equal(rt.users.factors[rt.users.get_row(2)], np.zeros(k))
