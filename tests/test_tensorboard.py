"""gan3d.tensorboard: the event file holds every numeric stats.jsonl value and the snapshot picture."""

import io
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboard", reason="the tensorboard package is not installed")

from gan3d.errors import Gan3dError  # noqa: E402
from gan3d.tensorboard import TensorBoardWriter  # noqa: E402


def _read(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_scalars_and_image_round_trip(tmp_path):
    recs = [
        {"step": 50, "epoch": 1, "loss_d": 1.25, "loss_g": 5.5, "d_acc": 0.7, "time": 1.7e9, "preset": "tiny", "eval_cov_iou": None},
        {"step": 100, "epoch": 3, "loss_d": 1.0, "loss_g": 4.75, "d_acc": 0.75, "d_updated": True, "time": 1.8e9, "bad": float("nan")},
    ]
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, size=(24, 40, 3), dtype=np.uint8)
    with TensorBoardWriter(tmp_path) as tb:
        written = [tb.scalars(r, r["step"]) for r in recs]
        tb.image("samples", picture, 100)
    assert written[0] == ["epoch", "loss_d", "loss_g", "d_acc"]
    assert written[1] == ["epoch", "loss_d", "loss_g", "d_acc", "d_updated"]

    acc = _read(tmp_path / "tensorboard")
    tags = set(acc.Tags()["scalars"])
    assert tags == {"epoch", "loss_d", "loss_g", "d_acc", "d_updated"}  # no step, time, strings, None, NaN
    loss_g = acc.Scalars("loss_g")
    assert [e.step for e in loss_g] == [50, 100]
    assert [e.value for e in loss_g] == pytest.approx([5.5, 4.75])
    assert [e.value for e in acc.Scalars("d_updated")] == [1.0]

    (img,) = acc.Images("samples")
    assert (img.step, img.width, img.height) == (100, 40, 24)
    from PIL import Image

    decoded = np.asarray(Image.open(io.BytesIO(img.encoded_image_string)).convert("RGB"))
    np.testing.assert_array_equal(decoded, picture)


def test_image_must_be_uint8_rgb(tmp_path):
    with TensorBoardWriter(tmp_path) as tb:
        with pytest.raises(ValueError, match="uint8"):
            tb.image("x", np.zeros((8, 8, 3), np.float32), 0)
        with pytest.raises(ValueError, match=r"\(8, 8\)"):
            tb.image("x", np.zeros((8, 8), np.uint8), 0)


def test_missing_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with pytest.raises(Gan3dError, match="pip install tensorboard") as e:
        TensorBoardWriter(tmp_path)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "tensorboard").exists()
