"""gan3d gallery: the page's content (no browser), bad input, and the page in headless Chromium."""

import base64
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("plotly", reason="the gallery needs plotly (pip install plotly)")

from gan3d.cli import main  # noqa: E402
from gan3d.errors import Gan3dError  # noqa: E402
from gan3d.gallery import build_gallery  # noqa: E402
from gan3d.io.meshing import blocky_mesh, smooth_mesh  # noqa: E402

R = 16


# --- fixtures: hand-made 16^3 shapes and the files the gallery reads ------------------------------


def shapes() -> np.ndarray:
    """Three bool (16, 16, 16) shapes: a chair (seat, four legs, back), a table, a box."""
    chair = np.zeros((R, R, R), bool)
    chair[4:12, 4:12, 6:8] = True  # seat
    for x, y in ((4, 4), (10, 4), (4, 10), (10, 10)):
        chair[x : x + 2, y : y + 2, 0:6] = True  # legs
    chair[4:12, 10:12, 8:15] = True  # back (at +y: the chair faces -y)
    table = np.zeros((R, R, R), bool)
    table[2:14, 3:13, 9:11] = True
    for x, y in ((2, 3), (12, 3), (2, 11), (12, 11)):
        table[x : x + 2, y : y + 2, 0:9] = True
    box = np.zeros((R, R, R), bool)
    box[5:11, 3:13, 0:7] = True
    return np.stack([chair, table, box])


STATS = [
    {"step": 2, "loss_d": 1.3, "loss_g": 0.7, "acc_real": 0.5, "acc_fake": 0.6, "d_acc": 0.55, "fake_occupancy": 0.2, "real_occupancy": 0.1},
    {"step": 4, "loss_d": 1.1, "loss_g": 0.9, "acc_real": 0.6, "acc_fake": 0.7, "d_acc": 0.65, "fake_occupancy": 0.15, "real_occupancy": 0.1, "eval_1nna_iou": 0.9},
    {"step": 6, "loss_d": 1.0, "loss_g": 1.2, "acc_real": 0.7, "acc_fake": 0.7, "d_acc": 0.7, "fake_occupancy": 0.12, "real_occupancy": 0.1, "eval_1nna_iou": 0.8},
]


def write_interpolation(d: Path, s: np.ndarray) -> None:
    np.savez(d / "interpolation.npz", frames=np.stack([s[0], s[0] | s[2], s[2]]), t=np.array([0.0, 0.5, 1.0]))
    (d / "interpolation.json").write_text(json.dumps({"seed_a": 0, "seed_b": 2, "steps": 3}))


def write_dimensions(d: Path, s: np.ndarray) -> None:
    changed = np.zeros((2, R, R, R), bool)
    changed[0, 4:12, 10:12, 12:15] = True  # the top of the chair's back
    changed[1, 12:15, 4:8, 6:8] = True  # voxels added beside the seat
    np.savez(d / "dimensions.npz", base=s[0], top=np.array([7, 31]), changed=changed)
    (d / "dimensions.json").write_text(json.dumps({"seed": 0, "delta": 2.0}))


def write_neurons(d: Path, s: np.ndarray) -> None:
    response = np.zeros((1, 2, R, R, R), np.float16)
    response[0, :, :, :, 8:] = 1.0  # the unit responds to the upper half
    np.savez(d / "neurons.npz", units=np.array([5]), top_shapes=s[None, :2], response=response)
    (d / "neurons.json").write_text(json.dumps({"layer": 2}))


WRITERS = {"interpolation": write_interpolation, "dimensions": write_dimensions, "neurons": write_neurons}


def output_folder(root: Path, analyses=tuple(WRITERS), stats=True, seeds=(0, 1, 2)) -> Path:
    """``root`` with samples/samples.npz (as `gan3d sample` writes it), stats.jsonl and the
    analysis files in analysis/ (all one folder below, which the gallery must search)."""
    s = shapes()
    (root / "samples").mkdir(parents=True)
    np.savez_compressed(root / "samples" / "samples.npz", grids=s, occupancy=s.astype(np.float16), seeds=np.array(seeds))
    if stats:
        (root / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in STATS))
    if analyses:
        (root / "analysis").mkdir()
        for name in analyses:
            WRITERS[name](root / "analysis", s)
    return root


# --- reading the page back ---------------------------------------------------------------------------


def read_page(path: Path) -> tuple[str, list[dict], dict[str, dict]]:
    """(html, panels [{kind, spec, caption}], {spec id: figure JSON})."""
    text = path.read_text()
    panels = [
        {"kind": m[0], "spec": m[1], "caption": m[2]}
        for m in re.findall(r'<figure class="panel" data-kind="([^"]+)"><div class="[^"]+" data-spec="([^"]+)"[^>]*></div>(?:<figcaption>([^<]*)</figcaption>)?', text)
    ]
    specs = {m[0]: json.loads(m[1]) for m in re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', text, re.S)}
    return text, panels, specs


DTYPES = {"u1": np.uint8, "u2": np.uint16, "u4": np.uint32, "i1": np.int8, "i2": np.int16, "i4": np.int32, "f4": np.float32, "f8": np.float64}


def arr(v) -> np.ndarray:
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=DTYPES[v["dtype"]])
    return np.asarray(v)


def trace_mesh(trace: dict) -> tuple[np.ndarray, np.ndarray]:
    """The page's Mesh3d trace back in voxel units: (vertices (V, 3), faces (F, 3))."""
    v = np.stack([arr(trace[a]).astype(np.float64) for a in "xyz"], 1)
    f = np.stack([arr(trace[a]).astype(np.int64) for a in "ijk"], 1)
    return (v - 1.0) / 2.0, f


def same_mesh(trace: dict, grid: np.ndarray, style: str = "smooth") -> None:
    v, f = trace_mesh(trace)
    ev, ef = (smooth_mesh if style == "smooth" else blocky_mesh)(grid)
    np.testing.assert_array_equal(f, ef)
    np.testing.assert_allclose(v, ev, atol=1e-6)


# --- the page's content ----------------------------------------------------------------------------


def test_page_holds_every_sample_the_curves_and_every_analysis(tmp_path):
    root = output_folder(tmp_path / "out", seeds=(4, 9, 11))
    summary = build_gallery(root)
    text, panels, specs = read_page(root / "gallery.html")
    assert summary["out"] == str(root / "gallery.html") and summary["bytes"] == len(text.encode())
    kinds = [p["kind"] for p in panels]
    # every sample is one 3D figure, captioned with its seed, holding that sample's mesh
    samples = [p for p in panels if p["kind"] == "sample"]
    assert [p["caption"] for p in samples] == ["seed 4", "seed 9", "seed 11"]
    for p, g in zip(samples, shapes()):
        (trace,) = specs[p["spec"]]["data"]
        assert trace["type"] == "mesh3d"
        same_mesh(trace, g)
    # the curves: one 2D chart per group with data, each line a stats.jsonl key
    curves = [specs[p["spec"]] for p in panels if p["kind"] == "curve"]
    titles = [c["layout"]["title"]["text"] for c in curves]
    assert titles == ["losses", "discriminator accuracy", "occupancy (fraction of voxels >= 0.5)", "evaluation (IoU distance)"]
    assert [t["name"] for t in curves[0]["data"]] == ["loss_d", "loss_g"]
    assert [list(arr(t["y"])) for t in curves[3]["data"]] == [[0.9, 0.8]]
    # analyses: the interpolation's frames, one panel per dimension (+ base), one per unit and top shape
    assert kinds.count("interpolation") == 1 and kinds.count("dimension-base") == 1
    assert kinds.count("dimension") == 2 and kinds.count("neuron") == 2
    assert summary["panels"] == {k: kinds.count(k) for k in set(kinds)}
    for sid in ('id="samples"', 'id="curves"', 'id="interpolation"', 'id="dimensions"', 'id="neurons"'):
        assert text.count(sid) == 1
    assert "seed_b" in text and "layer" in text  # the .json beside each .npz is shown
    # plotly.js is in the page once, and the page loads nothing from anywhere
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    assert text.count(js[:2000]) == 1 and len(text) < len(js) * 1.5
    assert not re.search(r"<script[^>]+src=|<link|@import|<iframe|<img", text, re.I)
    assert "http" not in text.replace(js, "")


@pytest.mark.parametrize("present", [(), ("interpolation",), ("dimensions", "neurons"), tuple(WRITERS)])
def test_analysis_sections_appear_exactly_when_their_files_exist(tmp_path, present):
    root = output_folder(tmp_path / "out", analyses=present, stats=False)
    summary = build_gallery(root, out=tmp_path / "page.html")
    text, panels, _ = read_page(tmp_path / "page.html")
    for name in WRITERS:
        assert (f'<section id="{name}">' in text) == (name in present), name
    assert summary["analyses"] == {name: int(name in present) for name in WRITERS}
    assert 'id="curves"' not in text
    assert [p["kind"] for p in panels].count("sample") == 3


def test_analysis_views_mark_what_the_files_say(tmp_path):
    root = output_folder(tmp_path / "out", stats=False)
    build_gallery(root)
    _, panels, specs = read_page(root / "gallery.html")
    s = shapes()
    by_kind = {}
    for p in panels:
        by_kind.setdefault(p["kind"], []).append(specs[p["spec"]])
    # interpolation: one animation frame per grid, the slider labelled by t
    (interp,) = by_kind["interpolation"]
    frames = [s[0], s[0] | s[2], s[2]]
    assert [f["name"] for f in interp["frames"]] == ["0", "1", "2"]
    for fr, g in zip(interp["frames"], frames):
        same_mesh(fr["data"][0], g)
    assert [st["label"] for st in interp["layout"]["sliders"][0]["steps"]] == ["0.00", "0.50", "1.00"]
    # dimensions: the changed voxels as red cubes, the rest of the base in grey
    changed = np.load(root / "analysis" / "dimensions.npz")["changed"]
    for fig, ch in zip(by_kind["dimension"], changed):
        grey, red = fig["data"]
        assert red["color"] == "#d62728" and grey["color"] == "#bdbdbd"
        same_mesh(red, ch, style="blocky")
        same_mesh(grey, s[0] & ~ch)
    # neurons: per-vertex intensity is 255 where the response is 1 (z >= 8), 0 well away from it
    for fig, g in zip(by_kind["neuron"], s[:2]):
        (trace,) = fig["data"]
        v, _ = trace_mesh(trace)
        inten = arr(trace["intensity"])
        assert len(inten) == len(v)
        assert (inten[v[:, 2] >= 8.5] == 255).all()  # vertices beside a responding voxel
        assert (inten[v[:, 2] <= 7.0] == 0).all()  # vertices whose voxels all lie below z = 8
        assert 0 < (inten == 255).mean() < 1


def test_neighbours_from_data(tmp_path):
    from gan3d.data.prepared import from_arrays, save

    s = shapes()
    train = np.stack([s[1], s[0], np.roll(s[2], 2, axis=0)])  # the chair is training shape 1, exactly
    save(from_arrays(np.concatenate([train, s[:1]]), split=["train"] * 3 + ["test"], source_id=["t0", "t1", "t2", "x"]), tmp_path / "d.npz")
    root = output_folder(tmp_path / "out", analyses=(), stats=False)
    summary = build_gallery(root, data=tmp_path / "d.npz", k=2)
    _, panels, specs = read_page(root / "gallery.html")
    assert summary["panels"] == {"sample": 3, "neighbour": 6}
    nb = [p for p in panels if p["kind"] == "neighbour"]
    assert nb[0]["caption"] == "IoU 1.00 · shape t1"  # the chair's own copy comes first
    same_mesh(specs[nb[0]["spec"]]["data"][0], s[0])
    assert nb[2]["caption"] == "IoU 1.00 · shape t0"  # the table's
    assert not any("· shape x" in p["caption"] for p in nb)  # test shapes are not candidates


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from gan3d.train.config import make_config
    from gan3d.train.loop import training_loop

    out = tmp_path_factory.mktemp("runs")
    cfg = make_config("tiny", data="builtin", out=str(out), builtin_count=32, steps=4, batch_size=8, log_every=2, n_preview=4, deterministic=True)
    return training_loop(cfg, progress=False, quiet=True).run_dir


def test_run_folder_samples_the_snapshot_like_gan3d_sample(run_dir, tmp_path):
    from gan3d.sampling import sample_to_dir

    summary = build_gallery(run_dir, out=tmp_path / "g.html", seeds=[3, 8])
    _, panels, specs = read_page(tmp_path / "g.html")
    samples = [p for p in panels if p["kind"] == "sample"]
    assert [p["caption"] for p in samples] == ["seed 3", "seed 8"]
    assert "curve" in summary["panels"]
    sample_to_dir(run_dir / "snapshot.pt", [3, 8], tmp_path / "s", formats=["npz"], picture=False)
    for p, g in zip(samples, np.load(tmp_path / "s" / "samples.npz")["grids"]):
        same_mesh(specs[p["spec"]]["data"][0], g)
    assert build_gallery(run_dir, out=tmp_path / "all.html")["n_samples"] == 16  # default seeds 0-15


def test_an_empty_sample_is_captioned_so(tmp_path):
    s = shapes()
    s[1] = False
    (tmp_path / "out").mkdir()
    np.savez(tmp_path / "out" / "samples.npz", grids=s, seeds=np.array([0, 1, 2]))
    build_gallery(tmp_path / "out")
    _, panels, specs = read_page(tmp_path / "out" / "gallery.html")
    assert [p["caption"] for p in panels] == ["seed 0", "seed 1 (empty)", "seed 2"]
    assert len(arr(specs[panels[1]["spec"]]["data"][0]["i"])) == 0


# --- bad input -------------------------------------------------------------------------------------


def _bad_dtype(root):
    np.savez(root / "samples.npz", grids=shapes().astype(np.float32), seeds=np.arange(3))


def _bad_t(root):
    write_interpolation(root, shapes())
    np.savez(root / "interpolation.npz", frames=shapes(), t=np.array([0.0, 1.0]))


@pytest.mark.parametrize(
    "setup, args, needle",
    [
        (None, [], "no such folder"),
        ("empty", [], "nothing to show"),
        ("full", ["--seeds", "3-1"], "--seeds"),
        ("full", ["--seeds", "0,7"], "seed(s) [7] are not in this file"),
        ("full", ["--neighbours", "0"], "--neighbours"),
        ("full", ["--data", "missing.npz"], "missing.npz"),
        (_bad_dtype, [], "dtype float32, expected bool"),
        (_bad_t, [], "3 frames but 2 values of t"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_page(tmp_path, capsys, setup, args, needle):
    root = tmp_path / "f"
    if setup == "full":
        output_folder(root, seeds=(0, 1, 2))
    elif setup is not None:
        root.mkdir()
        if callable(setup):
            setup(root)
    out = tmp_path / "page.html"
    assert main(["gallery", str(root), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gan3d gallery: error:") and needle in err, err
    assert not out.exists()


def test_a_failed_write_leaves_the_old_page(tmp_path, monkeypatch):
    root = output_folder(tmp_path / "out", analyses=(), stats=False)
    out = root / "gallery.html"
    out.write_text("old page")
    from gan3d.gallery import page

    def broken(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(page.Page, "html", broken)
    with pytest.raises(RuntimeError):
        build_gallery(root)
    assert out.read_text() == "old page"
    assert sorted(p.name for p in root.iterdir()) == ["gallery.html", "samples"]  # no temporary file left


def test_sources_are_searched_one_level_deep_only(tmp_path):
    from gan3d.gallery.sources import find_sources

    root = output_folder(tmp_path / "out", analyses=("neurons",), stats=False)
    deep = root / "a" / "b" / "c"  # two levels below a, three below root
    deep.mkdir(parents=True)
    write_dimensions(deep, shapes())
    src = find_sources(root)
    assert src.samples == root / "samples" / "samples.npz"
    assert src.analyses == {"interpolation": [], "dimensions": [], "neurons": [root / "analysis" / "neurons.npz"]}
    with pytest.raises(Gan3dError, match="nothing to show"):
        find_sources(root / "a")


# --- in the browser ----------------------------------------------------------------------------------
# Driven by selenium with Debian's chromedriver given by path, so selenium-manager never downloads a
# driver or a browser; selenium gives the console log by level and element geometry, which
# `chromium --screenshot` alone does not.

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
    "--disable-component-update --disable-sync --use-angle=swiftshader --enable-unsafe-swiftshader "
    "--window-size=1300,2800 --force-device-scale-factor=1"
).split()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"headless browser test skipped: {CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="headless browser test skipped: selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def states(driver) -> list[str]:
    return driver.execute_script("return Array.from(document.querySelectorAll('.gl')).map(e => e.dataset.state)")


def wait_for(driver, done, timeout=40.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if done(states(driver)):
            time.sleep(0.5)  # let the last frame reach the screen
            return
        time.sleep(0.25)
    raise AssertionError(f"3D panels did not finish drawing: {states(driver)}")


def screenshot(driver) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")).astype(np.int64)


COLOURS = {  # per panel kind: pixels of its mesh colour after shading
    "sample": lambda r, g, b: (r > g) & (g > b) & (r - b > 40),
    "interpolation": lambda r, g, b: (r > g) & (g > b) & (r - b > 40),
    "dimension": lambda r, g, b: (r - g > 60) & (abs(g - b) < 30),
    "neuron": lambda r, g, b: (r - g > 60) & (abs(g - b) < 30),
    "dimension-base": lambda r, g, b: (abs(r - g) < 12) & (abs(g - b) < 12) & (r > 60) & (r < 235),
}


def check_panels(driver, image):
    boxes = driver.execute_script(
        "return Array.from(document.querySelectorAll('figure.panel')).filter(f => f.querySelector('.gl')).map(f => {"
        "const r = f.querySelector('.gl').getBoundingClientRect();"
        "return [f.dataset.kind, Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height)]; })"
    )
    assert boxes
    for kind, x, y, w, h in boxes:
        crop = image[y : y + h, x : x + w]
        assert crop.shape[:2] == (h, w), f"{kind} panel not on the screenshot"
        r, g, b = crop[..., 0], crop[..., 1], crop[..., 2]
        assert crop.mean(axis=2).var() > 150, f"{kind} panel at {x},{y} is blank"
        assert COLOURS[kind](r, g, b).mean() > 0.004, f"{kind} panel at {x},{y} lacks its mesh colour"
    return boxes


def severe(driver) -> list[str]:
    logs = driver.get_log("browser")
    assert not [e for e in logs if "Too many active WebGL contexts" in e["message"]]
    return [e["message"] for e in logs if e["level"] == "SEVERE"]


def test_page_renders_every_3d_panel_offline(browser, tmp_path):
    root = output_folder(tmp_path / "out")
    build_gallery(root)
    browser.get((root / "gallery.html").as_uri())
    wait_for(browser, lambda st: st and all(s == "live" for s in st))
    assert severe(browser) == []
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in fetched if not u.startswith(("file:", "data:", "blob:"))] == []
    boxes = check_panels(browser, screenshot(browser))
    assert sorted(b[0] for b in boxes) == sorted(["sample"] * 3 + ["interpolation", "dimension-base"] + ["dimension"] * 2 + ["neuron"] * 2)
    assert browser.execute_script("return document.querySelectorAll('.flat .main-svg').length") >= 4  # the curves drew
    # the slider's animation moves to the last frame
    name = browser.execute_script(
        "const el = document.querySelector('[data-kind=interpolation] .gl');"
        "return Plotly.animate(el, ['2'], {frame: {duration: 0, redraw: true}, transition: {duration: 0}, mode: 'immediate'})"
        ".then(() => el.data[0].name);"
    )
    assert name == "t=1"


def test_more_panels_than_webgl_contexts_get_stills(browser, tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    s = np.concatenate([shapes(), shapes()[:1]])
    np.savez(root / "samples.npz", grids=s, seeds=np.arange(4))
    build_gallery(root, max_live=2)
    browser.get((root / "gallery.html").as_uri())
    wait_for(browser, lambda st: sorted(st) == ["live"] * 2 + ["picture"] * 2)
    assert severe(browser) == []
    check_panels(browser, screenshot(browser))  # stills show the shapes too
    from selenium.webdriver.common.action_chains import ActionChains

    still = browser.find_elements("css selector", '.gl[data-state="picture"]')[0]
    ActionChains(browser).move_to_element(still).perform()
    wait_for(browser, lambda st: still.get_attribute("data-state") == "live" and st.count("live") == 2 and st.count("picture") == 2)
    assert severe(browser) == []
