"""Validation splits carved from a training split (gan3d.data.holdout), in `gan3d data prepare
--validation` and the classification protocol's --validation."""

import numpy as np
import pytest

from gan3d.cli import main
from gan3d.data.holdout import validation_mask
from gan3d.data.prepared import load
from gan3d.errors import Gan3dError


def test_each_class_gives_its_share_and_groups_stay_whole():
    labels = np.repeat([0, 1, 2], [40, 20, 2])
    held = validation_mask(labels, 0.25, seed=3)
    assert [int(held[labels == k].sum()) for k in range(3)] == [10, 5, 1]
    assert np.array_equal(held, validation_mask(labels, 0.25, seed=3))  # seeded
    assert not np.array_equal(held, validation_mask(labels, 0.25, seed=4))
    groups = [f"m{i // 4}" for i in range(len(labels))]  # four rotations per model
    held = validation_mask(labels, 0.25, seed=3, groups=groups)
    for g in set(groups):
        part = held[[i for i, x in enumerate(groups) if x == g]]
        assert part.all() or not part.any(), g
    assert int(held[labels == 0].sum()) == 4 * 2 and int(held[labels == 1].sum()) == 4 * 1  # 10 models -> 2, 5 -> 1


def test_a_class_of_one_keeps_it_and_bad_shares_are_refused():
    assert not validation_mask(np.array([0, 1, 1]), 0.5, 0)[0]
    with pytest.raises(Gan3dError):
        validation_mask(np.array([0, 1]), 0.5, 0)
    with pytest.raises(Gan3dError):
        validation_mask(np.array([0, 0]), 1.5, 0)


def _npz(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.random((70, 8, 8, 8)) < 0.3).astype(np.int32)
    path = tmp_path / "src.npz"
    np.savez(path, X_train=X[:60], y_train=np.repeat([0, 1], 30), X_test=X[60:], y_test=np.repeat([0, 1], 5))
    return path, X


def test_prepare_writes_the_validation_split_as_the_test_split(tmp_path, capsys):
    src, X = _npz(tmp_path)
    assert main(["data", "prepare", str(src), "--out", str(tmp_path / "v.npz"), "--resolution", "8", "--validation", "0.2", "--seed", "1"]) == 0
    ds = load(tmp_path / "v.npz")
    assert len(ds) == 60  # the source's test split is left out
    test = np.flatnonzero(ds.split == 1)
    assert len(test) == 12 and sorted(np.bincount(ds.labels[test]).tolist()) == [6, 6]
    source_test = {X[i].tobytes() for i in range(60, 70)}
    assert not any(ds.grids([i])[0].astype(np.int32).tobytes() in source_test for i in range(len(ds)))
    assert "validation" in ds.source


def test_a_bad_validation_share_is_one_line(tmp_path, capsys):
    src, _ = _npz(tmp_path)
    with pytest.raises(SystemExit) as ex:  # argparse's own exit
        main(["data", "prepare", str(src), "--out", str(tmp_path / "v.npz"), "--resolution", "8", "--validation", "1"])
    rc = ex.value.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--validation" in err and "\n" not in err and not (tmp_path / "v.npz").exists()
