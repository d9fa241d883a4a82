"""gan3d data merge: labels, class names, splits and shapes carried over, classes renamed and
matched by name; refusals as one line."""

import numpy as np
import pytest

from gan3d.cli import main
from gan3d.data import procedural
from gan3d.data.merge import merge, parse_renames
from gan3d.data.prepared import from_arrays, load
from gan3d.errors import Gan3dError


def _grids(n, r, seed):
    return np.random.default_rng(seed).random((n, r, r, r)) < 0.2


@pytest.fixture
def inputs(tmp_path):
    a = from_arrays(_grids(5, 8, 0), [0, 1, 1, 0, 1], ["bed", "chair"], split=[0, 0, 1, 1, 0], rotation=[0, 0, 0, 0, 3],
                    source_id=["a0", "a1", "a2", "a3", "a4"], source="A-src")
    b = from_arrays(_grids(3, 8, 1), [0, 0, 1], ["bookshelf", "chair"], split=[0, 1, 0], source_id=["b0", "b1", "b2"])
    c16 = from_arrays(_grids(2, 16, 2), [0, 0], ["sofa"])
    paths = {k: tmp_path / f"{k}.npz" for k in ("a", "b", "c16")}
    for k, d in (("a", a), ("b", b), ("c16", c16)):
        d.save(paths[k])
    return paths


def test_merge_keeps_shapes_labels_splits(inputs, tmp_path):
    out = tmp_path / "m.npz"
    s = merge([inputs["a"], inputs["b"]], out, rename={"bookshelf": "bookcase"})
    m, a, b = load(out), load(inputs["a"]), load(inputs["b"])
    assert m.class_names == ("bed", "chair", "bookcase") and s["class_names"] == list(m.class_names)
    assert m.resolution == 8 and len(m) == 8 and s["count"] == 8
    names = [m.class_names[k] for k in m.labels]
    assert names == ["bed", "chair", "chair", "bed", "chair", "bookcase", "bookcase", "chair"]  # b's chair is a's chair
    assert m.split.tolist() == a.split.tolist() + b.split.tolist()
    assert m.rotation.tolist() == [0, 0, 0, 0, 3, 0, 0, 0]
    assert list(m.source_id) == ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2"]
    assert np.array_equal(m.grids(slice(None)), np.concatenate([a.grids(slice(None)), b.grids(slice(None))]))
    assert s["counts"]["chair"] == {"train": 3, "test": 1} and s["counts"]["bookcase"] == {"train": 1, "test": 1}
    assert "A-src" in m.source and "bookshelf -> bookcase" in m.source
    # without a rename the class keeps its name; a rename onto an existing name merges the classes
    assert load(merge([inputs["b"], inputs["a"]], tmp_path / "n.npz")["path"]).class_names == ("bookshelf", "chair", "bed")
    one = load(merge([inputs["a"], inputs["b"]], tmp_path / "o.npz", rename={"bookshelf": "chair", "bed": "chair"})["path"])
    assert one.class_names == ("chair",) and (one.labels == 0).all()


def test_merge_refusals(inputs, tmp_path):
    with pytest.raises(Gan3dError, match=r"16\^3 but .* 8\^3"):
        merge([inputs["a"], inputs["c16"]], tmp_path / "x.npz")
    with pytest.raises(Gan3dError, match="no input has a class 'desk'"):
        merge([inputs["a"], inputs["b"]], tmp_path / "x.npz", rename={"desk": "table"})
    with pytest.raises(Gan3dError, match="two or more"):
        merge([inputs["a"]], tmp_path / "x.npz")
    with pytest.raises(Gan3dError, match="one of the inputs"):
        merge([inputs["a"], inputs["b"]], inputs["a"])
    for bad in (["bookshelf"], ["=x"], ["bookshelf="]):
        with pytest.raises(Gan3dError, match="OLD=NEW"):
            parse_renames(bad)
    with pytest.raises(Gan3dError, match="twice"):
        parse_renames(["a=b", "a=c"])
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("extra,needle", [
    (["{c16}"], "c16.npz"),
    (["{b}", "--rename", "desk=table"], "desk"),
    (["{b}", "--rename", "bookshelf"], "--rename"),
    (["{d}/nosuch.npz"], "nosuch.npz"),
    ([], "two or more"),
])
def test_merge_cli_refusals_are_one_line(inputs, tmp_path, capsys, extra, needle):
    out = tmp_path / "cli" / "m.npz"
    argv = ["data", "merge", str(inputs["a"]), *[e.format(d=tmp_path, **{k: v for k, v in inputs.items()}) for e in extra], "--out", str(out)]
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and needle in err[0] and "Traceback" not in err[0], err
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_merge_cli_writes_the_merge(inputs, tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["data", "merge", str(inputs["a"]), str(inputs["b"]), "--out", str(out), "--rename", "bookshelf=bookcase"]) == 0
    assert '"bookcase"' in capsys.readouterr().out and load(out).class_names == ("bed", "chair", "bookcase")


def test_builtin_bookcases_merge_into_a_prepared_set(tmp_path):
    """The documented recipe at a small size: procedural bookshelves framed like -cb, merged as bookcase."""
    assert main(["data", "prepare", "builtin", "--classes", "bookshelf", "--resolution", "16", "--builtin-count", "5",
                 "--builtin-framing", "cb", "--out", str(tmp_path / "bk.npz")]) == 0
    other = from_arrays(procedural.make_dataset(4, 16, seed=1, classes=["chair"])[0], [0] * 4, ["chair"])
    other.save(tmp_path / "chairs.npz")
    merge([tmp_path / "chairs.npz", tmp_path / "bk.npz"], tmp_path / "six.npz", rename={"bookshelf": "bookcase"})
    m = load(tmp_path / "six.npz")
    assert m.class_names == ("chair", "bookcase") and m.counts()["bookcase"] == {"train": 5, "test": 1}
