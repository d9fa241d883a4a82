from pathlib import Path

import pytest
import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _small_torch():
    # Tests are small; one thread for the whole session (module-scoped fixtures included) keeps
    # results independent of the machine's core count, which exact-resume comparisons rely on.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")
    return DATA


@pytest.fixture
def registry_at(monkeypatch):
    """A function that points gan3d at another models folder (GAN3D_MODELS_DIR) and returns it."""
    def use(folder):
        monkeypatch.setenv("GAN3D_MODELS_DIR", str(folder))
        return folder

    return use


class TinyGanRuns:
    """Short 3D-GAN runs of the tiny preset on built-in shapes, for the tests of one training option
    (DiffAugment and EMA, the rotation task, R1): the shared config, and the exact-resume check."""

    BASE = dict(data="builtin", builtin_count=24, steps=8, batch_size=8, log_every=1, snapshot_every=4, n_preview=2,
                bn_samples=16, deterministic=True, device="cpu")

    def config(self, folder, **options):
        from gan3d.train.config import make_config

        return make_config("tiny", **{**self.BASE, "out": str(Path(folder) / "runs"), **options})

    def resume_matches(self, folder, modules=("G", "D"), **options):
        """Train the config straight through in ``folder/a``, and stopped at step 4 then resumed in
        ``folder/b``; assert that both end with equal ``modules``. Returns (the straight run's
        result, its checkpoint)."""
        from gan3d.train.loop import train

        a = train(self.config(Path(folder) / "a", **options), progress=False, quiet=True)
        b0 = train(self.config(Path(folder) / "b", **options), stop_after=4, progress=False, quiet=True)
        b = train(None, resume=b0.run_dir, progress=False, quiet=True)
        sa = torch.load(a.run_dir / "checkpoint.pt", weights_only=True)
        sb = torch.load(b.run_dir / "checkpoint.pt", weights_only=True)
        for m in modules:
            for k, v in sa[m].items():
                assert torch.equal(v, sb[m][k]), f"{m}.{k}"
        return a, sa


@pytest.fixture
def tiny_gan_runs() -> TinyGanRuns:
    return TinyGanRuns()
