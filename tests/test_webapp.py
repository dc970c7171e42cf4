"""The web page: the request function on its own, then the real page driven in headless Chromium.

The browser tests start the app on a free localhost port and load Debian's /usr/bin/chromium through Playwright
(Playwright never downloads a browser here); every request the page makes to anything but that port is aborted.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import damage, encode_video, pattern_frames
from rolldepth.apps.cli import main
from rolldepth.model.loading import load_pipeline
from rolldepth.errors import UserError
from rolldepth.apps.web import STAGES, PipelineCache, prune_old, run_request, stage_fraction
from rolldepth.video.writers import colorize, read_depth16

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])])


def exr_zip_depth(data: bytes) -> np.ndarray:
    """Frames of a zip of EXRs, in name order, read with OpenEXR from files unpacked on disk."""
    import OpenEXR

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".exr"))
        archive.extractall(tmp, names)
        frames = []
        for name in names:
            with OpenEXR.File(str(Path(tmp) / name)) as image:
                frames.append(image.channels()["Y"].pixels.copy())
    return np.stack(frames)


def png_zip_depth(data: bytes) -> np.ndarray:
    """Depth back from the zip of 16-bit PNGs and its depth_range.json, as a user of the download would."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".png"))
        rng = json.loads(archive.read(next(n for n in archive.namelist() if n.endswith("depth_range.json"))))
        pngs = np.stack([np.asarray(Image.open(io.BytesIO(archive.read(n)))) for n in names])
    assert pngs.dtype == np.uint16
    return pngs / 65535 * (rng["vmax"] - rng["vmin"]) + rng["vmin"], (rng["vmax"] - rng["vmin"]) / 65535


class CountingLoader:
    def __init__(self):
        self.calls = []

    def __call__(self, model, dtype_name, device):
        self.calls.append((model, dtype_name, device))
        return load_pipeline(model, dtype_name, device)


# ------------------------------------------------------------------------------------------------------------------
def test_request_writes_every_output_and_loads_the_model_once(tmp_path, tiny_checkpoint):
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(8))
    loader = CountingLoader()
    cache = PipelineCache(str(tiny_checkpoint), "cpu", loader=loader)
    stages = []
    result = run_request(cache, str(video), "fast", "32", "", "Greys_r", tmp_path / "work", stages.append)

    depth = np.load(result.npy)
    n, height, width = depth.shape
    assert n == 8 and max(height, width) == 32 and abs(height - 36 * 32 / 52) <= 1  # aspect kept, long side 32
    back, step = png_zip_depth(result.png_zip.read_bytes())
    assert back.shape == depth.shape
    np.testing.assert_allclose(back, depth, atol=step)
    np.testing.assert_array_equal(exr_zip_depth(result.exr_zip.read_bytes()), depth)  # float32, bit for bit
    even = (height + height % 2, width + width % 2)
    grey = decode(result.depth_video)
    assert grey.shape == (8, *even, 3)
    near = np.unravel_index(depth[3].argmax(), depth[3].shape)
    far = np.unravel_index(depth[3].argmin(), depth[3].shape)
    assert grey[3][near].mean() > grey[3][far].mean()  # the chosen colormap (Greys_r: nearer is brighter) was used
    assert decode(result.sbs_video).shape[:3] == (8, even[0], 2 * even[1])
    assert decode(result.stereo).shape[:3] == (8, 36, 2 * 52)  # at the input's size: 52x36
    assert np.load(result.uncertainty).shape == depth.shape
    np.testing.assert_allclose(read_depth16(result.depth16)[0], depth, atol=step)  # the PNGs' codes
    assert decode(result.uncertainty_video).shape[:3] == (8, *even)
    assert result.folder.parent == tmp_path / "work" and result.n_frames == 8 and "8 frames" in result.summary()
    assert stages[0] == "loading the model" and stages[-1] == "packing downloads"
    assert [s for s in stages if s in STAGES] == list(STAGES)

    again = run_request(cache, str(video), "full", "24", "0", "Spectral_r", tmp_path / "work")
    assert np.load(again.npy).shape[2] == 24  # the options of this request, not the last one's
    assert again.folder != result.folder and result.npy.exists()  # each request has its own folder
    assert cache.get("fp32") is cache.get("fp16")  # on the CPU every preset runs fp32: one pipeline serves all
    assert len(loader.calls) == 1


def test_request_on_a_video_with_cuts_reports_its_shots_and_strip(tmp_path, tiny_checkpoint):
    from test_shots import three_shots

    video = encode_video(tmp_path / "cuts.mp4", three_shots())
    cache = PipelineCache(str(tiny_checkpoint), "cpu")
    result = run_request(cache, str(video), "fast", "26", "", "Greys_r", tmp_path / "work")
    assert result.shots == [(0, 20), (20, 38), (38, 60)]
    assert "3 shots (frames 0-19, 20-37, 38-59)" in result.summary()
    strip = result.shot_strip("Greys_r")
    depth = np.load(result.npy)
    assert [caption for _, caption in strip] == ["shot 1: frames 0-19", "shot 2: frames 20-37", "shot 3: frames 38-59"]
    for (image, _), first in zip(strip, (0, 20, 38)):
        assert image.shape == (*depth.shape[1:], 3) and image.dtype == np.uint8
        near = np.unravel_index(depth[first].argmax(), depth[first].shape)
        far = np.unravel_index(depth[first].argmin(), depth[first].shape)
        assert image[near].mean() > image[far].mean()  # Greys_r: nearer is brighter


def test_request_tells_the_page_what_the_log_warned_of(tmp_path, tiny_checkpoint):
    """A damaged upload still gets depth; the page's summary says which frame was stood in for, by the file's name
    (the server's upload path means nothing at the browser), as the command line's log does."""
    intact = encode_video(tmp_path / "intact.mp4", pattern_frames(8))
    (tmp_path / "upload").mkdir()
    upload = damage(intact, [3], tmp_path / "upload" / "clip.mp4")
    result = run_request(PipelineCache(str(tiny_checkpoint), "cpu"), str(upload), "fast", "26", "", "Greys_r",
                         tmp_path / "work")
    assert result.n_frames == 8
    summary = result.summary()
    assert "Note: clip.mp4: frame" in summary and "could not be decoded (damaged data)" in summary
    assert str(tmp_path) not in summary
    clean = run_request(PipelineCache(str(tiny_checkpoint), "cpu"), str(intact), "fast", "26", "", "Greys_r",
                        tmp_path / "work")
    assert clean.notes == [] and "Note" not in clean.summary()


def test_request_on_a_photo_gives_per_frame_depth_and_png_views(tmp_path, tiny_checkpoint):
    """A photo: one frame of depth, PNG views instead of videos, the CLI's outputs for that photo."""
    photo = tmp_path / "IMG_0042.png"
    Image.fromarray(pattern_frames(1)[0]).save(photo)
    cache = PipelineCache(str(tiny_checkpoint), "cpu")
    stages = []
    result = run_request(cache, str(photo), "fast", "32", "", "Greys_r", tmp_path / "work", stages.append)
    assert "finding shots" not in stages  # one frame has no cut to look for
    depth = np.load(result.npy)
    assert result.still and depth.shape[0] == 1 and result.summary().startswith("Done: the photo in")
    assert result.uncertainty is None and result.notes == []  # a photo has no snippets to disagree: not asked for
    assert result.depth16 is None and result.uncertainty_video is None  # its 16-bit PNG holds the values
    assert (result.depth_video.name, result.sbs_video.name) == ("IMG_0042_Greys_r.png", "IMG_0042_rgbd.png")
    np.testing.assert_array_equal(np.asarray(Image.open(result.depth_video)), colorize(depth, "Greys_r")[0])
    assert np.asarray(Image.open(result.sbs_video)).shape == (depth.shape[1], 2 * depth.shape[2], 3)
    assert main(["-q", "run", str(photo), "-o", str(tmp_path / "cli"), "--model", str(tiny_checkpoint),
                 "--res", "32", "--cmap", "Greys_r"]) == 0
    np.testing.assert_array_equal(depth, np.load(tmp_path / "cli" / "IMG_0042_pred.npy"))
    assert png_zip_depth(result.png_zip.read_bytes())[0].shape == depth.shape


@pytest.mark.parametrize(
    "frames, preset, res, refine, message",
    [
        (1, "fast", "", "", "at least 3 frames"),
        ("junk", "fast", "", "", "cannot read junk.mp4"),
        (None, "fast", "", "", "upload a video or a photo first"),
        (8, "fast", "big", "", "resolution must be a whole number"),
        (8, "fast", "-5", "", "--res must be >= 0"),
        (8, "fast", "", "1000", "--refine-steps must be between 0 and 500"),
        (8, "nosuch", "", "", "unknown preset"),
    ],
)
def test_request_user_errors_before_the_model_loads(tmp_path, frames, preset, res, refine, message):
    video = None
    if frames == "junk":
        video = tmp_path / "junk.mp4"
        video.write_bytes(b"not a video at all" * 20)
    elif frames is not None:
        video = encode_video(tmp_path / "clip.mp4", pattern_frames(frames))
    loader = CountingLoader()
    with pytest.raises(UserError, match=message) as info:
        run_request(PipelineCache("unused", "cpu", loader=loader), video, preset, res, refine, "Spectral_r",
                    tmp_path / "work")
    assert str(tmp_path) not in str(info.value)  # the server's upload folder is not shown to the user
    assert loader.calls == []


def test_stage_fraction_and_prune(tmp_path):
    assert stage_fraction("loading the model", 0.5) == 0
    assert stage_fraction(STAGES[1], 0) == pytest.approx(2 / (len(STAGES) + 2))
    assert stage_fraction("decoding chunk 3", 0.4) == 0.4  # a stage the page does not know keeps the bar still
    old, new = tmp_path / "request-old", tmp_path / "request-new"
    old.mkdir(), new.mkdir()
    (old / "clip_pred.npy").write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    prune_old(tmp_path, keep_seconds=3600)
    assert not old.exists() and new.exists()


def test_web_without_gradio_says_how_to_install(monkeypatch, capsys, tiny_checkpoint):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` fail as if it were not installed
    assert main(["web", "--model", str(tiny_checkpoint)]) == 2
    assert "pip install 'rolldepth[web]'" in capsys.readouterr().err


def test_web_refuses_a_wrong_model_folder_or_port_before_serving(tmp_path, capsys, monkeypatch):
    """It used to serve the page and fail at the first upload; gradio is not even imported now."""
    monkeypatch.setitem(sys.modules, "gradio", None)  # the checks come before the import: no install message
    assert main(["web", "--model", str(tmp_path)]) == 2
    assert f"'{tmp_path}' is not a RollingDepth/Marigold checkpoint: missing unet/" in capsys.readouterr().err
    assert main(["web", "--port", "0"]) == 2
    assert "--port must be between 1 and 65535, got 0" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium; setup.sh installs it)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    from rolldepth.apps.web import build_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        app = build_app(str(tiny_checkpoint), "cpu", work_root=tmp_path_factory.mktemp("requests"))
        port = free_port()
        app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            app.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    outside = []

    def local_only(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.goto(server)
    page.locator("#run").wait_for()
    yield page
    context.close()
    assert outside == []  # the page needs nothing from outside this machine


def choose(page, box: str, option: str) -> None:
    """Pick an option of a Gradio dropdown; a busy page can re-render and close a list it just opened, so reopen."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    item = page.get_by_role("option", name=option, exact=True)
    for _ in range(10):
        page.get_by_role("combobox", name=box).click()
        try:
            item.click(timeout=5_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"the {box} dropdown never offered {option!r}")


def upload_and_run(page, video: Path, res: str) -> None:
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    page.locator("#video-input video").wait_for(timeout=30_000)  # the upload is done; the page stops re-rendering
    choose(page, "Preset", "fast")
    assert page.get_by_role("combobox", name="Preset").input_value() == "fast"
    page.locator("#res input, #res textarea").first.fill(res)
    page.locator("#run").click()


@needs_chromium
def test_page_runs_a_video_and_offers_the_outputs(page, tmp_path):
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(8))
    upload_and_run(page, video, "32")
    depth_video = page.locator("#depth-video video")
    page.locator("#depth-video video[src]").wait_for(timeout=30_000)
    assert page.locator("#sbs-video video").get_attribute("src")
    page.wait_for_function("document.querySelector('#depth-video video').readyState >= 1", timeout=10_000)
    shown = depth_video.evaluate("v => [v.videoWidth, v.videoHeight]")  # Chromium decoded the mp4's header
    assert "Done: 8 frames" in page.locator("#status").inner_text()

    links = page.locator("#downloads a[download]")
    assert sorted(links.evaluate_all("els => els.map(e => e.getAttribute('download'))")) == [
        "clip_depth16.mkv", "clip_exr.zip", "clip_png16.zip", "clip_pred.npy", "clip_stereo_sbs.mp4",
        "clip_uncertainty.npy", "clip_uncertainty_inferno.mp4"]
    with page.expect_download() as download:
        page.locator("#downloads a[download='clip_pred.npy']").click()
    depth = np.load(download.value.path())
    assert depth.shape[0] == 8 and depth.dtype == np.float32
    assert shown == [depth.shape[2] + depth.shape[2] % 2, depth.shape[1] + depth.shape[1] % 2]
    zipped = page.request.get(page.locator("#downloads a[download='clip_png16.zip']").get_attribute("href"))
    back, step = png_zip_depth(zipped.body())
    np.testing.assert_allclose(back, depth, atol=step)


@needs_chromium
def test_page_shows_a_user_error_not_a_traceback(page, tmp_path):
    video = encode_video(tmp_path / "one.mp4", pattern_frames(1))
    upload_and_run(page, video, "32")
    error = page.get_by_text("one.mp4: snippets of 3 frames need at least 3 frames, the video has 1")
    error.wait_for(timeout=15_000)
    assert "Traceback" not in page.content()
    assert page.locator("#depth-video video").count() == 0


@needs_chromium
def test_page_runs_a_photo_in_its_tab(page, tmp_path):
    page.get_by_role("tab", name="Photo").click()
    page.locator("#run").click()
    page.get_by_text("upload a photo first").wait_for(timeout=15_000)  # not the video tab's upload
    photo = tmp_path / "IMG_0042.png"
    Image.fromarray(pattern_frames(1)[0]).save(photo)
    page.locator("#photo-input input[type=file]").set_input_files(str(photo))
    page.locator("#photo-input img").wait_for(timeout=30_000)
    page.locator("#res input, #res textarea").first.fill("32")
    page.locator("#run").click()
    page.locator("#depth-image img[src]").wait_for(timeout=30_000)
    assert page.locator("#sbs-image img").get_attribute("src")
    assert not page.locator("#depth-video").is_visible()
    assert "Done: the photo in" in page.locator("#status").inner_text()

    links = page.locator("#downloads a[download]")
    assert sorted(links.evaluate_all("els => els.map(e => e.getAttribute('download'))")) == [
        "IMG_0042_exr.zip", "IMG_0042_png16.zip", "IMG_0042_pred.npy", "IMG_0042_stereo_sbs.png"]
    npy = page.request.get(page.locator("#downloads a[download='IMG_0042_pred.npy']").get_attribute("href"))
    depth = np.load(io.BytesIO(npy.body()))
    shown = page.request.get(page.locator("#depth-image img").get_attribute("src"))
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(shown.body())).convert("RGB")),
                                  colorize(depth, "Spectral_r")[0])  # the page shows the depth written, lossless

    page.get_by_role("tab", name="Video").click()  # the video tab shows its own outputs again
    page.locator("#depth-video").wait_for(state="visible", timeout=10_000)
    assert not page.locator("#depth-image").is_visible()
