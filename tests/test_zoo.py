"""gan3d.zoo: packaging a run into a shipped model, loading it by name (verified), the fp16 rule,
and every --checkpoint command taking a name. Tiny models in a temporary models folder
(GAN3D_MODELS_DIR)."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import torch

from gan3d import checkpoint as ckpt
from gan3d import zoo
from gan3d.cli import main
from gan3d.data import procedural
from gan3d.data.prepared import from_arrays
from gan3d.errors import Gan3dError
from gan3d.eval.classify import classify
from gan3d.eval.generation import generation
from gan3d.eval.reconstruction import reconstruction
from gan3d.eval.registry import write_result
from gan3d.models.gan import ModelConfig, build
from gan3d.runtime import set_determinism
from gan3d.train.config import VAEGANConfig, make_config
from gan3d.train.loop import train_vaegan, training_loop
from gan3d.zoo import precision, weights
from gan3d.zoo.package import package

# --- fixtures: a tiny 3D-GAN run, a tiny 3D-VAE-GAN run, both packaged ------------------------------


def _pairs(folder, n_shapes=8, size=32, resolution=16, n_test=2):
    """A paired image/shape folder (imaging's layout) of procedural shapes and their silhouettes."""
    folder.mkdir(parents=True)
    grids, labels = procedural.make_dataset(n_shapes, resolution, seed=3)
    split = np.array([0] * (n_shapes - n_test) + [1] * n_test)
    src = folder / "voxels.npz"
    from_arrays(grids, labels, list(procedural.CLASS_NAMES), split=split).save(src)
    images, index = [], []
    for s, g in enumerate(grids):
        for axis in (1, 0):
            sil = np.kron(np.rot90(g.any(axis=axis)), np.ones((size // resolution,) * 2)).astype(bool)
            img = np.full((size, size, 3), 230, np.uint8)
            img[sil] = (40 + 20 * s, 90, 160)
            images.append(img)
            index.append(s)
    np.save(folder / "images.npy", np.stack(images))
    index = np.array(index, np.int64)
    view = np.tile(np.array([0, 1], np.int64), len(grids))
    np.savez(folder / "pairs.npz", shape_index=index, view=view, azimuth=np.where(view == 0, 0.0, 90.0).astype(np.float32),
             elevation=np.zeros(len(index), np.float32), label=labels[index].astype(np.int64), split=split[index].astype(np.uint8))
    meta = dict(format="gan3d-paired-images", format_version=1, dataset=str(src.resolve()), resolution=resolution, size=size, count=len(images))
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Runs, eval results and a models folder with ``tg`` (3D-GAN) and ``tv`` (3D-VAE-GAN)."""
    root = tmp_path_factory.mktemp("zoo")
    grids, labels = procedural.make_dataset(48, 16, seed=1, classes=["chair", "table", "bed"])
    split = (np.arange(len(grids)) % 4 == 0).astype(int)
    data = from_arrays(grids, labels, ["chair", "table", "bed"], split=split).save(root / "d16.npz")
    cfg = make_config("tiny", data=str(data), out=str(root / "runs"), run_name="g", steps=4, batch_size=8, n_preview=2, bn_samples=16)
    gan = training_loop(cfg, progress=False, quiet=True).run_dir
    pairs = _pairs(root / "pairs")
    vcfg = VAEGANConfig(pairs=str(pairs), encoder="tiny", preset="tiny", out=str(root / "runs"), run_name="v", steps=4, batch_size=4,
                        log_every=2, snapshot_every=4, n_preview=0, eval_pairs=0, deterministic=True, device="cpu")
    vae = train_vaegan(vcfg).run_dir
    set_determinism(False)
    cls = write_result(root / "cls.json", classify(gan, data, C_grid=(0.01, 1.0), cv=2, device="cpu", progress=False))
    gen = write_result(root / "gen.json", generation(gan, data, n_samples=6, distances=("iou",), context_rows=False, device="cpu", progress=False))
    rec = write_result(root / "rec.json", reconstruction(vae, pairs, device="cpu", progress=False))
    models = root / "models"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GAN3D_MODELS_DIR", str(models))
        package(gan, name="tg", command="gan3d train --preset tiny --steps 4", data_desc="procedural 16^3", evals=[cls, gen], wall_time_min=0.5)
        package(vae, name="tv", command="gan3d train --model vaegan --preset tiny", evals=[rec], n_seeds=200)
    return dict(root=root, data=data, gan=gan, vae=vae, pairs=pairs, models=models, cls=cls, gen=gen, rec=rec)


@pytest.fixture
def shipped(env, registry_at):
    return registry_at(env["models"])


@pytest.fixture
def copy_of_models(env, tmp_path, registry_at):
    dst = tmp_path / "models"
    shutil.copytree(env["models"], dst)
    return registry_at(dst)


def _close_to_rounded(got, want, dtype):
    """Loaded fp32 tensors equal the snapshot's exactly (fp32 kept) or its fp16 rounding (fp16)."""
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        expect = want[k].half().float() if dtype == "float16" and want[k].is_floating_point() else want[k]
        torch.testing.assert_close(got[k], expect, rtol=0, atol=0, msg=k)
        if want[k].is_floating_point():
            torch.testing.assert_close(got[k], want[k], rtol=1e-3, atol=6e-8, msg=k)


# --- packaging and loading ----------------------------------------------------------------------------


@pytest.mark.parametrize("name,run", [("tg", "gan"), ("tv", "vae")])
def test_load_by_name_equals_the_snapshot(env, shipped, name, run):
    snap = ckpt.load(env[run] / "snapshot.pt")
    card = zoo.card(name)
    path = env["models"] / f"{name}.safetensors"
    raw = path.read_bytes()
    assert card["sha256"] == hashlib.sha256(raw).hexdigest() and card["size_bytes"] == len(raw)
    index = json.loads((env["models"] / "index.json").read_text())
    assert index["models"][name]["sha256"] == card["sha256"]
    assert weights.stored_dtypes(raw, path) == card["dtypes"]
    got = ckpt.load(name)  # by name, as every command loads it
    assert set(got) == set(snap)
    for key in snap:
        if key in weights.MODULES:
            _close_to_rounded(got[key], snap[key], card["dtypes"][key])
        else:
            assert got[key] == snap[key], key
    assert card["model_config"] == snap["model_config"] and card["step"] == snap["step"]
    assert card["training"]["config"] == json.loads((env[run] / "config.json").read_text())
    assert card["training"]["machine"]["cores"] == os.cpu_count()
    assert card["training"]["machine"]["torch"] == torch.__version__
    assert ckpt.load(name).keys() == got.keys()  # the one resolution point: checkpoint.load takes names
    assert set(zoo.names()) == {"tg", "tv"}


def test_card_records_precision_and_metrics(env, shipped):
    card = zoo.card("tg")
    for m, stored in card["dtypes"].items():
        rep = card["precision"][m]
        assert rep["stored"] == stored
        if m == "G":
            n = rep["prior_samples"]["changed_voxels"]
            assert rep["prior_samples"]["n"] == 1000 and (stored == "float16") == (n == 0)
        if m == "D":
            assert (stored == "float16") == (rep["on_G_samples"]["sign_changes"] == 0)
            assert rep["on_G_samples"]["max_abs_feature_diff"] >= 0
    cls = json.loads(env["cls"].read_text())
    got = card["metrics"]["classify"]["svm_accuracy"]
    assert got == {k: round(cls[k]["accuracy"], 4) for k in ("learned", "random_D", "raw_voxels")}
    gen = json.loads(env["gen"].read_text())["rows"]["samples (largest component)"]["iou"]
    assert card["metrics"]["generation"]["rows"]["samples (largest component)"]["iou"] == {k: round(gen[k], 4) for k in ("1nna", "cov", "mmd")}
    assert card["training"]["command"] == "gan3d train --preset tiny --steps 4"
    assert card["training"]["wall_time"]["minutes"] == 0.5
    assert card["training"]["data"]["counts"]["chair"]["train"] == 12
    rec = json.loads(env["rec"].read_text())
    tv = zoo.card("tv")
    assert tv["metrics"]["reconstruction"]["mean_iou"] == round(rec["mean_iou"], 4)
    assert set(tv["metrics"]["reconstruction"]["per_class"]) == set(rec["per_class"])
    assert tv["precision"]["E"]["test_images"]["n"] == 4  # the run's 4 test images


def test_card_of_a_one_class_model_counts_that_class(env, tmp_path, monkeypatch):
    """A 3D-VAE-GAN trained with --classes: its card names the class, counts only its images, and the
    encoder's precision check reads only that class's test images."""
    from gan3d.data.pairs import PairedData

    pd = PairedData(env["pairs"])
    one = next(c for c in pd.class_names if len(pd.rows(0, [c])) >= 2 and len(pd.rows(1, [c])))
    cfg = VAEGANConfig(pairs=str(env["pairs"]), encoder="tiny", preset="tiny", out=str(tmp_path), run_name="one", steps=2, batch_size=2,
                       n_preview=0, eval_pairs=0, bn_samples=0, device="cpu", classes=(one,))
    run = train_vaegan(cfg).run_dir
    set_determinism(False)
    monkeypatch.setenv("GAN3D_MODELS_DIR", str(tmp_path / "models"))
    opened = []
    init = PairedData.__init__
    monkeypatch.setattr(PairedData, "__init__", lambda self, *a, **k: (opened.append(a), init(self, *a, **k))[1])
    package(run, name="tv1", command="gan3d train --model vaegan --preset tiny --classes " + one, n_seeds=20)
    assert len(opened) == 1  # the precision check and the card read one opened folder
    card = json.loads((tmp_path / "models" / "tv1.json").read_text())
    data = card["training"]["data"]
    assert data["classes"] == [one] and data["images"]["train"] == len(pd.rows(0, [one])) < len(pd.rows(0))
    src = card["precision"]["E"]["test_images"]["source"]
    assert src["classes"] == [one] and src["n"] == len(pd.rows(1, [one]))


def test_loading_runs_no_pickle(env, shipped, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", boom)
    assert zoo.load("tv")["kind"] == "vaegan-snapshot"


def test_package_refuses_bad_input(env, tmp_path):
    out = tmp_path / "m"
    with pytest.raises(Gan3dError, match="not a sampling snapshot"):
        package(env["gan"] / "checkpoint.pt", name="x", command="c", out=out)
    with pytest.raises(Gan3dError, match="invalid model name"):
        package(env["gan"], name="../x", command="c", out=out)
    other = json.loads(env["cls"].read_text())
    other["checkpoint_step"] = 99
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(Gan3dError, match="other.json: evaluation is of step 99, but the snapshot being packaged is of step 4"):
        package(env["gan"], name="x", command="c", evals=[tmp_path / "other.json"], out=out)
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(Gan3dError, match="junk.json: not a `gan3d eval"):
        package(env["gan"], name="x", command="c", evals=[tmp_path / "junk.json"], out=out)
    assert not out.exists()  # refused before anything was written


# --- the fp16 rule ----------------------------------------------------------------------------------


def _forced_snapshot(path, final_weight):
    """A tiny G whose last hidden layer outputs 5 everywhere and whose final weights are all
    ``final_weight``; D's logits pushed to +100."""
    torch.manual_seed(0)
    cfg = ModelConfig(resolution=16, z_dim=8, channels=(8, 4))
    G, D = build(cfg)
    with torch.no_grad():
        bn = G.net[-4]
        bn.weight.zero_(), bn.bias.fill_(5.0)
        G.net[-2].weight.copy_(final_weight(G.net[-2].weight))
        D.out.bias.fill_(100.0)
    ckpt.save(path, dict(kind="snapshot", model_config=cfg.to_dict(), train_config={"z_dist": "normal"},
                         G=G.state_dict(), D=D.state_dict(), step=0))
    return path


def test_fp16_rule_keeps_fp32_when_rounding_flips_voxels(tmp_path, registry_at):
    # weights -2.5e-8 round to 0 in fp16: the pre-activation goes from -1.6e-6 to 0, so every voxel
    # moves from just below 0.5 to exactly 0.5 (filled)
    snap = _forced_snapshot(tmp_path / "neg.pt", lambda w: torch.full_like(w, -2.5e-8))
    G, _ = ckpt.load_generator(snap)
    assert (G(torch.randn(2, 8)) < 0.5).all()
    card = package(snap, name="neg", command="built by a test", out=registry_at(tmp_path / "m"), n_seeds=200)
    rep = card["precision"]["G"]["prior_samples"]
    assert card["dtypes"]["G"] == "float32" and rep["changed_voxels"] == rep["voxels"] == 200 * 16**3
    assert card["dtypes"]["D"] == "float16" and card["precision"]["D"]["on_G_samples"]["sign_changes"] == 0
    loaded = zoo.load("neg")
    _close_to_rounded(loaded["G"], ckpt.load(snap)["G"], "float32")
    assert torch.equal(loaded["G"]["net.6.weight"], torch.full_like(loaded["G"]["net.6.weight"], -2.5e-8))


def test_forced_fp16_is_stored_and_recorded_with_its_changes(tmp_path, registry_at):
    snap = _forced_snapshot(tmp_path / "neg.pt", lambda w: torch.full_like(w, -2.5e-8))
    card = package(snap, name="negf", command="built by a test", out=registry_at(tmp_path / "m"), n_seeds=50, force_fp16=["G"])
    rep = card["precision"]["G"]
    assert card["dtypes"]["G"] == "float16" and rep["forced"] is True and rep["prior_samples"]["changed_voxels"] == 50 * 16**3
    assert torch.equal(zoo.load("negf")["G"]["net.6.weight"], torch.zeros_like(zoo.load("negf")["G"]["net.6.weight"]))


def test_fp16_rule_stores_fp16_when_no_voxel_changes(tmp_path, registry_at):
    # positive final weights after ReLU: every output is >= 0.5 however the weights are rounded
    snap = _forced_snapshot(tmp_path / "pos.pt", lambda w: 0.1 + 1e-4 * torch.rand_like(w))
    card = package(snap, name="pos", command="built by a test", out=registry_at(tmp_path / "m"), n_seeds=200)
    assert card["dtypes"] == {"G": "float16", "D": "float16"}
    assert card["precision"]["G"]["prior_samples"]["changed_voxels"] == 0
    assert card["precision"]["G"]["prior_samples"]["max_abs_diff"] > 0  # the weights did change
    want = ckpt.load(snap)["G"]
    got = zoo.load("pos")["G"]
    _close_to_rounded(got, want, "float16")
    assert not torch.equal(got["net.6.weight"], want["net.6.weight"])
    assert card["size_bytes"] < (tmp_path / "pos.pt").stat().st_size


def test_precision_compares_outputs_not_weights():
    G32 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid()).eval()
    with torch.no_grad():  # weights -2.5e-8 are 0 in fp16: sigmoid(-7.5e-7) < 0.5 becomes sigmoid(0) = 0.5
        G32[0].weight.fill_(-2.5e-8), G32[0].bias.zero_()
    G16 = precision.rounded_copy(G32)
    z = [torch.full((5, 3), 10.0)]
    rep = precision.generator_outputs(G32, G16, z)
    assert rep["changed_voxels"] == 20 and rep["n"] == 5
    assert precision.generator_outputs(G32, G32, z)["changed_voxels"] == 0


# --- verification -------------------------------------------------------------------------------------


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_tampered_file_refused_with_one_line(copy_of_models, tmp_path, capsys):
    f = copy_of_models / "tg.safetensors"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one bit of one tensor
    f.write_bytes(bytes(raw))
    assert main(["sample", "--checkpoint", "tg", "--seeds", "0-1", "--out", str(tmp_path / "s")]) == 2
    err = _one_line_error(capsys)
    assert "tg.safetensors" in err and "sha256" in err and "model card" in err
    assert not (tmp_path / "s").exists()
    assert main(["models"]) == 2
    assert "MISMATCH" in capsys.readouterr().out


def test_swapped_card_refused(copy_of_models, tmp_path, capsys):
    m = copy_of_models
    shutil.copy(m / "tv.json", m / "tg.json")  # another model's card
    with pytest.raises(Gan3dError, match="card and index disagree"):
        zoo.load("tg")
    # weights and card replaced together, the card edited to match: only the index catches it
    card = json.loads((m / "tv.json").read_text())
    card.update(name="tg", file="tg.safetensors")
    (m / "tg.json").write_text(json.dumps(card))
    shutil.copy(m / "tv.safetensors", m / "tg.safetensors")
    assert main(["sample", "--checkpoint", "tg", "--out", str(tmp_path / "s")]) == 2
    err = _one_line_error(capsys)
    assert "tg.safetensors" in err and "index.json" in err
    with pytest.raises(Gan3dError, match="index.json"):
        zoo.load("tg")


# --- names everywhere -------------------------------------------------------------------------------


def test_gan_commands_take_a_name(env, shipped, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sample", "--checkpoint", "tg", "--seeds", "0-5", "--out", str(out), "--formats", "npz", "--device", "cpu"]) == 0
    assert main(["sample", "--checkpoint", str(env["gan"]), "--seeds", "0-5", "--out", str(tmp_path / "ref"), "--formats", "npz", "--device", "cpu"]) == 0
    with np.load(out / "samples.npz") as a, np.load(tmp_path / "ref" / "samples.npz") as b:
        np.testing.assert_array_equal(a["grids"], b["grids"])  # the fp16 rule: no thresholded voxel changed
    common = ["--data", str(env["data"]), "--device", "cpu", "--quiet"]
    assert main(["eval", "classify", "--checkpoint", "tg", *common, "--cv", "2", "--C-grid", "1", "--no-baselines", "--out", str(tmp_path / "c.json")]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["checkpoint"] == "tg"
    assert main(["eval", "generation", "--checkpoint", "tg", *common, "--n-samples", "6", "--distances", "iou", "--no-context",
                 "--out", str(tmp_path / "g.json")]) == 0  # fmt: skip
    by_name = json.loads((tmp_path / "g.json").read_text())["rows"]
    by_path = json.loads(env["gen"].read_text())["rows"]
    assert by_name == by_path  # same thresholded samples, same metrics
    assert main(["eval", "neighbours", "--checkpoint", "tg", *common, "--seeds", "0-1", "-k", "1"]) == 0
    assert "memorised" in capsys.readouterr().out


def test_vaegan_commands_take_a_name(env, shipped, tmp_path, capsys):
    from PIL import Image

    img = tmp_path / "photo.png"
    Image.fromarray(np.load(env["pairs"] / "images.npy")[0]).save(img)
    assert main(["reconstruct", str(img), "--checkpoint", "tv", "--out", str(tmp_path / "r"), "--device", "cpu"]) == 0
    assert (tmp_path / "r" / "photo.npz").is_file()
    assert main(["eval", "reconstruction", "--checkpoint", "tv", "--data", str(env["pairs"]), "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "rec.json")]) == 0  # fmt: skip
    got, want = json.loads((tmp_path / "rec.json").read_text()), json.loads(env["rec"].read_text())
    # the fp16 rule checked these very test images: thresholded reconstructions, so IoUs, are unchanged
    assert {k: v["iou"] for k, v in got["per_class"].items()} == {k: v["iou"] for k, v in want["per_class"].items()}
    dt = zoo.card("tv")["dtypes"]
    if dt["G"] == dt["E"] == "float32":  # and with fp32 weights the raw occupancies, so APs, too
        assert got["per_class"] == want["per_class"]


def test_unknown_name_and_path_precedence(env, shipped, tmp_path, monkeypatch, capsys):
    assert main(["sample", "--checkpoint", "nosuch", "--out", str(tmp_path / "s")]) == 2
    err = _one_line_error(capsys)
    assert "nosuch" in err and "shipped models: tg, tv" in err
    monkeypatch.chdir(tmp_path)
    shutil.copy(env["vae"] / "snapshot.pt", tmp_path / "tg")  # a file named like a shipped model wins
    assert ckpt.load("tg")["kind"] == "vaegan-snapshot"
    (tmp_path / "tv").mkdir()  # so does a folder, even one without a snapshot
    assert main(["reconstruct", "x.png", "--checkpoint", "tv", "--out", "r"]) == 2
    assert "tv: folder has no snapshot.pt or checkpoint.pt" in _one_line_error(capsys)  # the folder, not the model


def test_no_models_shipped(tmp_path, registry_at, capsys):
    registry_at(tmp_path / "empty")
    assert zoo.names() == []
    assert main(["sample", "--checkpoint", "chair", "--out", str(tmp_path / "s")]) == 2
    assert "no models are shipped" in _one_line_error(capsys)
    assert main(["models"]) == 0 and "no models are shipped" in capsys.readouterr().out


# --- gan3d models and the demo ------------------------------------------------------------------------


def test_models_lists_and_shows(env, shipped, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip() and not line.startswith("2 model")}
    assert set(rows) == {"tg", "tv"}
    acc = json.loads(env["cls"].read_text())["learned"]["accuracy"]
    assert f"SVM {100 * acc:.1f}%" in rows["tg"] and " ok " in rows["tg"] and "16^3" in rows["tg"]
    rec = json.loads(env["rec"].read_text())
    assert f"IoU {rec['mean_iou']:.3f}" in rows["tv"]
    assert main(["models", "show", "tv", "--verify"]) == 0
    text = capsys.readouterr().out
    assert json.loads(text[: text.rindex("}") + 1]) == zoo.card("tv") and "matches the card and the index" in text
    assert main(["models", "show", "nosuch"]) == 2


def test_demo_samples_the_shipped_chair(env, tmp_path, registry_at, capsys):
    from gan3d.demo import _shipped_chair

    registry_at(tmp_path / "none")
    assert _shipped_chair(str(tmp_path / "out")) is None
    assert "no trained chair model is shipped" in capsys.readouterr().out
    m = registry_at(tmp_path / "m")
    package(env["gan"], name="chair", command="c", out=m, n_seeds=50)
    summary = _shipped_chair(str(tmp_path / "out"))
    where = tmp_path / "out" / "shipped-chair"
    assert summary["n"] == 16 and str(where) in capsys.readouterr().out
    with np.load(where / "samples.npz") as z:
        assert z["seeds"].tolist() == list(range(16)) and z["grids"].shape == (16, 16, 16, 16)
    assert (where / "grid.png").is_file()
    assert len(list(where.glob("seed*.obj"))) == 16 - len(summary["empty_seeds"])


def test_package_command_line(env, tmp_path, registry_at, capsys):
    out = registry_at(tmp_path / "m")
    args = ["models", "package", str(env["gan"] / "snapshot.pt"), "--name", "cli", "--command", "gan3d train x",
            "--eval", str(env["cls"]), "--wall-time-min", "2", "--out", str(out), "--seeds", "40"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "cli.safetensors" in text and "headline: SVM" in text
    card = zoo.card("cli")
    assert card["precision"]["G"]["prior_samples"]["n"] == 40 and card["training"]["wall_time"]["minutes"] == 2.0
    assert zoo.names() == ["cli"] and zoo.load("cli")["step"] == 4


def test_weight_file_reader_refuses_foreign_files(tmp_path):
    from safetensors.torch import save

    with pytest.raises(Gan3dError, match="not a safetensors file"):
        weights.decode(b"\x05\x00", tmp_path / "short.safetensors")
    with pytest.raises(Gan3dError, match="not a safetensors file"):
        weights.decode(b"\xff" * 8 + b"{}", tmp_path / "long-header.safetensors")
    plain = save({"w": torch.zeros(2)})
    with pytest.raises(Gan3dError, match="not a gan3d model file"):
        weights.decode(plain, tmp_path / "plain.safetensors")
    stamped = save({"X.w": torch.zeros(2)}, metadata={"zoo_format": weights.FORMAT, "zoo_format_version": "1"})
    with pytest.raises(Gan3dError, match="unexpected tensor 'X.w'"):
        weights.decode(stamped, tmp_path / "odd.safetensors")


def test_packagers_writing_one_index_at_once_keep_every_entry(tmp_path, monkeypatch):
    """Two packagers into one folder: the index is read, changed and replaced under a lock, so neither
    loses the other's entry (a slowed read makes the race certain without the lock)."""
    import threading
    import time

    from gan3d.zoo import package as package_module
    from gan3d.zoo import registry as zoo_registry

    real_read = zoo_registry.read_index

    def slow_read(folder=None):
        index = real_read(folder)
        time.sleep(0.05)
        return index

    monkeypatch.setattr(zoo_registry, "read_index", slow_read)
    names = [f"m{i}" for i in range(6)]
    threads = [threading.Thread(target=package_module._update_index, args=(tmp_path, n, {"file": f"{n}.safetensors"})) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(real_read(tmp_path)["models"]) == names
