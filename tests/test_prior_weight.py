"""--prior-weight L: a reconstruction blended with the model's prior shape, (1 - L) * G(z) + L * P, where P is
the mean of G over the N(0, I) latents of seeds 0..63; in gan3d.reconstruct, gan3d reconstruct and gan3d eval
reconstruction."""

import numpy as np
import pytest
import torch
from test_vaegan import _write_images, make_pairs, vcfg

from gan3d.cli import main
from gan3d.errors import Gan3dError
from gan3d.reconstruct import PRIOR_SEEDS, load_reconstructor, posterior_occupancy, prior_occupancy
from gan3d.runtime import latents, set_determinism
from gan3d.train.loop import train_vaegan


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    pairs = make_pairs(tmp_path_factory.mktemp("pw") / "pairs")
    run = train_vaegan(vcfg(pairs, tmp_path_factory.mktemp("runs"), seed=0, steps=3, n_preview=0, eval_pairs=0, run_name="a")).run_dir
    set_determinism(False)
    return pairs, run


def test_prior_shape_is_the_mean_of_g_over_fixed_latents_and_follows_the_weights(model):
    _, run = model
    E, G, _ = load_reconstructor(str(run), device="cpu")
    with torch.no_grad():
        want = G(latents(list(range(PRIOR_SEEDS)), G.cfg.z_dim, "normal")).mean(0, keepdim=True)
        got = prior_occupancy(G)
        assert prior_occupancy(G) is got  # kept while the weights stay as they are
        torch.testing.assert_close(got, want)
        assert got.std() > 1e-4  # a shape, not a constant, so the blend below can tell
        last = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose3d)][-1]
        last.weight.mul_(1.5)  # an in-place change of a weight: the kept shape is stale and is made again
        again = prior_occupancy(G)
        assert again is not got and not torch.allclose(again, got)
        torch.testing.assert_close(again, G(latents(list(range(PRIOR_SEEDS)), G.cfg.z_dim, "normal")).mean(0, keepdim=True))


def test_blend_is_the_weighted_mean_of_posterior_and_prior(model):
    from gan3d.data.pairs import PairedData

    pairs, run = model
    E, G, _ = load_reconstructor(str(run), device="cpu")
    data = PairedData(pairs)
    images, _ = data.batch(data.rows(1)[:3], E.cfg.image_size)
    with torch.no_grad():
        plain, mu, _ = posterior_occupancy(E, G, images)
        prior = prior_occupancy(G)
        for w in (0.25, 0.5):
            blended, mu_w, _ = posterior_occupancy(E, G, images, 1, w)
            torch.testing.assert_close(blended, (1 - w) * plain + w * prior)
            torch.testing.assert_close(mu_w, mu)  # the code is E's, unchanged
        only = posterior_occupancy(E, G, images, 1, 1.0)[0]
        assert torch.allclose(only, prior.expand_as(only))  # L = 1: every image gets the prior shape
        assert not torch.allclose(plain[0], plain[1])  # the images differ, so the check above can fail


def test_cli_api_and_eval_take_the_weight(model, tmp_path, capsys):
    import gan3d
    from gan3d.eval.reconstruction import reconstruction

    pairs, run = model
    paths = _write_images(tmp_path / "in")[:1]
    occ = {}
    for w in ("0", "0.5"):
        assert main(["reconstruct", *map(str, paths), "--checkpoint", str(run), "--out", str(tmp_path / w), "--prior-weight", w,
                     "--device", "cpu"]) == 0
        with np.load(tmp_path / w / f"{paths[0].stem}.npz") as z:
            occ[w] = z["occupancy"].astype(np.float32)
    E, G, _ = load_reconstructor(str(run), device="cpu")
    prior = prior_occupancy(G)[0, 0].detach().numpy()
    np.testing.assert_allclose(occ["0.5"], 0.5 * occ["0"] + 0.5 * prior, atol=2e-3)  # float16 storage
    m = gan3d.load(run, device="cpu")
    api = gan3d.reconstruct(m, [str(paths[0])], prior_weight=0.5, occupancy=True)[0]
    np.testing.assert_allclose(api, occ["0.5"], atol=2e-3)
    with pytest.raises(Gan3dError, match="--prior-weight"):
        gan3d.reconstruct(m, [str(paths[0])], prior_weight=1.5)
    kw = dict(device="cpu", progress=False, baselines=False)
    r0, r1 = reconstruction(run, pairs, **kw), reconstruction(run, pairs, prior_weight=0.5, **kw)
    assert r1["prior_weight"] == 0.5 and "prior_weight" not in r0 and r1["mean_ap"] != r0["mean_ap"]
    capsys.readouterr()
    for argv in (["reconstruct", str(paths[0]), "--checkpoint", str(run), "--out", str(tmp_path / "bad")],
                 ["eval", "reconstruction", "--checkpoint", str(run), "--data", str(pairs), "--quiet"]):
        with pytest.raises(SystemExit) as ex:  # argparse's check: one line, exit 2, nothing written
            main([*argv, "--prior-weight", "1.5"])
        assert ex.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--prior-weight" in err[0]
    assert not (tmp_path / "bad").exists()
