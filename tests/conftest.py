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
