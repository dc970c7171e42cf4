"""The ComfyUI nodes, called as ComfyUI calls them (the function named by FUNCTION, with one keyword argument per
input), on the tiny checkpoint; ComfyUI's modules are stood in for where a node uses them."""

from __future__ import annotations

import inspect
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import pattern_frames
from rolldepth.apps import comfyui
from rolldepth.apps.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from rolldepth.errors import UserError
from rolldepth.method.snippets import PER_FRAME_KERNELS
from rolldepth.model.pipeline import RollingDepthPipeline


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint):
    return RollingDepthPipeline.from_pretrained(tiny_checkpoint)


def comfy_images(frames: np.ndarray) -> torch.Tensor:
    """Frames as ComfyUI's IMAGE: float32 [N, H, W, 3] in [0, 1]."""
    return torch.from_numpy(frames.astype(np.float32) / 255)


def estimate(pipe, frames, **inputs):
    node = NODE_CLASS_MAPPINGS["RollingDepthVideo"]()
    inputs = {"preset": "fast", "seed": 3, "resolution": 32, **inputs}
    with torch.inference_mode():  # as ComfyUI runs every node
        return getattr(node, node.FUNCTION)(model=pipe, images=comfy_images(frames), **inputs)


@pytest.fixture
def comfy(monkeypatch, tmp_path):
    """Stand-ins for ComfyUI's modules: a progress bar that records, a stop button pressed after ``stop_after``
    reports (None: never), and its models and output folders under tmp_path."""

    class Interrupted(Exception):
        pass

    state = types.SimpleNamespace(updates=[], stop_after=None, reports=0, Interrupted=Interrupted,
                                  output=tmp_path / "output", models=tmp_path / "models")

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None):
            state.updates.append((value, total))

    def throw_exception_if_processing_interrupted():
        state.reports += 1
        if state.stop_after is not None and state.reports > state.stop_after:
            raise Interrupted

    package = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    management = types.ModuleType("comfy.model_management")
    management.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    management.get_torch_device = lambda: torch.device("cpu")
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.models_dir = str(state.models)
    folder_paths.get_output_directory = lambda: str(state.output)
    for name, module in [("comfy", package), ("comfy.utils", utils), ("comfy.model_management", management),
                         ("folder_paths", folder_paths)]:
        monkeypatch.setitem(sys.modules, name, module)
    return state


def test_every_node_takes_what_its_inputs_declare_and_returns_what_it_names():
    """ComfyUI calls FUNCTION with one keyword per declared input and wires outputs by RETURN_TYPES' positions."""
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS)
    for name, node in NODE_CLASS_MAPPINGS.items():
        declared = node.INPUT_TYPES()
        assert set(declared) <= {"required", "optional"}, name
        parameters = inspect.signature(getattr(node, node.FUNCTION)).parameters
        for group, inputs in declared.items():
            for key, spec in inputs.items():
                assert key in parameters, (name, key)
                kind = spec[0]
                assert isinstance(kind, (str, list)), (name, key)
                if isinstance(kind, list) and len(spec) > 1 and "default" in spec[1]:
                    assert spec[1]["default"] in kind, (name, key)
                if group == "optional":
                    assert parameters[key].default is not inspect.Parameter.empty, (name, key)
        required = {k for k, p in parameters.items() if k != "self" and p.default is inspect.Parameter.empty}
        assert required <= set(declared["required"]), name
        assert len(getattr(node, "RETURN_NAMES", node.RETURN_TYPES)) == len(node.RETURN_TYPES)


def test_depth_is_the_pipelines_in_one_range_for_the_whole_batch(pipe):
    frames = pattern_frames(12, height=30, width=44)
    depth, mask, colours, spread, raw = estimate(pipe, frames, dilations="1 3", uncertainty=True)
    want = pipe(frames, dilations=(1, 3), processing_res=32, restore_res=True, generator=3, progress=False,
                output_uncertainty=True)
    np.testing.assert_array_equal(raw.depth, want.depth)
    np.testing.assert_array_equal(raw.uncertainty, want.uncertainty)
    d = want.depth.astype(np.float64)
    expected = (d - d.min()) / (d.max() - d.min())  # near (larger) white, one range over the batch
    assert depth.shape == (12, 30, 44, 3) and mask.shape == (12, 30, 44) and colours.shape == (12, 30, 44, 3)
    np.testing.assert_allclose(mask.numpy(), expected, atol=1e-6)
    for channel in range(3):
        np.testing.assert_array_equal(depth[..., channel].numpy(), mask.numpy())
    assert min(float(f.max()) for f in mask) < 1 and max(float(f.min()) for f in mask) > 0  # not per frame
    assert colours.dtype == torch.float32 and 0 <= float(colours.min()) and float(colours.max()) <= 1
    scale = np.quantile(want.uncertainty.astype(np.float64), 0.99)
    np.testing.assert_allclose(spread.numpy(), np.clip(want.uncertainty / scale, 0, 1), atol=1e-6)


def test_processing_size_and_a_single_image(pipe):
    frames = pattern_frames(6, height=30, width=44)
    depth, *_ = estimate(pipe, frames, output_size="processing", dilations="1")
    assert depth.shape == (6, 21, 32, 3)  # 44x30 at 32 px: sides floored, as the official code does
    *_, spread, raw = estimate(pipe, frames[:1], uncertainty=True)  # one frame: per-frame depth, no uncertainty
    want = pipe(frames[:1], **PER_FRAME_KERNELS, processing_res=32, restore_res=True, generator=3, progress=False)
    np.testing.assert_array_equal(raw.depth, want.depth)
    assert raw.uncertainty is None and not spread.any()


@pytest.mark.parametrize("inputs, message", [
    ({"dilations": "1 ten"}, "whole numbers"),
    ({"dilations": "10 25"}, "dilation 1"),
    ({"colormap": "nope"}, "colormap"),
])
def test_impossible_inputs_are_user_errors_before_any_work(pipe, monkeypatch, inputs, message):
    monkeypatch.setattr(RollingDepthPipeline, "run", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(UserError, match=message):
        estimate(pipe, pattern_frames(4), **inputs)


def test_progress_reaches_comfyuis_bar_and_its_stop_button_stops_the_run(pipe, comfy):
    frames = pattern_frames(12, height=30, width=44)
    estimate(pipe, frames, dilations="1 3")
    assert comfy.updates[0] == (0, 12) and (12, 12) in comfy.updates  # every frame encoded
    assert (10, 10) in comfy.updates and (6, 6) in comfy.updates  # every snippet of dilations 1 and 3
    comfy.stop_after, comfy.reports = 3, 0
    with pytest.raises(comfy.Interrupted):
        estimate(pipe, frames, dilations="1 3")
    assert comfy.reports == 4


def test_loader_finds_checkpoints_in_comfyuis_models_folder(comfy, tiny_checkpoint):
    loader = NODE_CLASS_MAPPINGS["LoadRollingDepth"]()
    (comfy.models / "rollingdepth").mkdir(parents=True)
    (comfy.models / "rollingdepth" / "tiny").symlink_to(tiny_checkpoint, target_is_directory=True)
    (pipe,) = getattr(loader, loader.FUNCTION)(model=" tiny ", precision="auto", device="auto")
    assert pipe.device.type == "cpu" and pipe.unet.dtype == torch.float32  # auto: fp32 on the CPU
    assert comfyui.model_folder(str(tiny_checkpoint)) == str(tiny_checkpoint)
    assert comfyui.model_folder("") is None  # the embedded model
    with pytest.raises(UserError):
        getattr(loader, loader.FUNCTION)(model=str(comfy.models / "missing" / "x"), precision="fp32", device="cpu")


def test_save_writes_the_exact_depth_numbered_like_comfyuis_own_saves(pipe, comfy):
    *_, raw = estimate(pipe, pattern_frames(6, height=30, width=44), uncertainty=True)
    saver = NODE_CLASS_MAPPINGS["SaveRollingDepth"]()
    inputs = dict(raw_depth=raw, filename_prefix="shots/clip", png16=True, exr=False, npy=True, depth16_video=False,
                  fps=25.0)
    first = getattr(saver, saver.FUNCTION)(**inputs)
    getattr(saver, saver.FUNCTION)(**inputs)
    folder = comfy.output / "shots"
    assert sorted(p.name for p in folder.iterdir()) == [
        "clip_00001_png16", "clip_00001_pred.npy", "clip_00001_uncertainty.npy",
        "clip_00002_png16", "clip_00002_pred.npy", "clip_00002_uncertainty.npy",
    ]
    assert str(folder / "clip_00001_pred.npy") in first["ui"]["text"]
    np.testing.assert_array_equal(np.load(folder / "clip_00001_pred.npy"), raw.depth)
    np.testing.assert_array_equal(np.load(folder / "clip_00001_uncertainty.npy"), raw.uncertainty)
    meta = json.loads((folder / "clip_00001_png16" / "depth_range.json").read_text())
    codes = np.stack([np.asarray(Image.open(p), dtype=np.float64)
                      for p in sorted((folder / "clip_00001_png16").glob("*.png"))])
    decoded = meta["vmin"] + codes / 65535 * (meta["vmax"] - meta["vmin"])
    np.testing.assert_allclose(decoded, raw.depth, atol=(meta["vmax"] - meta["vmin"]) / 65535)
    with pytest.raises(UserError, match="inside the output folder"):
        getattr(saver, saver.FUNCTION)(**{**inputs, "filename_prefix": "../outside"})
    with pytest.raises(UserError, match="at least one format"):
        getattr(saver, saver.FUNCTION)(**{**inputs, "png16": False, "npy": False})
    assert not (comfy.output.parent / "outside_00001_pred.npy").exists()


def test_the_readmes_custom_node_file_loads_as_comfyui_loads_one(tmp_path, monkeypatch):
    """ComfyUI imports each file of custom_nodes by its path and reads its NODE_CLASS_MAPPINGS."""
    import importlib.util

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    line = next(x.strip() for x in readme.splitlines() if x.strip().startswith("from rolldepth.apps.comfyui import"))
    node_file = tmp_path / "custom_nodes" / "rolldepth_nodes.py"
    node_file.parent.mkdir()
    node_file.write_text(line + "\n")
    spec = importlib.util.spec_from_file_location("rolldepth_nodes", node_file)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "rolldepth_nodes", module)
    spec.loader.exec_module(module)
    assert module.NODE_CLASS_MAPPINGS is NODE_CLASS_MAPPINGS
    assert set(module.NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS)


def test_frames_are_rounded_as_the_pipeline_rounds_them_a_few_at_a_time():
    from rolldepth.video.reading import as_rgb_frames

    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.uniform(-0.1, 1.1, size=(7, 5, 6, 4)).astype(np.float32))  # RGBA, out of range
    got = comfyui.frames_uint8(images, chunk=3)
    np.testing.assert_array_equal(got, as_rgb_frames(images[..., :3].clamp(0, 1)))
    with pytest.raises(UserError, match=r"\[N, H, W, 3\]"):
        comfyui.frames_uint8(torch.zeros(5, 6, 3))
