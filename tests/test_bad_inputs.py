"""The bad-input corpus: every case is a command line that must end with exit code 2, exactly one
stderr line that names the option or file, no traceback, and nothing written where the output was
to go. Add a case here for every defect found."""

from __future__ import annotations

import numpy as np
import pytest

from gan3d.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "a_file").write_text("x")
    (d / "folder").mkdir()
    (d / "garbage.stl").write_bytes(b"\x00\x01garbage" * 10)
    (d / "garbage.obj").write_text("v 1 2\nf 1 2 3 4 5\nnonsense\n")
    (d / "empty.binvox").write_bytes(b"")
    (d / "latin.off").write_bytes(b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 \xff\xfe\n3 0 1 2\n")
    (d / "latin.stl").write_bytes(b"solid \xff\xfe\nfacet garbage\n")
    (d / "latin.obj").write_bytes(b"v 0 0 \xff\nf 1 2 3\n")
    np.save(d / "grid.npy", np.zeros((16, 16, 16), bool))
    return d


# (argv with {d} for the files folder and {out} for a fresh output path, words the one line must hold)
CASES = [
    # values (the list)
    (["sample", "--checkpoint", "chair", "--batch-size", "0", "--out", "{out}"], "--batch-size"),
    (["sample", "--checkpoint", "chair", "--batch-size", "-1", "--out", "{out}"], "--batch-size"),
    (["sample", "--checkpoint", "chair", "--device", "foo", "--out", "{out}"], "--device"),
    (["sample", "--checkpoint", "chair", "--seeds", "99999999999999999999", "--out", "{out}"], "--seeds"),
    (["sample", "--checkpoint", "chair", "--seeds", "0-5000000", "--out", "{out}"], "--seeds"),
    (["sample", "--checkpoint", "chair", "--seeds", "5-2", "--out", "{out}"], "seed"),
    (["sample", "--checkpoint", "chair", "--threshold", "1.5", "--out", "{out}"], "--threshold"),
    (["sample", "--checkpoint", "chair", "--truncation", "0", "--out", "{out}"], "--truncation"),
    (["sample", "--checkpoint", "chair", "--truncation", "1.5", "--out", "{out}"], "--truncation"),
    (["sample", "--checkpoint", "chair", "--truncation", "nan", "--out", "{out}"], "--truncation"),
    (["eval", "generation", "--checkpoint", "chair", "--data", "{d}/nosuch.npz", "--truncation", "-1"], "--truncation"),
    (["train", "--preset", "tiny", "--r1", "-1", "--out", "{out}"], "--r1"),
    (["sample", "--checkpoint", "nosuch_model", "--out", "{out}"], "nosuch_model"),
    (["render", "{d}/grid.npy", "--out", "{out}.png", "--size", "0"], "--size"),
    (["render", "{d}/grid.npy", "--out", "{out}.png", "--size", "100000"], "--size"),
    (["train", "--resolution", "7", "--dry-run"], "--resolution"),
    (["train", "--lr-g", "nan", "--dry-run"], "--lr-g"),
    (["train", "--beta1", "1.5", "--out", "{out}"], "--beta1"),
    (["train", "--width", "nan", "--dry-run"], "--width"),
    (["train", "--width", "100000", "--dry-run"], "--width"),
    (["train", "--mode-seeking", "nan", "--dry-run"], "--mode-seeking"),
    (["train", "--steps", "0", "--dry-run"], "--steps"),
    (["train", "--d-gate", "0", "--dry-run"], "--d-gate"),
    (["train", "--g-upsample", "bilinear", "--dry-run"], "--g-upsample"),
    (["train", "--model", "vaegan", "--pairs", "/nonexistent", "--image-augment", "blur", "--dry-run"], "--image-augment"),
    (["eval", "generation", "--checkpoint", "chair", "--data", "/nonexistent.npz", "--latent-sets", "0"], "--latent-sets"),
    (["eval", "classify", "--checkpoint", "chair", "--data", "/nonexistent.npz", "--repeats", "0"], "--repeats"),
    (["eval", "reconstruction", "--data", "/nonexistent", "--per-class", "chair"], "--per-class"),
    (["train", "--alpha1", "1", "--dry-run"], "--alpha1"),
    (["train", "--model", "vaegan", "--pairs", "/nonexistent", "--mode-seeking", "0.5", "--z-dist", "uniform", "--width", "2",
      "--augment", "true", "--eval-every", "100", "--dry-run"], "--mode-seeking"),
    (["train", "--model", "vaegan", "--pairs", "/nonexistent", "--dry-run"], "/nonexistent"),
    (["train", "--data", "/nonexistent.npz", "--dry-run"], "/nonexistent.npz"),
    (["data", "merge-pairs", "{d}/folder", "--out", "{out}"], "two or more"),
    (["data", "merge-pairs", "{d}/folder", "{d}/nosuch_pairs", "--out", "{out}"], "folder"),
    (["train", "--data", "{d}/a_file", "--dry-run"], "a_file"),
    (["train", "--resume", "{d}/folder"], "folder"),
    (["eval", "reconstruction", "--checkpoint", "vaegan-mn5", "--data", "{d}", "--max-pairs", "0"], "--max-pairs"),
    (["eval", "reconstruction", "--checkpoint", "vaegan-mn5", "--data", "{d}", "--thresholds", "0.3", "1"], "--thresholds: must be in (0, 1), got 1"),
    # averaged models: an empty name, and a missing one beside a shipped one
    (["reconstruct", "{d}/a_file", "--checkpoint", "vaegan-mn5+", "--out", "{out}"], "empty model name"),
    (["reconstruct", "{d}/a_file", "--checkpoint", "vaegan-mn5+{d}/nosuch.pt", "--out", "{out}"], "nosuch.pt"),
    (["data", "render", "{d}/grid.npy", "--out", "{out}", "--photo", "--random-color"], "--photo"),
    (["train", "--model", "vaegan", "--pairs", "{d}", "--recon-loss", "bce", "--recon-pos-weight", "4", "--dry-run"], "--recon-pos-weight"),
    (["train", "--model", "vaegan", "--pairs", "{d}", "--fresh-d", "--dry-run"], "--fresh-d"),
    (["eval", "generation", "--checkpoint", "/nonexistent.pt", "--data", "{d}/grid.npy"], "grid.npy"),
    # output places
    (["sample", "--checkpoint", "chair", "--seeds", "0", "--out", "{d}/a_file"], "a_file"),
    (["sample", "--checkpoint", "chair", "--seeds", "0", "--out", "{d}/a_file/under"], "a_file"),
    (["render", "{d}/grid.npy", "--out", "{d}/folder"], "folder"),
    (["render", "{d}/grid.npy", "--out", "{d}/a_file/x.png"], "a_file"),
    (["data", "prepare", "builtin", "--out", "{d}/folder", "--resolution", "16"], "folder"),
    (["data", "prepare", "builtin", "--out", "{d}/a_file/x.npz", "--resolution", "16"], "a_file"),
    (["train", "--preset", "tiny", "--out", "{d}/a_file", "--dry-run"], "a_file"),
    # readers
    (["render", "{d}/garbage.stl", "--out", "{out}.png"], "garbage.stl"),
    (["render", "{d}/garbage.obj", "--out", "{out}.png"], "garbage.obj"),
    (["render", "{d}/empty.binvox", "--out", "{out}.png"], "empty.binvox"),
    (["render", "{d}/nosuch.binvox", "--out", "{out}.png"], "nosuch.binvox"),
    # non-UTF-8 mesh text: trimesh needs charset-normalizer to get as far as its own error
    (["render", "{d}/latin.off", "--out", "{out}.png"], "latin.off"),
    (["render", "{d}/latin.stl", "--out", "{out}.png"], "latin.stl"),
    (["render", "{d}/latin.obj", "--out", "{out}.png"], "latin.obj"),
    # training levers, the auto-encoder baseline and the shifted classification tests
    (["train", "--model", "autoencoder", "--lr-d", "0.1", "--out", "{out}", "--dry-run"], "--lr-d"),
    (["train", "--model", "autoencoder", "--z-dist", "uniform", "--out", "{out}", "--dry-run"], "--z-dist"),
    (["train", "--diffaugment", "rotate", "--out", "{out}", "--dry-run"], "--diffaugment"),
    (["train", "--ema", "1", "--out", "{out}", "--dry-run"], "--ema"),
    (["eval", "classify", "--checkpoint", "modelnet10", "--data", "{d}/a_file", "--validation", "1.5"], "--validation"),
    (["eval", "classify", "--checkpoint", "modelnet10", "--data", "{d}/a_file", "--shifted", "rotate"], "--shifted"),
]


def test_corpus_size():
    assert len(CASES) >= 40  # it only grows


@pytest.mark.parametrize("argv,needle", CASES, ids=[" ".join(a[:3]) + f" [{i}]" for i, (a, _) in enumerate(CASES)])
def test_bad_input_gives_one_line_and_exit_2(argv, needle, files, tmp_path, capsys):
    out = tmp_path / "out"
    args = [a.format(d=files, out=out) for a in argv]
    before = sorted(p.name for p in files.rglob("*"))
    try:
        code = main(args)
    except SystemExit as e:  # option errors leave through argparse
        code = e.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, (code, captured.err)
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert needle in lines[0] and "No module named" not in lines[0], lines[0]
    assert not any(tmp_path.iterdir()), sorted(p.name for p in tmp_path.iterdir())  # nothing written
    assert sorted(p.name for p in files.rglob("*")) == before


def test_pool_workers_leave_ctrl_c_to_the_parent():
    import subprocess
    import sys

    code = "import os, signal; from gan3d.data.sources import _ignore_sigint; _ignore_sigint(); os.kill(os.getpid(), signal.SIGINT); print('alive')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "alive"


def test_ctrl_c_during_a_multi_process_prepare_is_one_line(shared_data, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "c.npz"
    src = shared_data / "3dshapenets-chair-30" / "volumetric_data"
    p = subprocess.Popen([sys.executable, "-m", "gan3d", "data", "prepare", str(src), "--out", str(out), "--resolution", "32"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.time() + 120
    while b"reading .mat" not in seen and time.time() < deadline and p.poll() is None:  # the pool is at work
        seen += os.read(p.stderr.fileno(), 4096)
    p.send_signal(signal.SIGINT)
    _, rest = p.communicate(timeout=120)
    err = (seen + rest).decode(errors="replace")
    if p.returncode == 0:
        pytest.skip("prepare finished before the signal")
    assert p.returncode == 130 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.strip() and "%|" not in line][-1].endswith("interrupted")
    assert not out.exists() and not any(tmp_path.iterdir())
