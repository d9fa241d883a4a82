"""--distill W --distill-pairs PLAIN: the encoder-only fit with a teacher, --init-from's E frozen, reading each
training image's twin (same shape, same view) in another paired folder (gan3d.train.encoderfit)."""

import json
import shutil

import numpy as np
import pytest
import torch

from gan3d import checkpoint as ckpt
from gan3d.cli import main
from gan3d.data.pairs import PairedData
from gan3d.errors import Gan3dError
from gan3d.options import OptionError
from gan3d.runtime import set_determinism
from gan3d.train.encoderfit import twin_rows
from gan3d.train.loop import train_vaegan
from test_vaegan import make_pairs, vcfg


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


def _copy(src, dst, order=None, recolour=False, drop=0, repeat=False, turn=0.0):
    """A copy of paired folder ``src`` on the same voxel file: rows in ``order``, pictures recoloured (another
    look of the same views, as photo-like renders are of plain ones), the last ``drop`` rows left out, the
    first row shown twice, or the azimuths turned by ``turn`` degrees (the same view numbers at other angles)."""
    dst.mkdir(parents=True)
    images = np.load(src / "images.npy")
    with np.load(src / "pairs.npz") as f:
        arrays = {k: f[k] for k in f.files}
    idx = np.arange(len(images)) if order is None else np.asarray(order)
    if drop:
        idx = idx[:-drop]
    if repeat:
        idx = np.concatenate([idx, idx[:1]])
    np.save(dst / "images.npy", (255 - images[idx]) if recolour else images[idx])
    arrays["azimuth"] = (arrays["azimuth"] + turn).astype(np.float32)
    np.savez(dst / "pairs.npz", **{k: v[idx] for k, v in arrays.items()})
    meta = json.loads((src / "meta.json").read_text())
    meta["count"] = int(len(idx))
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    base = tmp_path_factory.mktemp("dist")
    plain = make_pairs(base / "plain")
    photo = _copy(plain, base / "photo", recolour=True)
    res = train_vaegan(vcfg(plain, tmp_path_factory.mktemp("runs"), steps=4, n_preview=0))
    set_determinism(False)
    return plain, photo, res.run_dir / "snapshot.pt"


def test_twin_rows_match_shape_and_view_in_any_order(parent, tmp_path):
    plain, photo, _ = parent
    data = PairedData(photo)
    n = len(data)
    shuffled = PairedData(_copy(plain, tmp_path / "shuffled", order=np.random.default_rng(0).permutation(n)))
    rows = np.arange(n)
    got = twin_rows(data, shuffled, rows)
    np.testing.assert_array_equal(shuffled.shape_index[got], data.shape_index)
    np.testing.assert_array_equal(shuffled.view[got], data.view)
    assert not np.array_equal(got, rows)  # the order differs, so a row-for-row answer would fail
    np.testing.assert_array_equal(255 - np.asarray(shuffled.images[got]), np.asarray(data.images))  # the same pictures, recoloured
    with pytest.raises(Gan3dError, match="has no picture of shape"):
        twin_rows(data, PairedData(_copy(plain, tmp_path / "short", drop=1)), rows)
    with pytest.raises(Gan3dError, match="twice"):
        twin_rows(data, PairedData(_copy(plain, tmp_path / "twice", repeat=True)), rows)
    with pytest.raises(Gan3dError, match="at azimuth"):
        twin_rows(data, PairedData(_copy(plain, tmp_path / "turned", turn=15.0)), rows)
    with pytest.raises(Gan3dError, match="its shapes are"):
        twin_rows(data, PairedData(make_pairs(tmp_path / "other")), rows)


def _stats(run):
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if '"step"' in line and "loss_e" in line]


def test_distill_pulls_e_onto_the_teacher_and_resumes_exactly(parent, tmp_path):
    """With only the teacher term weighted, E's mean on the recoloured pictures moves onto the parent E's mean on
    the plain ones (the logged distance falls); G stays the parent's; a stopped run resumes to the same E (the
    teacher is --init-from's E again, not the run's own)."""
    plain, photo, snap = parent
    kw = dict(init_from=str(snap), encoder_only=True, encoder_only_z="mean", distill=1.0, distill_pairs=str(plain),
              alpha1=0.0, alpha2=0.0, steps=30, log_every=1, n_preview=0, eval_pairs=0)
    res = train_vaegan(vcfg(photo, tmp_path, run_name="d", **kw))
    set_determinism(False)
    rmse = [r["teacher_rmse"] for r in _stats(res.run_dir)]
    assert len(rmse) == 30 and np.mean(rmse[-5:]) < 0.5 * np.mean(rmse[:5])
    src, state = ckpt.load(snap), ckpt.load(res.run_dir / "checkpoint.pt")
    assert all(torch.equal(state["G"][k], src["G"][k]) for k in src["G"])
    assert "--distill 1" in (res.run_dir / "log.txt").read_text()
    short = dict(kw, steps=8)
    full = train_vaegan(vcfg(photo, tmp_path, run_name="full", **short))
    set_determinism(False)
    part = train_vaegan(vcfg(photo, tmp_path, run_name="part", **short), stop_after=3)
    set_determinism(False)
    done = train_vaegan(vcfg(photo, tmp_path, **short), resume=part.run_dir)
    a, b = ckpt.load(full.run_dir / "checkpoint.pt"), ckpt.load(done.run_dir / "checkpoint.pt")
    assert all(torch.equal(a["E"][k], b["E"][k]) for k in a["E"])
    plain_run = train_vaegan(vcfg(photo, tmp_path, run_name="plain", **dict(short, distill=0.0, distill_pairs="")))
    assert "teacher_rmse" not in _stats(plain_run.run_dir)[0]  # off by default: the paper's loss


def test_distill_options_need_each_other(parent, tmp_path, capsys):
    plain, photo, snap = parent
    with pytest.raises(OptionError, match="distill"):
        vcfg(photo, tmp_path, init_from=str(snap), distill=1.0, distill_pairs=str(plain))  # no --encoder-only
    with pytest.raises(OptionError, match="distill_pairs"):
        vcfg(photo, tmp_path, init_from=str(snap), encoder_only=True, distill_pairs=str(plain))
    base = ["train", "--model", "vaegan", "--preset", "tiny", "--encoder", "tiny", "--pairs", str(photo), "--init-from", str(snap),
            "--encoder-only", "--batch-size", "4", "--steps", "2", "--out", str(tmp_path / "runs"), "--quiet"]
    capsys.readouterr()
    for extra, word in ((["--distill", "1"], "--distill"), (["--distill-pairs", str(plain)], "--distill-pairs"),
                        (["--distill", "1", "--distill-pairs", str(make_pairs(tmp_path / "other"))], "its shapes are")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and word in err[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run folder begun
    shutil.rmtree(tmp_path / "other")
