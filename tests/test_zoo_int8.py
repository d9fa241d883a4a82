"""gan3d.zoo's int8 storage (per-kernel fp16 scales, format version 2) and ``--without D``: tiny
hand-built snapshots packaged into a temporary models folder (GAN3D_MODELS_DIR). The fp16 rule and
the rest of the zoo are in test_zoo.py."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import gan3d
from gan3d import checkpoint as ckpt
from gan3d import zoo
from gan3d.cli import main
from gan3d.data import procedural
from gan3d.data.prepared import from_arrays
from gan3d.errors import Gan3dError
from gan3d.models.encoder import EncoderConfig, ImageEncoder
from gan3d.models.gan import ModelConfig, build
from gan3d.zoo import precision, registry, weights
from gan3d.zoo.package import package

CFG = ModelConfig(resolution=16, z_dim=8, channels=(8, 4))
ECFG = EncoderConfig(image_size=16, z_dim=8, channels=(4, 16), kernels=(4, 4), strides=(4, 1))


def _snapshot(path, *, final=None, vaegan=False):
    """A tiny random 3D-GAN (or 3D-VAE-GAN, with E and a pairs folder that does not exist)
    snapshot; ``final`` replaces G's last weights; D's logits pushed to +100."""
    torch.manual_seed(0)
    G, D = build(CFG)
    with torch.no_grad():
        for m in G.modules():  # non-trivial BatchNorm statistics, so fp16 rounding of them matters
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
        if final is not None:
            G.net[-2].weight.copy_(final(G.net[-2].weight))
        D.out.bias.fill_(100.0)
    payload = dict(kind="snapshot", model_config=CFG.to_dict(), train_config={"z_dist": "normal"}, G=G.state_dict(), D=D.state_dict(), step=0)
    if vaegan:
        payload.update(kind="vaegan-snapshot", encoder_config=ECFG.to_dict(), vaegan_config={"pairs": str(path.parent / "no-pairs")},
                       E=ImageEncoder(ECFG).state_dict())
        del payload["train_config"]
    ckpt.save(path, payload)
    return path


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
    return err


def _rewrite(models, name, tensors, meta):
    """Replace model ``name``'s weight file, its card's and the index's hashes made to match (so
    only the file's content can be refused)."""
    data = st_save(tensors, metadata=meta)
    (models / f"{name}.safetensors").write_bytes(data)
    digest = registry.sha256_bytes(data)
    for file, key in ((models / f"{name}.json", None), (models / "index.json", name)):
        doc = json.loads(file.read_text())
        (doc if key is None else doc["models"][key])["sha256"] = digest
        file.write_text(json.dumps(doc))


def _file(models, name):
    data = (models / f"{name}.safetensors").read_bytes()
    return st_load(data), weights.header(data, name)["__metadata__"]


# --- the int8 format -------------------------------------------------------------------------------


def test_int8_round_trip_is_exactly_what_the_precision_check_used(tmp_path, registry_at):
    snap = _snapshot(tmp_path / "s.pt")
    models = registry_at(tmp_path / "m")
    card = package(snap, name="q", command="built by a test", out=models, n_seeds=20, int8=["G", "D"])
    assert card["dtypes"] == {"G": "int8", "D": "int8"}
    tensors, meta = _file(models, "q")
    assert meta["zoo_format_version"] == "2" and json.loads(meta["dtypes"]) == card["dtypes"]
    assert tensors["G.net.0.weight"].dtype == torch.int8 and tensors["Q.G.net.0.weight"].shape == (8, 8)
    assert tensors["G.net.1.running_var"].dtype == torch.float16 and tensors["G.net.1.num_batches_tracked"].dtype == torch.int64
    want = ckpt.load(snap)
    got = zoo.load("q")
    for m in ("G", "D"):
        G32 = precision._build(want, m)
        measured = precision.rounded_copy(G32, "int8").state_dict()  # what the card's numbers were computed with
        assert set(got[m]) == set(measured) == set(want[m])
        for k, v in measured.items():
            assert got[m][k].dtype == v.dtype and torch.equal(got[m][k], v), (m, k)
            assert torch.equal(v, weights.stored_state(want[m], "int8")[k])
        assert not torch.equal(got[m]["net.0.weight" if m == "G" else "out.weight"], want[m]["net.0.weight" if m == "G" else "out.weight"])
    assert torch.equal(got["G"]["net.1.running_var"], want["G"]["net.1.running_var"].half().float())


def test_int8_scales_are_per_3d_kernel_and_per_row():
    w = torch.zeros(3, 2, 3, 3, 3)
    w[0, 0] = 1000 * torch.linspace(-1, 1, 27).reshape(3, 3, 3)
    w[0, 1] = 1e-3 * torch.linspace(-1, 0.7, 27).reshape(3, 3, 3)  # one scale per tensor would make this all zeros
    w[2, 1] = 0.5 * torch.rand(3, 3, 3) + 0.1
    lin = torch.stack([torch.linspace(-5, 5, 7), torch.linspace(-0.01, 0.02, 7), torch.zeros(7)])
    conv2d = torch.zeros(2, 3, 5, 5)  # a 2-D conv weight: one scale per output channel
    conv2d[0] = 3.0 * torch.rand(3, 5, 5) - 1.5
    conv2d[1] = 1e-3 * torch.rand(3, 5, 5)
    for t in (w, lin, conv2d):
        q, scale = weights.quantize(t)
        assert q.dtype == torch.int8 and scale.dtype == torch.float16 and tuple(scale.shape) == weights.scale_shape(t.shape)
        back = weights.dequantize(q, scale)
        assert back.shape == t.shape
        slices = t.reshape(*scale.shape, -1)
        err = (back.reshape(*scale.shape, -1) - slices).abs().amax(-1)
        peak = slices.abs().amax(-1)
        assert (err <= peak / 254 * (1 + 1e-3)).all(), (err, peak)  # each slice within 1/254 of its own max
        assert (scale[peak == 0] == 1).all() and (q.abs() <= 127).all()
    assert tuple(weights.quantize(w)[1].shape) == (3, 2) and tuple(weights.quantize(lin)[1].shape) == (3,)
    assert tuple(weights.quantize(conv2d)[1].shape) == (2,)


def test_int8_file_is_about_a_quarter_of_fp32():
    torch.manual_seed(1)
    G, _ = build(ModelConfig(resolution=16, z_dim=16, channels=(64, 32)))
    payload = {"kind": "snapshot", "model_config": {}, "G": G.state_dict()}
    size = {dt: len(st_save(*weights.encode(payload, {"G": dt}))) for dt in ("float32", "float16", "int8")}
    assert 0.24 < size["int8"] / size["float32"] < 0.27 and size["int8"] < 0.52 * size["float16"], size


def test_format_version_stamped_and_newer_refused(tmp_path, registry_at, capsys):
    snap = _snapshot(tmp_path / "s.pt")
    models = registry_at(tmp_path / "m")
    package(snap, name="h", command="c", out=models, n_seeds=10)
    package(snap, name="q", command="c", out=models, n_seeds=10, int8=["G"])
    assert _file(models, "h")[1]["zoo_format_version"] == "1"  # no int8: old readers still read it
    tensors, meta = _file(models, "q")
    assert meta["zoo_format_version"] == "2"
    _rewrite(models, "q", tensors, {**meta, "zoo_format_version": "3"})
    assert main(["sample", "--checkpoint", "q", "--seeds", "0-1", "--out", str(tmp_path / "s")]) == 2
    err = _one_line_error(capsys)
    assert "q.safetensors" in err and "format version 3 is newer than this gan3d reads (up to 2)" in err


def test_damaged_scale_tensor_refused_with_one_line(tmp_path, registry_at, capsys):
    snap = _snapshot(tmp_path / "s.pt")
    models = registry_at(tmp_path / "m")
    package(snap, name="q", command="c", out=models, n_seeds=10, int8=["G"])
    tensors, meta = _file(models, "q")
    _rewrite(models, "q", {**tensors, "Q.G.net.3.weight": torch.ones(8, dtype=torch.float16)}, meta)
    assert main(["sample", "--checkpoint", "q", "--seeds", "0-1", "--out", str(tmp_path / "s")]) == 2
    err = _one_line_error(capsys)
    assert "q.safetensors" in err and "damaged scale tensor 'Q.G.net.3.weight'" in err and "(8, 4) expected" in err
    _rewrite(models, "q", {k: v for k, v in tensors.items() if k != "Q.G.net.3.weight"}, meta)
    with pytest.raises(Gan3dError, match="int8 tensor 'G.net.3.weight' has no scale tensor"):
        zoo.load("q")
    _rewrite(models, "q", {**tensors, "Q.G.nosuch": torch.ones(2, dtype=torch.float16)}, meta)
    with pytest.raises(Gan3dError, match="scale tensor 'Q.G.nosuch' has no int8 tensor"):
        zoo.load("q")


# --- --int8 on the card ----------------------------------------------------------------------------


def test_int8_recorded_on_the_card_with_its_changes(tmp_path, registry_at, capsys):
    # G's last layer just below the threshold everywhere (bias-free, BatchNorm output 5, weights
    # -2.5e-8 of a slice whose fp16 scale underflows): int8 stores it as zeros, so every voxel flips
    snap = _snapshot(tmp_path / "neg.pt", final=lambda w: torch.full_like(w, -2.5e-8))
    with torch.no_grad():
        p = ckpt.load(snap)
        p["G"]["net.4.weight"].zero_(), p["G"]["net.4.bias"].fill_(5.0)
        ckpt.save(snap, {k: v for k, v in p.items() if k not in ("format", "format_version")})
    models = registry_at(tmp_path / "m")
    args = ["models", "package", str(snap), "--name", "q", "--command", "built by a test", "--out", str(models), "--seeds", "30", "--int8", "G", "D"]
    assert main(args) == 0
    card = zoo.card("q")
    g, d = card["precision"]["G"], card["precision"]["D"]
    assert card["dtypes"] == {"G": "int8", "D": "int8"}
    assert g["forced"] is True and g["prior_samples"]["changed_voxels"] == g["prior_samples"]["voxels"] == 30 * 16**3
    assert d["on_G_samples"]["sign_changes"] == 0 and "forced" not in d and d["on_G_samples"]["max_abs_logit_diff"] > 0
    assert "int8" in card["precision"]["rule"] and "On request only" in card["precision"]["rule"]
    capsys.readouterr()
    assert main(["models"]) == 0
    assert "G:int8 D:int8" in capsys.readouterr().out
    # the same model without --int8: the fp16 rule keeps G in fp32 (every voxel would change) and stores D in fp16
    card = package(snap, name="r", command="c", out=models, n_seeds=30)
    assert card["dtypes"] == {"G": "float32", "D": "float16"} and "forced" not in card["precision"]["G"]


def test_int8_and_without_refuse_modules_the_snapshot_lacks(tmp_path, capsys):
    snap = _snapshot(tmp_path / "s.pt")
    base = ["models", "package", str(snap), "--name", "x", "--command", "c", "--out", str(tmp_path / "m")]
    assert main([*base, "--int8", "E"]) == 2
    assert "--int8 E: the snapshot has no module 'E' (it has G, D)" in _one_line_error(capsys)
    assert main([*base, "--int8", "D", "--without", "D"]) == 2
    assert "cannot be stored int8 too" in _one_line_error(capsys)
    assert not (tmp_path / "m").exists()


# --- --without D -----------------------------------------------------------------------------------


def test_without_d_leaves_d_out_and_commands_needing_d_refuse(tmp_path, registry_at, capsys):
    snap = _snapshot(tmp_path / "v.pt", vaegan=True)
    models = registry_at(tmp_path / "m")
    assert main(["models", "package", str(snap), "--name", "vq", "--command", "c", "--out", str(models), "--seeds", "10",
                 "--int8", "G", "E", "--without", "D"]) == 0  # fmt: skip
    card = zoo.card("vq")
    assert card["omitted"] == ["D"] and card["dtypes"] == {"G": "int8", "E": "int8"} and "D" not in card["precision"]
    assert "not_measured" in card["precision"]["E"] and set(card["parameters"]) == {"G", "E"}
    tensors, meta = _file(models, "vq")
    assert not [k for k in tensors if k.startswith(("D.", "Q.D."))] and json.loads(meta["omitted"]) == ["D"]
    assert tensors["E.net.0.weight"].dtype == torch.int8 and tensors["Q.E.net.0.weight"].shape == (4,)  # per output channel of a 2-D conv
    model = gan3d.load("vq", device="cpu")  # what reconstruction needs is there
    assert model.D is None and model.E is not None and "D" not in ckpt.load("vq")
    grids, labels = procedural.make_dataset(8, 16, seed=1, classes=["chair", "table"])
    data = from_arrays(grids, labels, ["chair", "table"], split=(np.arange(8) % 4 == 0).astype(int)).save(tmp_path / "d.npz")
    capsys.readouterr()
    for cmd in (["eval", "classify", "--checkpoint", "vq", "--data", str(data), "--device", "cpu", "--quiet", "--cv", "2"],
                ["explore", "neurons", "--checkpoint", "vq", "--data", str(data), "--out", str(tmp_path / "n")]):
        assert main(cmd) == 2, cmd
        err = _one_line_error(capsys)
        assert "vq: this model was shipped without its discriminator D" in err, err
    assert not (tmp_path / "n").exists()
    capsys.readouterr()
    assert main(["models"]) == 0
    assert "G:int8 E:int8 D:none" in capsys.readouterr().out
    ckpt.save(tmp_path / "again.pt", {k: v for k, v in ckpt.load("vq").items() if k not in ("format", "format_version")})
    assert package(tmp_path / "again.pt", name="vq2", command="c", out=models, n_seeds=10)["omitted"] == ["D"]  # repackaged: still says so
