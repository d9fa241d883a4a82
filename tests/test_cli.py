import subprocess
import sys

import pytest

from gan3d.cli import COMMANDS, build_parser, main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gan3d.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_of_every_command_lists_defaults(capsys):
    for cmd in COMMANDS:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([cmd, "--help"] if cmd != "data" else ["data", "prepare", "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "usage: gan3d" in out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    out = capsys.readouterr().out
    from gan3d.presets import PRESETS

    assert all(name in out for name in PRESETS)
    assert "(default: builtin)" in out and "(default: None)" not in out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sample", "--help"])
    assert "(default: 0-15)" in capsys.readouterr().out


def test_dry_run_resolves_preset_recipe_and_overrides(capsys):
    assert main(["train", "--preset", "paper64", "--dry-run"]) == 0
    import json

    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["lr_g"], cfg["lr_d"], cfg["batch_size"], cfg["d_gate"], cfg["z_dist"]) == (0.0025, 1e-05, 100, 0.8, "uniform")
    assert main(["train", "--preset", "paper64", "--lr-d", "0.001", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["lr_d"] == 0.001


@pytest.mark.parametrize(
    "args, needle",
    [
        (["sample", "--checkpoint", "nope.pt", "--out", "x"], "nope.pt"),
        (["train", "--data", "missing.npz"], "missing.npz"),
        (["train", "--d-gate", "0", "--dry-run"], "--d-gate must be in (0, 1]"),
        (["sample", "--checkpoint", "nope.pt", "--seeds", "9-1", "--out", "x"], "seed"),
        (["render", "missing.binvox", "--out", "x.png"], "missing.binvox"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x").exists()


def test_truncated_checkpoint_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    r = run_cli("sample", "--checkpoint", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "bad.pt" in r.stderr and "Traceback" not in r.stderr


def test_recipe_defaults_are_the_papers_and_presets_override_them():
    from gan3d.train.config import TrainConfig, make_config

    t = TrainConfig()
    assert (t.lr_g, t.lr_d, t.beta1, t.batch_size, t.d_gate, t.loss, t.z_dist) == (0.0025, 1e-5, 0.5, 100, 0.8, "bce", "uniform")
    assert t.instance_noise == 0 and t.mode_seeking == 0 and not t.hard_fakes
    cpu = make_config("cpu32")
    assert (cpu.lr_g, cpu.lr_d, cpu.batch_size, cpu.z_dist) == (1e-3, 1e-4, 32, "normal")
    assert make_config("cpu32", lr_d=3e-4).lr_d == 3e-4


def test_single_image_path_end_to_end(tmp_path):
    """prepare -> data render -> train --model vaegan -> reconstruct, through the command line."""
    import numpy as np
    from PIL import Image

    data, pairs, runs, out = tmp_path / "d.npz", tmp_path / "pairs", tmp_path / "runs", tmp_path / "rec"
    assert main(["data", "prepare", "builtin", "--out", str(data), "--resolution", "16", "--builtin-count", "3"]) == 0
    assert main(["data", "render", str(data), "--out", str(pairs), "--views", "2", "--size", "32"]) == 0
    assert main(["train", "--model", "vaegan", "--pairs", str(pairs), "--preset", "tiny", "--encoder", "tiny", "--steps", "2",
                 "--batch-size", "4", "--out", str(runs), "--run-name", "v", "--quiet"]) == 0
    img = np.load(pairs / "images.npy", mmap_mode="r")[0]
    Image.fromarray(np.asarray(img)).convert("L").save(tmp_path / "gray.png")  # grayscale input is converted
    assert main(["reconstruct", str(tmp_path / "gray.png"), "--checkpoint", str(runs / "v"), "--out", str(out)]) == 0
    assert (out / "gray.npz").is_file() and (out / "gray.png").is_file()
    # held-out reconstruction metrics and the IKEA protocol on a fixture, through `gan3d eval`
    from gan3d.eval.ikea import make_fixture

    make_fixture(tmp_path / "ikea", n_per_class=1)
    r = run_cli("eval", "reconstruction", "--checkpoint", str(runs / "v"), "--data", str(pairs), "--ikea", str(tmp_path / "ikea"),
                "--quiet", "--out", str(tmp_path / "rec.json"))
    assert r.returncode == 0, r.stderr
    import json

    res = json.loads((tmp_path / "rec.json").read_text())
    assert res["n_images"] > 0 and 0.0 <= res["mean_iou"] <= 1.0
    assert set(res["baselines"]["class_mean"]["per_class"]) == set(res["per_class"])
    assert set(res["ikea"]["ap"]) >= {"chair", "mean"}
