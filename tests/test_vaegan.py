import json

import numpy as np
import pytest
import torch

from gan3d import checkpoint as ckpt
from gan3d.data import procedural
from gan3d.data.prepared import from_arrays
from gan3d.errors import Gan3dError
from gan3d.options import OptionError
from gan3d.models.encoder import (
    EncoderConfig,
    ImageEncoder,
    init_encoder,
    kl_divergence,
    reparameterize,
)
from gan3d.models.gan import ModelConfig, build
from gan3d.presets import ENCODER_PRESETS
from gan3d.runtime import set_determinism
from gan3d.train.config import VAEGANConfig
from gan3d.train.loop import train_vaegan
from gan3d.train.losses import reconstruction_loss
from gan3d.train.vaegan import vaegan_step


@pytest.fixture(autouse=True)
def _no_determinism_leak():
    yield
    set_determinism(False)


# --- a paired folder in imaging's format, from procedural shapes and silhouette pictures -----------


def make_pairs(folder, n_shapes=8, size=32, resolution=16, n_test=2):
    folder.mkdir(parents=True)
    grids, labels = procedural.make_dataset(n_shapes, resolution, seed=3)
    split = np.array([0] * (n_shapes - n_test) + [1] * n_test)
    src = folder / "voxels.npz"
    from_arrays(grids, labels, list(procedural.CLASS_NAMES), split=split).save(src)
    images, shape_index, view, az = [], [], [], []
    for s, g in enumerate(grids):
        for v, axis in enumerate((1, 0)):  # front and side silhouettes
            sil = np.rot90(g.any(axis=axis))  # (R, R), z up
            big = np.kron(sil, np.ones((size // resolution, size // resolution))).astype(bool)
            img = np.full((size, size, 3), 230, np.uint8)
            img[big] = (40 + 20 * s, 90, 160)
            images.append(img)
            shape_index.append(s)
            view.append(v)
            az.append(90.0 * v)
    np.save(folder / "images.npy", np.stack(images))
    n = len(images)
    np.savez(
        folder / "pairs.npz",
        shape_index=np.array(shape_index, np.int64),
        view=np.array(view, np.int64),
        azimuth=np.array(az, np.float32),
        elevation=np.zeros(n, np.float32),
        label=labels[shape_index].astype(np.int64),
        split=split[shape_index].astype(np.uint8),
    )
    meta = dict(format="gan3d-paired-images", format_version=1, dataset=str(src.resolve()), source=str(src.resolve()),
                resolution=resolution, size=size, count=n)
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp("p") / "pairs")


def vcfg(pairs, out, **kw):
    base = dict(pairs=str(pairs), encoder="tiny", preset="tiny", out=str(out), steps=6, batch_size=4, log_every=2,
                snapshot_every=4, n_preview=2, eval_pairs=4, deterministic=True, device="cpu", lr_g=1e-3, lr_d=1e-3, lr_e=1e-3)
    base.update(kw)
    return VAEGANConfig(**base)


@pytest.fixture(scope="module")
def trained(pairs, tmp_path_factory):
    res = train_vaegan(vcfg(pairs, tmp_path_factory.mktemp("runs")))
    set_determinism(False)
    return res


# --- encoder --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ENCODER_PRESETS))
def test_encoder_output_shapes(name):
    cfg = ENCODER_PRESETS[name]
    E = ImageEncoder(cfg)
    with torch.no_grad():
        mu, logvar = E(torch.rand(2, 3, cfg.image_size, cfg.image_size))
    assert mu.shape == logvar.shape == (2, cfg.z_dim)
    assert cfg.spatial_sizes()[-1] == 1


def test_paper_encoder_is_the_papers():
    cfg = ENCODER_PRESETS["paper"]
    assert (cfg.image_size, cfg.z_dim) == (256, 200)
    assert cfg.channels == (64, 128, 256, 512, 400) and cfg.kernels == (11, 5, 5, 5, 8) and cfg.strides == (4, 2, 2, 2, 1)
    assert cfg.paddings == (4, 2, 2, 2, 0) and cfg.spatial_sizes() == [64, 32, 16, 8, 1]
    convs = [m for m in ImageEncoder(cfg).net if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in ImageEncoder(cfg).net if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 5 and len(bns) == 4
    assert ENCODER_PRESETS["cpu"].z_dim == 200 and ENCODER_PRESETS["tiny"].z_dim == 32


def test_encoder_config_checks():
    with pytest.raises(ValueError):
        EncoderConfig(100, 200, (64, 128, 256, 512, 400), (11, 5, 5, 5, 8), (4, 2, 2, 2, 1))  # not 1x1
    with pytest.raises(ValueError):
        EncoderConfig(32, 16, (8, 16, 32, 64), (5, 3, 3, 4), (2, 2, 2, 1))  # last != 2 z_dim
    c = ENCODER_PRESETS["tiny"].with_z_dim(10)
    assert c.channels[-1] == 20 and EncoderConfig.from_dict(c.to_dict()) == c


def test_kl_closed_form():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7) * 0.5
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    ref = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(kl_divergence(mu, logvar), ref, atol=1e-5)
    assert torch.allclose(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    assert z.shape == mu.shape


def test_reconstruction_losses_by_hand():
    recon = torch.tensor([[0.9, 0.2, 0.5, 0.0], [0.1, 0.7, 1.0, 0.3]]).reshape(2, 1, 4)
    truth = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]]).reshape(2, 1, 4)
    l2 = ((0.01 + 0.04 + 0.25 + 0.0) + (0.01 + 0.09 + 0.0 + 0.49)) / 2
    assert reconstruction_loss(recon, truth, "l2").item() == pytest.approx(l2, rel=1e-6)
    assert reconstruction_loss(recon, truth).item() == pytest.approx(l2, rel=1e-6)  # l2 is the default
    p = recon.clamp(1e-6, 1 - 1e-6).numpy().reshape(2, 4)
    t = truth.numpy().reshape(2, 4)
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum(1).mean()
    assert reconstruction_loss(recon, truth, "bce").item() == pytest.approx(bce, rel=1e-5)
    with pytest.raises(ValueError, match="l2"):
        reconstruction_loss(recon, truth, "l1")
    with pytest.raises(ValueError, match="recon_loss"):
        VAEGANConfig(pairs="x", recon_loss="l1")


# --- one step -------------------------------------------------------------------------------------


def _state(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _same(a, m):
    return all(torch.equal(a[k], v) for k, v in m.state_dict().items())


def _setup():
    torch.manual_seed(0)
    mcfg = ModelConfig(resolution=16, z_dim=32, channels=(16, 8))
    G, D = build(mcfg)
    E = ImageEncoder(ENCODER_PRESETS["tiny"])
    init_encoder(E)
    opts = [torch.optim.Adam(m.parameters(), 1e-3, betas=(0.5, 0.999)) for m in (E, G, D)]
    g = torch.Generator().manual_seed(5)
    images = torch.rand(4, 3, 32, 32, generator=g)
    shapes = (torch.rand(4, 1, 16, 16, 16, generator=g) > 0.7).float()
    z, eps = torch.randn(4, 32, generator=g), torch.randn(4, 32, generator=g)
    cfg = VAEGANConfig(pairs="x", d_gate=1.0)
    return E, G, D, opts, images, shapes, z, eps, cfg


@pytest.mark.parametrize("phase,owner", [("d", "D"), ("e", "E"), ("g", "G")])
def test_each_phase_changes_only_its_module(phase, owner):
    E, G, D, (oe, og, od), images, shapes, z, eps, cfg = _setup()
    mods = {"E": E, "G": G, "D": D}
    before = {k: _state(m) for k, m in mods.items()}
    st = vaegan_step(E, G, D, oe, og, od, images, shapes, z, eps, cfg, phases=(phase,))
    assert all(np.isfinite(v) for v in st.values())
    for k, m in mods.items():
        assert _same(before[k], m) == (k != owner), (phase, k)
    # only the owner's parameters have moved, and all of its trainable ones have gradients
    assert all(p.requires_grad for m in mods.values() for p in m.parameters())


def test_full_step_stats_and_gate():
    E, G, D, (oe, og, od), images, shapes, z, eps, cfg = _setup()
    st = vaegan_step(E, G, D, oe, og, od, images, shapes, z, eps, cfg)
    for k in ("loss_d", "d_acc", "d_updated", "loss_e", "kl", "recon", "recon_iou", "loss_g", "loss_g_adv"):
        assert np.isfinite(st[k]), k
    # recon is summed over voxels: of the order of R^3 / 4 for an untrained G
    assert st["recon"] > 100
    d0 = [p.detach().clone() for p in D.parameters()]
    st = vaegan_step(E, G, D, oe, og, od, images, shapes, z, eps, VAEGANConfig(pairs="x", d_gate=1e-9), phases=("d",))
    if st["d_acc"] > 1e-9:  # the gate closed: D's weights did not move (its BN statistics may)
        assert st["d_updated"] == 0.0 and all(torch.equal(a, b) for a, b in zip(d0, D.parameters()))


@pytest.mark.parametrize("with_noise", [False, True])
def test_fused_step_equals_the_three_phases(with_noise):
    """The fused step shares G's passes between phases; it must give the updates and BatchNorm
    statistics of the three separate phases. SGD keeps the comparison free of Adam's sign-like
    first step, which would magnify rounding differences of near-zero gradients."""
    results = []
    for fused in (False, True):
        E, G, D, _, images, shapes, z, eps, cfg = _setup()
        oe, og, od = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (E, G, D))
        g = torch.Generator().manual_seed(9)
        noise = tuple(0.2 * torch.randn(shapes.shape, generator=g) for _ in range(2)) if with_noise else None
        st = vaegan_step(E, G, D, oe, og, od, images, shapes, z, eps, cfg, noise=noise, fused=fused)
        results.append((st, [_state(m) for m in (E, G, D)]))
    (st_a, mods_a), (st_b, mods_b) = results
    for key in ("loss_d", "d_acc", "loss_e", "kl", "recon", "loss_g", "loss_g_adv"):
        assert st_a[key] == pytest.approx(st_b[key], rel=1e-5, abs=1e-6), key
    moved = 0
    for a, b in zip(mods_a, mods_b):
        for k in a:
            assert torch.allclose(a[k].float(), b[k].float(), rtol=1e-4, atol=1e-6), k
    # and the step did move every module (so the comparison is not between two unchanged models)
    E0, G0, D0, *_ = _setup()
    for before, after in zip((_state(E0), _state(G0), _state(D0)), mods_b):
        moved += any(not torch.equal(before[k], after[k]) for k in before)
    assert moved == 3


# --- the loop -------------------------------------------------------------------------------------


def test_train_writes_run_folder(trained):
    run = trained.run_dir
    assert trained.step == 6 and not trained.interrupted
    for name in ("config.json", "log.txt", "stats.jsonl", "checkpoint.pt", "snapshot.pt", "recon_000004.png", "recon_000006.png"):
        assert (run / name).is_file(), name
    conf = json.loads((run / "config.json").read_text())
    assert conf["encoder"]["z_dim"] == conf["model"]["z_dim"] == 32
    lines = [json.loads(l) for l in (run / "stats.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [2, 4, 6] and all(np.isfinite(l["kl"]) for l in lines)
    snap = torch.load(run / "snapshot.pt", weights_only=True)
    assert snap["kind"] == "vaegan-snapshot" and {"E", "G", "D", "encoder_config", "model_config"} <= set(snap)
    state = ckpt.load(run / "checkpoint.pt")
    assert state["kind"] == "vaegan-train" and state["step"] == 6 and {"opt_e", "opt_g", "opt_d", "rng"} <= set(state)
    G, _ = ckpt.load_generator(run / "snapshot.pt")  # the 3D-GAN sampler reads it too
    assert G.cfg.resolution == 16
    assert "test_iou" in (run / "log.txt").read_text()


def test_snapshot_has_recalibrated_batchnorm(trained):
    """snapshot.pt holds E and G with BatchNorm statistics re-estimated for eval mode; the weights
    are the training state's, and checkpoint.pt keeps the training state's own statistics."""
    run = trained.run_dir
    snap, state = ckpt.load(run / "snapshot.pt"), ckpt.load(run / "checkpoint.pt")
    for name in ("E", "G"):
        s, t = snap[name], state[name]
        weights = [k for k in s if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
        assert weights and all(torch.equal(s[k], t[k]) for k in weights), name
        means = [k for k in s if k.endswith("running_mean")]
        assert means and any(not torch.allclose(s[k], t[k]) for k in means), name
        # a cumulative average over the recalibration batches, not a momentum average over steps
        assert all(int(s[k]) != int(t[k]) for k in s if k.endswith("num_batches_tracked")), name


def test_spread_takes_rows_from_the_whole_split():
    from gan3d.data.pairs import spread as _spread

    rows = np.arange(100, 200)
    got = _spread(rows, 5)
    assert got.tolist() == [100, 125, 150, 174, 199]
    assert _spread(rows, 500).tolist() == rows.tolist() and len(_spread(rows, 0)) == 0


def test_exact_resume(pairs, trained, tmp_path):
    part = train_vaegan(vcfg(pairs, tmp_path, run_name="a"), stop_after=3)
    assert part.step == 3
    done = train_vaegan(vcfg(pairs, tmp_path), resume=part.run_dir)
    assert done.step == 6
    a = ckpt.load(done.run_dir / "checkpoint.pt")
    b = ckpt.load(trained.run_dir / "checkpoint.pt")
    for key in ("E", "G", "D"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    with pytest.raises(Gan3dError, match="VAE-GAN"):
        train_vaegan(vcfg(pairs, tmp_path), resume=_gan_checkpoint(tmp_path / "g.pt", 16))


def _gan_checkpoint(path, resolution):
    mcfg = ModelConfig(resolution=resolution, z_dim=32, channels=(16, 8) if resolution == 16 else (16, 8, 4))
    G, D = build(mcfg)
    ckpt.save(path, dict(kind="snapshot", model_config=mcfg.to_dict(), G=G.state_dict(), D=D.state_dict(), step=7))
    return path


def test_init_from_checkpoint(pairs, tmp_path):
    with pytest.raises(Gan3dError, match="32\\^3"):
        train_vaegan(vcfg(pairs, tmp_path, init_from=str(_gan_checkpoint(tmp_path / "g32.pt", 32)), steps=1))
    res = train_vaegan(vcfg(pairs, tmp_path, init_from=str(_gan_checkpoint(tmp_path / "g16.pt", 16)), steps=1, n_preview=0, eval_pairs=0))
    assert "initialised from" in (res.run_dir / "log.txt").read_text()


def test_init_from_vaegan_loads_the_encoder(pairs, trained, tmp_path):
    """From a 3D-VAE-GAN, --init-from starts E as well as G and D (with rates of 1e-30, one step leaves
    the weights as loaded); from a 3D-GAN, E starts fresh."""
    src = ckpt.load(trained.run_dir / "checkpoint.pt")
    frozen = dict(steps=1, n_preview=0, eval_pairs=0, lr_e=1e-30, lr_g=1e-30, lr_d=1e-30)  # steps far under fp32 resolution
    res = train_vaegan(vcfg(pairs, tmp_path, init_from=str(trained.run_dir / "checkpoint.pt"), run_name="ft", **frozen))
    got = ckpt.load(res.run_dir / "checkpoint.pt")
    for key in ("E", "G", "D"):
        weights = [k for k in src[key] if k.endswith("weight")]
        assert weights and all(torch.equal(got[key][k], src[key][k]) for k in weights), key
    assert "E initialised from" in (res.run_dir / "log.txt").read_text()
    fresh = train_vaegan(vcfg(pairs, tmp_path, init_from=str(_gan_checkpoint(tmp_path / "g16.pt", 16)), run_name="gan", **frozen))
    e = ckpt.load(fresh.run_dir / "checkpoint.pt")["E"]
    assert not all(torch.equal(e[k], src["E"][k]) for k in src["E"] if k.endswith("weight"))
    assert "E initialised from" not in (fresh.run_dir / "log.txt").read_text()


def test_fresh_d_is_a_copy_without_d(pairs, trained, tmp_path):
    """--fresh-d with --init-from RUN trains exactly as --init-from a copy of RUN without its D: E and G
    from RUN, D new (unlike plain --init-from, which takes RUN's D)."""
    src = ckpt.load(trained.run_dir / "snapshot.pt")
    bare = {k: v for k, v in src.items() if k not in ("D", "D_opt")}
    torch.save(bare, tmp_path / "noD.pt")
    kw = dict(steps=2, n_preview=0, eval_pairs=0)
    a = train_vaegan(vcfg(pairs, tmp_path, init_from=str(trained.run_dir / "snapshot.pt"), fresh_d=True, run_name="fresh", **kw))
    set_determinism(False)
    b = train_vaegan(vcfg(pairs, tmp_path, init_from=str(tmp_path / "noD.pt"), run_name="bare", **kw))
    set_determinism(False)
    c = train_vaegan(vcfg(pairs, tmp_path, init_from=str(trained.run_dir / "snapshot.pt"), run_name="withd", **kw))
    set_determinism(False)
    ga, gb, gc = (ckpt.load(r.run_dir / "checkpoint.pt") for r in (a, b, c))
    for key in ("E", "G", "D"):
        assert all(torch.equal(ga[key][k], gb[key][k]) for k in ga[key]), key
    assert not all(torch.equal(ga["D"][k], gc["D"][k]) for k in ga["D"] if k.endswith("weight"))
    assert "has its D left out (--fresh-d)" in (a.run_dir / "log.txt").read_text()
    with pytest.raises(OptionError, match="fresh_d"):
        vcfg(pairs, tmp_path, fresh_d=True)


# --- reconstruction -------------------------------------------------------------------------------


@pytest.fixture
def prepare():
    """The image reader that reconstruction uses."""
    from gan3d.data.images import prepare_image

    return prepare_image


def _write_images(folder):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[10:40, 20:44] = (200, 60, 30)
    Image.fromarray(rgb).save(folder / "chair.png")
    Image.fromarray(rgb).save(folder / "photo.jpg", quality=90)
    Image.fromarray(rgb[..., 0]).save(folder / "gray.png")
    rgba = np.dstack([rgb, np.where(rgb[..., 0] > 0, 255, 0).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    return [folder / n for n in ("chair.png", "photo.jpg", "gray.png", "alpha.png")]


def test_reconstruct_images(trained, tmp_path, prepare):
    from PIL import Image

    from gan3d.reconstruct import load_reconstructor, reconstruct_images

    E, G, meta = load_reconstructor(trained.run_dir)
    assert not E.training and meta["kind"] == "vaegan-snapshot" and E.cfg.image_size == 32
    paths = _write_images(tmp_path / "in")
    out = tmp_path / "out"
    res = reconstruct_images(trained.run_dir / "snapshot.pt", paths, out, threshold=0.0, device="cpu")
    for stem in ("chair", "photo", "gray", "alpha"):
        for ext in ("npz", "obj", "png"):
            assert (out / f"{stem}.{ext}").is_file(), (stem, ext)
        with np.load(out / f"{stem}.npz") as z:
            assert z["grid"].shape == (16, 16, 16) and z["grid"].dtype == bool and z["mu"].shape == (32,)
    w, h = Image.open(out / "chair.png").size
    assert w > 2 * 256 and h >= 256  # input beside the rendering
    assert res["empty"] == [] and len(res["images"]) == 4
    # the size check: threshold 0 fills every voxel, so nothing is small; each image says its size
    assert res["typical_filled_voxels"] == 16**3 and res["small"] == []
    assert all(r["filled_voxels"] == 16**3 and r["small"] is False for r in res["images"])
    tiny = reconstruct_images(trained.run_dir, paths[:2], tmp_path / "t", threshold=1.0, formats=("npz",), device="cpu")
    assert tiny["typical_filled_voxels"] == 0 and tiny["small"] == []  # nothing is under a quarter of nothing
    # K samples: the mean of K occupancy grids, reproducible
    r1 = reconstruct_images(trained.run_dir, paths[:1], tmp_path / "k1", samples=3, formats=("npz",), device="cpu")
    reconstruct_images(trained.run_dir, paths[:1], tmp_path / "k2", samples=3, formats=("npz",), device="cpu")
    with np.load(tmp_path / "k1" / "chair.npz") as a, np.load(tmp_path / "k2" / "chair.npz") as b:
        assert np.array_equal(a["occupancy"], b["occupancy"])
    assert r1["samples"] == 3 and not (tmp_path / "k1" / "chair.obj").exists()


def test_reconstruct_errors(trained, tmp_path, prepare):
    from gan3d.reconstruct import reconstruct_images

    good = _write_images(tmp_path / "in")[0]
    bad = tmp_path / "in" / "broken.png"
    bad.write_bytes(b"not an image at all")
    out = tmp_path / "out"
    with pytest.raises(Gan3dError, match="broken.png"):
        reconstruct_images(trained.run_dir, [good, bad], out, device="cpu")
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(Gan3dError, match="VAE-GAN"):
        reconstruct_images(_gan_checkpoint(tmp_path / "g.pt", 16), [good], out, device="cpu")
    with pytest.raises(Gan3dError, match="format"):
        reconstruct_images(trained.run_dir, [good], out, formats=("xyz",), device="cpu")


def test_vaegan_presets_and_dry_run(capsys, tmp_path):
    from gan3d.cli import main
    from gan3d.presets import PRESETS
    from gan3d.train.config import make_vaegan_config

    paper = make_vaegan_config("paper64", pairs="x")
    assert (paper.alpha1, paper.alpha2, paper.lr_g, paper.lr_d, paper.batch_size, paper.d_gate) == (5.0, 1e-4, 0.0025, 1e-5, 100, 0.8)
    assert paper.encoder == "paper" and paper.recon_loss == "l2" and paper.instance_noise == 0
    cpu = make_vaegan_config("cpu32", pairs="x", alpha2=None, lr_e=2e-4)  # None keeps the preset's value
    assert cpu.alpha2 == PRESETS["cpu32"].vaegan["alpha2"] and cpu.lr_e == 2e-4 and cpu.encoder == "cpu"
    # every preset's recipe is a valid config
    for name in PRESETS:
        assert make_vaegan_config(name, pairs="x").preset == name
    # the command line takes the preset's recipe for unset options
    pairs = tmp_path / "p"  # --dry-run checks that --pairs is a paired folder (it has a meta.json)
    pairs.mkdir()
    (pairs / "meta.json").write_text("{}")
    assert main(["train", "--model", "vaegan", "--pairs", str(pairs), "--preset", "paper64", "--alpha1", "2", "--dry-run"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["alpha1"] == 2.0 and shown["alpha2"] == 1e-4 and shown["encoder"] == "paper" and shown["batch_size"] == 100


def test_reconstruction_eval_scores_only_the_chosen_classes(trained, pairs):
    from gan3d.errors import Gan3dError
    from gan3d.eval.reconstruction import reconstruction

    full = reconstruction(trained.run_dir, pairs, device="cpu", progress=False)
    present = [c for c in full["per_class"]]
    assert len(present) >= 2, full["per_class"]
    one = reconstruction(trained.run_dir, pairs, device="cpu", progress=False, classes=[present[0]])
    assert list(one["per_class"]) == [present[0]]
    assert one["per_class"][present[0]] == full["per_class"][present[0]]  # the same images, the same scores
    assert one["n_images"] < full["n_images"]
    with pytest.raises(Gan3dError, match="lamp"):
        reconstruction(trained.run_dir, pairs, device="cpu", progress=False, classes=["lamp"])


def test_reconstruction_eval_scores_each_class_with_its_own_model(trained, pairs, tmp_path, capsys):
    """--per-class: a class's scores are those of its own model alone on that class; the rest come
    from --checkpoint; a class without a model, or an unknown one, is one clear error."""
    from gan3d.cli import main
    from gan3d.cli.eval import format_reconstruction
    from gan3d.eval.reconstruction import reconstruction

    other = train_vaegan(vcfg(pairs, tmp_path, seed=1, steps=2, n_preview=0, eval_pairs=0))
    set_determinism(False)
    kw = dict(device="cpu", progress=False)
    full = reconstruction(trained.run_dir, pairs, **kw)
    a, b = list(full["per_class"])[:2]
    mixed = reconstruction(trained.run_dir, pairs, per_class={a: other.run_dir}, **kw)
    alone = reconstruction(other.run_dir, pairs, classes=[a], **kw)
    assert mixed["per_class"][a] == alone["per_class"][a] != full["per_class"][a]  # a: the other model's own scores
    assert mixed["per_class"][b] == full["per_class"][b]  # b: --checkpoint's
    assert mixed["per_class_checkpoints"][a]["step"] == 2 and mixed["checkpoint_step"] == full["checkpoint_step"]
    only = reconstruction(None, pairs, per_class={a: other.run_dir, b: trained.run_dir}, classes=[a, b], **kw)
    assert only["per_class"][a] == alone["per_class"][a] and only["per_class"][b] == full["per_class"][b]
    head = format_reconstruction(only).splitlines()[0]
    assert "each class by its own model" in head and "None" not in head, head
    assert f"checkpoint step {full['checkpoint_step']}" in format_reconstruction(mixed).splitlines()[0]
    with pytest.raises(Gan3dError, match="no model for class"):
        reconstruction(None, pairs, per_class={a: other.run_dir}, **kw)
    with pytest.raises(Gan3dError, match="lamp"):
        reconstruction(trained.run_dir, pairs, per_class={"lamp": other.run_dir}, **kw)
    assert main(["eval", "reconstruction", "--data", str(pairs), "--per-class", f"{a}={other.run_dir}", "--quiet"]) == 2
    assert "no model for class" in capsys.readouterr().err


def test_reconstruction_eval_reports_other_thresholds(trained, pairs):
    """At 0.5 the threshold table repeats the headline numbers; lower thresholds fill at least as many
    voxels (so no more small reconstructions); the scores match the rule computed by hand."""
    import numpy as np

    from gan3d.errors import Gan3dError
    from gan3d.eval.reconstruction import _score_reconstructions, _score_thresholds, reconstruction

    r = reconstruction(trained.run_dir, pairs, device="cpu", progress=False, thresholds=[0.5, 0.2, 0.05])
    at = r["thresholds"]
    assert list(at) == ["0.5", "0.2", "0.05"]
    assert at["0.5"]["mean_iou"] == r["mean_iou"] and at["0.5"]["small"] == r["small"]
    for name, v in r["per_class"].items():
        assert at["0.5"]["per_class"][name]["iou"] == v["iou"]
        assert at["0.5"]["per_class"][name]["occupancy_ratio"] == v["occupancy_ratio"]
        assert at["0.05"]["per_class"][name]["occupancy_ratio"] >= at["0.2"]["per_class"][name]["occupancy_ratio"] >= v["occupancy_ratio"]
    assert at["0.05"]["small"] <= at["0.2"]["small"] <= r["small"]
    # by hand: a grid at 0.3 everywhere is empty at 0.5 and full at 0.2
    truth = np.zeros((2, 4, 4, 4), bool)
    truth[:, :2] = True
    pred = np.full((2, 4, 4, 4), 0.3, np.float32)
    s = _score_thresholds(pred, truth, np.array([0, 0]), ["a"], [0.5, 0.2])
    assert s["0.5"]["mean_iou"] == _score_reconstructions(pred, truth, np.array([0, 0]), ["a"])["mean_iou"] == 0.0
    assert s["0.5"]["small"] == 1.0
    assert s["0.2"]["mean_iou"] == 0.5 and s["0.2"]["small"] == 0.0
    with pytest.raises(Gan3dError, match="thresholds"):
        reconstruction(trained.run_dir, pairs, device="cpu", progress=False, thresholds=[1.0])


def test_init_from_takes_a_shipped_model_name(pairs, tmp_path):
    """--model vaegan --init-from accepts a shipped model's name, as the 3D-GAN's does (a user fine-tunes
    what ships); a name that is neither a file nor a shipped model is refused naming the shipped ones."""
    from gan3d.cli.train import check_inputs

    check_inputs(vcfg(pairs, tmp_path, init_from="vaegan-mn5-renders"))
    with pytest.raises(Gan3dError, match="no shipped model of that name.*vaegan-mn5"):
        check_inputs(vcfg(pairs, tmp_path, init_from="no-such-model"))
    with pytest.raises(Gan3dError, match="is a folder"):
        check_inputs(vcfg(pairs, tmp_path, init_from=str(tmp_path)))
    # the shipped payload loads with its encoder: G and E start from it, D fresh (shipped without D)
    payload = ckpt.load("vaegan-mn5-renders")
    assert "E" in payload and "G" in payload and "D" not in payload
