"""Averaged 3D-VAE-GANs ("A+B" where one model is taken): the occupancy is the mean of the models', in
`gan3d reconstruct`, `gan3d eval reconstruction` (--checkpoint and --per-class) and the IKEA block."""

import numpy as np
import pytest
from test_vaegan import _write_images, make_pairs, vcfg

from gan3d.cli import main
from gan3d.errors import Gan3dError
from gan3d.eval.reconstruction import reconstruction
from gan3d.reconstruct import load_reconstructor, model_specs, reconstruct_images
from gan3d.runtime import set_determinism
from gan3d.train.loop import train_vaegan


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """A paired folder and two small models trained on it with different seeds (and lengths)."""
    pairs = make_pairs(tmp_path_factory.mktemp("ap") / "pairs")
    out = tmp_path_factory.mktemp("runs")
    a = train_vaegan(vcfg(pairs, out, seed=0, steps=3, n_preview=0, eval_pairs=0, run_name="a")).run_dir
    b = train_vaegan(vcfg(pairs, out, seed=1, steps=2, n_preview=0, eval_pairs=0, run_name="b")).run_dir
    set_determinism(False)
    return pairs, a, b


def test_model_specs(tmp_path):
    assert model_specs("a+b+c") == ["a", "b", "c"] and model_specs("run") == ["run"]
    odd = tmp_path / "x+y.pt"  # an existing path with a plus in its name is one model
    odd.write_bytes(b"")
    assert model_specs(odd) == [str(odd)]
    with pytest.raises(Gan3dError, match="empty model name"):
        model_specs("a+")


def test_reconstruct_averages_occupancies(two, tmp_path):
    pairs, a, b = two
    paths = _write_images(tmp_path / "in")[:2]
    occ = {}
    for name, spec in (("a", str(a)), ("b", str(b)), ("ab", f"{a}+{b}")):
        res = reconstruct_images(spec, paths, tmp_path / name, formats=("npz",), device="cpu")
        with np.load(tmp_path / name / "chair.npz") as z:
            occ[name] = z["occupancy"].astype(np.float32)
    # float16 storage: the mean of the two stored grids, to fp16 rounding
    np.testing.assert_allclose(occ["ab"], (occ["a"] + occ["b"]) / 2, atol=2e-3)
    assert not np.allclose(occ["a"], occ["b"], atol=1e-2)  # the two models differ, so the test can fail
    assert [m["step"] for m in res["averaged"]] == [3, 2]
    with pytest.raises(Gan3dError, match="no such checkpoint"):
        reconstruct_images(f"{a}+{tmp_path / 'missing.pt'}", paths, tmp_path / "bad", device="cpu")
    assert not (tmp_path / "bad").exists()


def test_eval_reconstruction_averages(two, capsys):
    pairs, a, b = two
    kw = dict(device="cpu", progress=False)
    ra, rb = reconstruction(a, pairs, **kw), reconstruction(b, pairs, **kw)
    rab, rba = reconstruction(f"{a}+{b}", pairs, **kw), reconstruction(f"{b}+{a}", pairs, **kw)
    raa = reconstruction(f"{a}+{a}", pairs, **kw)
    assert raa["per_class"] == ra["per_class"]  # a model averaged with itself is itself
    for c in rab["per_class"]:  # the order of the models does not matter
        assert rab["per_class"][c]["iou"] == pytest.approx(rba["per_class"][c]["iou"], abs=1e-4)
    assert rab["mean_ap"] not in (ra["mean_ap"], rb["mean_ap"])
    assert [m["step"] for m in rab["averaged"]] == [3, 2] and rab["checkpoint_step"] == 3
    # --per-class: one class by the pair, the rest by --checkpoint
    c0 = next(iter(ra["per_class"]))
    mixed = reconstruction(a, pairs, per_class={c0: f"{a}+{b}"}, **kw)
    assert mixed["per_class"][c0] == rab["per_class"][c0]
    assert [m["step"] for m in mixed["per_class_checkpoints"][c0]["averaged"]] == [3, 2]
    # the command line: the pair named in the summary; a missing member is one line, exit 2
    assert main(["eval", "reconstruction", "--checkpoint", f"{a}+{b}", "--data", str(pairs), "--device", "cpu", "--quiet"]) == 0
    assert main(["eval", "reconstruction", "--checkpoint", f"{a}+nothing-here", "--data", str(pairs), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing-here" in err[0]


def test_averaged_models_must_agree(two, tmp_path):
    pairs, a, _ = two
    other = train_vaegan(vcfg(pairs, tmp_path, seed=2, steps=1, n_preview=0, eval_pairs=0, encoder="cpu")).run_dir
    set_determinism(False)
    assert load_reconstructor(other)[0].cfg.image_size != load_reconstructor(a)[0].cfg.image_size
    with pytest.raises(Gan3dError, match="cannot be averaged"):
        reconstruction(f"{a}+{other}", pairs, device="cpu", progress=False)


def test_ikea_block_averages(two, tmp_path):
    """--ikea with A+B: the IKEA protocol scores the averaged occupancy too (A+A is A, A+B is neither)."""
    from gan3d.eval.ikea import make_fixture

    pairs, a, b = two
    make_fixture(tmp_path / "ikea", n_per_class=1)
    kw = dict(device="cpu", progress=False, ikea=tmp_path / "ikea", max_pairs=2)
    ra, rb = reconstruction(a, pairs, **kw)["ikea"], reconstruction(b, pairs, **kw)["ikea"]
    assert reconstruction(f"{a}+{a}", pairs, **kw)["ikea"] == ra
    rab = reconstruction(f"{a}+{b}", pairs, **kw)["ikea"]
    assert rab != ra and rab != rb



def test_ikea_block_reads_each_class_with_its_own_model(two, tmp_path):
    """--per-class with --ikea: an IKEA class with its own model is scored by it (its AP is that model's
    alone), the rest by --checkpoint's; without --checkpoint the classes with no model are left out."""
    from gan3d.eval.ikea import make_fixture

    pairs, a, b = two
    make_fixture(tmp_path / "ikea", n_per_class=1)
    kw = dict(device="cpu", progress=False, ikea=tmp_path / "ikea", max_pairs=2)
    ra, rb = reconstruction(a, pairs, **kw)["ikea"], reconstruction(b, pairs, **kw)["ikea"]
    c0 = next(iter(reconstruction(a, pairs, device="cpu", progress=False)["per_class"]))  # a class both sets have
    assert ra["ap"][c0] != rb["ap"][c0] and ra["no_model"] == []
    mixed = reconstruction(a, pairs, per_class={c0: b}, **kw)["ikea"]
    assert mixed["ap"][c0] == rb["ap"][c0]
    assert all(mixed["ap"][c] == ra["ap"][c] for c in ra["ap"] if c not in (c0, "mean"))
    only = reconstruction(None, pairs, per_class={c0: b}, classes=[c0], **kw)["ikea"]
    assert set(only["ap"]) == {c0, "mean"} and only["ap"][c0] == rb["ap"][c0] and c0 not in only["no_model"]
    assert len(only["no_model"]) == 5
    # a --per-class model of a class the IKEA set does not have, and no --checkpoint: one clear error
    from gan3d.eval.reconstruction import _ikea

    with pytest.raises(Gan3dError, match="no model for any IKEA class"):
        _ikea(tmp_path / "ikea", {"lamp": []}, "cpu", False)


def test_api_reconstruct_averages_a_list_of_models(two, tmp_path):
    import gan3d

    pairs, a, b = two
    paths = _write_images(tmp_path / "in")[:2]
    ma, mb = gan3d.load(a, device="cpu"), gan3d.load(b, device="cpu")
    oa, ob = (gan3d.reconstruct(m, paths, occupancy=True) for m in (ma, mb))
    both = gan3d.reconstruct([ma, mb], paths, occupancy=True)
    np.testing.assert_allclose(both, (oa + ob) / 2, rtol=0, atol=1e-6)
    assert both.dtype == np.float32
    reconstruct_images(f"{a}+{b}", paths, tmp_path / "cli", formats=("npz",), device="cpu")
    with np.load(tmp_path / "cli" / "chair.npz") as z:  # the command line's, stored in float16
        np.testing.assert_allclose(z["occupancy"].astype(np.float32), both[0], atol=1e-3)
    with pytest.raises(Gan3dError, match="no model"):
        gan3d.reconstruct([], paths)


def test_api_load_of_a_plus_name_says_how_to_average(two, tmp_path):
    import gan3d

    pairs, a, b = two
    with pytest.raises(Gan3dError, match=r"gan3d.reconstruct\(\[a, b\]"):
        gan3d.load(f"{a}+{b}", device="cpu")
    plus = tmp_path / "a+b.pt"  # a real file whose name holds a '+' still loads
    plus.write_bytes(a.read_bytes() if a.is_file() else (a / "snapshot.pt").read_bytes())
    assert gan3d.load(plus, device="cpu").E is not None


def test_posterior_draws_in_a_batch_are_reconstruct_ones(two, capsys):
    """average_occupancy(samples=K) on a batch gives, image by image, reconstruct_one(samples=K); and
    eval reconstruction --samples K scores those grids (which differ from G at the posterior mean)."""
    import torch

    from gan3d.data.pairs import PairedData
    from gan3d.reconstruct import average_occupancy, reconstruct_one

    pairs, a, b = two
    members = [load_reconstructor(str(a), device="cpu")]
    E, G, _ = members[0]
    data = PairedData(pairs)
    images, _ = data.batch(data.rows(1)[:3], E.cfg.image_size)
    with torch.no_grad():
        batch = average_occupancy(members, images, samples=4)[:, 0].numpy()
        mean = average_occupancy(members, images)[:, 0].numpy()
    one = np.stack([reconstruct_one(E, G, img.numpy(), samples=4)[0] for img in images])
    np.testing.assert_allclose(batch, one, atol=1e-5)
    assert np.abs(batch - mean).max() > 1e-3  # the draws matter, so the test can fail
    kw = dict(device="cpu", progress=False, baselines=False)
    r1, r4 = reconstruction(a, pairs, **kw), reconstruction(a, pairs, samples=4, **kw)
    assert r4["samples"] == 4 and "samples" not in r1 and r4["mean_ap"] != r1["mean_ap"]
    with pytest.raises(SystemExit) as ex:  # argparse's check: one line, exit 2
        main(["eval", "reconstruction", "--checkpoint", str(a), "--data", str(pairs), "--samples", "0", "--quiet"])
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--samples" in err[0]
