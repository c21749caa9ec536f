"""Artifacts: exact array names/dtypes, atomic immutable versions, no pickle."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models.als import BiasedALS, ImplicitALS
from models.artifact import (ArtifactExists, data_hash, list_versions, load_version,
                             save_version, training_manifest)

SERVING_DTYPES = {"user_ids": "int64", "user_factors": "float32", "user_bias": "float32",
                  "item_factors": "float32", "item_bias": "float32", "global_mean": "float64"}


def fitted(cls=BiasedALS):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, 200), rng.integers(0, 15, 200)
    ratings = rng.integers(1, 6, 200).astype(float)
    model = cls(n_factors=3, iterations=2).fit(users, items, ratings)
    return model, users, items, ratings


@pytest.mark.parametrize("cls", [BiasedALS, ImplicitALS])
def test_round_trip_keeps_names_dtypes_and_predictions(tmp_path, cls):
    model, users, items, ratings = fitted(cls)
    manifest = training_manifest(model, users, items, ratings, np.arange(200.0),
                                 code_version="abc123", topic_offsets={"movielog:0": [0, 199]},
                                 metrics={"rmse": 0.9})
    path = save_version(tmp_path, "v1", model.to_arrays(), manifest)
    arrays, loaded = load_version(path)
    for name, dtype in SERVING_DTYPES.items():
        assert arrays[name].dtype == np.dtype(dtype), name
    assert arrays["item_ids"].dtype.kind == "U"
    assert arrays["global_mean"].shape == ()
    assert arrays["user_factors"].shape == (arrays["user_ids"].size, 3)
    again = cls.from_arrays(arrays, loaded["hyperparameters"])
    np.testing.assert_array_equal(again.predict_many(users, items),
                                  model.predict_many(users, items))
    assert again.recommend(int(users[0])) == model.recommend(int(users[0]))
    if cls is ImplicitALS:
        assert not arrays["user_bias"].any() and not arrays["item_bias"].any()
    for key in ("version", "code_version", "training_window", "topic_offsets", "rows",
                "data_hash", "hyperparameters", "metrics"):
        assert key in loaded
    assert loaded["rows"]["interactions"] == 200 and loaded["version"] == "v1"


def test_versions_are_immutable(tmp_path):
    model, *_ = fitted()
    save_version(tmp_path, "v1", model.to_arrays(), {})
    with pytest.raises(ArtifactExists):
        save_version(tmp_path, "v1", model.to_arrays(), {"other": True})
    assert json.loads((tmp_path / "v1" / "manifest.json").read_text()).get("other") is None


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        save_version(tmp_path, "v2", {"x": np.zeros(3)}, {"bad": Unserialisable()})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError):
        save_version(tmp_path, "v3", {"x": np.array([{}], dtype=object)}, {})
    assert list_versions(tmp_path) == []


def test_list_versions_hides_temporary_dirs(tmp_path):
    (tmp_path / ".v9.tmp").mkdir()
    save_version(tmp_path, "v2", {"x": np.zeros(1)}, {})
    save_version(tmp_path, "v1", {"x": np.zeros(1)}, {})
    assert list_versions(tmp_path) == ["v1", "v2"]


def test_bad_version_ids_are_refused(tmp_path):
    for bad in ("", "../x", ".hidden"):
        with pytest.raises(ValueError):
            save_version(tmp_path, bad, {}, {})


def test_data_hash_is_stable_and_sensitive():
    users, items = np.array([1, 2, 3]), np.array(["a", "b", "c"])
    values = np.array([4.0, 5.0, 3.0])
    h = data_hash(users, items, values)
    assert h.startswith("sha256:") and h == data_hash(users, list(items), values)
    assert h != data_hash(users, items, values[::-1])
    assert h != data_hash(users, np.array(["a", "b", "cc"]), values)
    assert data_hash(np.array(["ab", "c"])) != data_hash(np.array(["a", "bc"]))
