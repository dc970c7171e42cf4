"""ComfyUI nodes: RollingDepth inside a ComfyUI graph.

With rolldepth installed in ComfyUI's Python, one line in a file of ComfyUI's ``custom_nodes`` folder adds them::

    from rolldepth.apps.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

Three nodes: load a model (kept loaded between runs), estimate one consistent depth video from a batch of frames
(ComfyUI's ``IMAGE``: float [N, H, W, 3] in [0, 1], e.g. a loaded video's frames), and save that depth in the
formats ComfyUI's image nodes cannot write (16-bit PNG, float EXR, ``.npy``, the 16-bit lossless video). The depth
reaches the graph as a grey image and a mask, near white and far black (what depth ControlNets and video models'
control inputs take), one range for the whole batch so that a flicker in them is a flicker in the depth.

ComfyUI's own modules are used where they are importable (its progress bar and stop button, its device, its models
and output folders), so the nodes run, and are tested, without ComfyUI.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..method.snippets import PER_FRAME_KERNELS
from ..process.presets import PRESETS, resolve_settings, with_checkpoint_defaults

log = logging.getLogger("rolldepth")

CATEGORY = "RollingDepth"
COLORMAPS = ("Spectral_r", "Greys_r", "inferno", "magma", "viridis", "turbo")
MODELS_SUBFOLDER = "rollingdepth"  # ComfyUI/models/rollingdepth/<name>: checkpoint folders in diffusers layout


def _comfy(module: str):
    """One of ComfyUI's modules (``comfy.utils``, ``folder_paths``, ...), or None outside ComfyUI."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        return None


@dataclass
class DepthVideo:
    """What the estimate node hands the save node: the depth as the pipeline gives it, with its uncertainty."""

    depth: np.ndarray  # float32 [N, H, W] relative inverse depth, larger = nearer
    uncertainty: np.ndarray | None  # float32 [N, H, W], the snippets' spread in the depth's units


def model_folder(name: str) -> str | None:
    """The checkpoint a node's ``model`` text names: None (empty) for the embedded model, a folder as given, a folder
    in ComfyUI's ``models/rollingdepth/``, else the text itself (a hub id)."""
    name = name.strip()
    if not name:
        return None
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    folder_paths = _comfy("folder_paths")
    if folder_paths is not None:
        candidate = Path(folder_paths.models_dir) / MODELS_SUBFOLDER / name
        if candidate.is_dir():
            return str(candidate)
    return name


class LoadRollingDepth:
    """Load a RollingDepth/Marigold checkpoint once; the graph keeps it while its inputs stay the same."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("STRING", {"default": "", "tooltip": (
                "Empty: the small model embedded in rolldepth (a demonstration, trained on synthetic video only). "
                "Else a checkpoint folder, a folder name in ComfyUI's models/rollingdepth, or a hub id such as "
                "prs-eth/rollingdepth-v1-0.")}),
            "precision": (["auto", "fp16", "fp32"], {"default": "auto", "tooltip": (
                "auto: fp16 on a GPU, fp32 on the CPU (where fp16 is many times slower).")}),
            "device": (["auto", "cpu", "cuda", "mps"], {"default": "auto", "tooltip": "auto: ComfyUI's device."}),
        }}

    RETURN_TYPES = ("ROLLINGDEPTH_MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, model: str, precision: str, device: str):
        from ..model.loading import pick_device, pick_dtype
        from ..model.pipeline import RollingDepthPipeline

        management = _comfy("comfy.model_management")
        if device == "auto" and management is not None:
            chosen = management.get_torch_device()
        else:
            chosen = pick_device(device)
        dtype = pick_dtype("fp16" if precision == "auto" else precision, chosen, asked=precision != "auto")
        return (RollingDepthPipeline.from_pretrained(model_folder(model), dtype=dtype, device=chosen),)


class RollingDepthVideo:
    """Depth of a batch of frames as one video: snippets with cross-frame attention, co-aligned and merged."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("ROLLINGDEPTH_MODEL",),
                "images": ("IMAGE", {"tooltip": "The video's frames, in order (one image gets per-frame depth)."}),
                "preset": (list(PRESETS), {"default": "fast", "tooltip": (
                    "fast: dilations 1, 25; fast1024: the same at 1024 px; full: 1, 10, 25 at 1024 px with 10 "
                    "refinement steps; paper: the paper's setting. A model's recommended resolution and refinement "
                    "replace the preset's.")}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**63 - 1, "tooltip": (
                    "The one noise map shared by all frames.")}),
            },
            "optional": {
                "resolution": ("INT", {"default": -1, "min": -1, "max": 8192, "tooltip": (
                    "Longer side for inference: -1 the preset's (or the model's recommendation), 0 the frames' "
                    "own size.")}),
                "dilations": ("STRING", {"default": "", "tooltip": (
                    "Frame gaps of the rolling kernels, e.g. '1 10 25'; empty: the preset's.")}),
                "refine_steps": ("INT", {"default": -1, "min": -1, "max": 500, "tooltip": (
                    "Partial-diffusion refinement steps: -1 the preset's (or the model's recommendation), 0 none.")}),
                "coalign": (["preset", "objective", "official"], {"default": "preset", "tooltip": (
                    "How the snippets are put on one scale: objective, the minimum of the co-alignment loss (every "
                    "preset but paper); official, the official procedure's result (paper).")}),
                "output_size": (["input", "processing"], {"default": "input", "tooltip": (
                    "input: the depth resized to the frames' size (bilinear); processing: as the model made it.")}),
                "colormap": (list(COLORMAPS), {"default": "Spectral_r"}),
                "uncertainty": ("BOOLEAN", {"default": False, "tooltip": (
                    "Also measure how much the snippets disagree at every pixel (the uncertainty mask).")}),
            },
        }

    RETURN_TYPES = ("IMAGE", "MASK", "IMAGE", "MASK", "ROLLINGDEPTH_DEPTH")
    RETURN_NAMES = ("depth", "depth_mask", "colorized", "uncertainty", "raw_depth")
    FUNCTION = "estimate"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Relative inverse depth of the whole batch in one affine frame: near white, far black. "
                   "raw_depth keeps the float values for the save node.")

    def estimate(self, model, images, preset: str, seed: int, resolution: int = -1, dilations: str = "",
                 refine_steps: int = -1, coalign: str = "preset", output_size: str = "input",
                 colormap: str = "Spectral_r", uncertainty: bool = False):
        import torch

        from ..video.writers import colorize, get_colormap, uncertainty_scale, value_range

        get_colormap(colormap)  # a wrong name is refused before the model runs
        settings = resolve_settings(
            preset, res=None if resolution < 0 else resolution, dilations=parse_dilations(dilations),
            refine_steps=None if refine_steps < 0 else refine_steps, coalign=None if coalign == "preset" else coalign,
        )
        settings = with_checkpoint_defaults(settings, model.default_res, model.default_refine_steps)
        kernels = dict(dilations=settings.dilations, snippet_lengths=settings.snippet_lengths)
        if len(images) < max(settings.snippet_lengths):
            log.info("%d frame(s), fewer than a snippet holds: per-frame depth, without uncertainty", len(images))
            kernels, uncertainty = PER_FRAME_KERNELS, False
        out = model(
            frames_uint8(images), **kernels, cap_dilation=settings.cap_dilation, refine_steps=settings.refine_steps,
            refine_snippet_length=settings.refine_snippet_length, refine_start_dilation=settings.refine_start_dilation,
            coalign_mode=settings.coalign, processing_res=settings.res, restore_res=output_size == "input",
            generator=seed, output_uncertainty=uncertainty, progress=_progress_report(),
        )
        depth = np.asarray(out.depth, dtype=np.float32)
        lo, hi = value_range(depth)
        grey = torch.from_numpy((depth - lo) / (hi - lo if hi > lo else 1.0)).clamp_(0, 1)
        colours = torch.from_numpy(colorize(depth, colormap, lo, hi)).float() / 255
        spread = None if out.uncertainty is None else np.asarray(out.uncertainty, dtype=np.float32)
        if spread is None:
            mask = torch.zeros_like(grey)
        else:
            scale = uncertainty_scale(spread)
            mask = torch.from_numpy(spread / (scale if scale > 0 else 1.0)).clamp_(0, 1)
        return grey[..., None].expand(-1, -1, -1, 3), grey, colours, mask, DepthVideo(depth, spread)


class SaveRollingDepth:
    """Write the raw depth to ComfyUI's output folder as 16-bit PNGs, float EXRs, .npy or a 16-bit lossless video."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "raw_depth": ("ROLLINGDEPTH_DEPTH",),
            "filename_prefix": ("STRING", {"default": "rolldepth/depth", "tooltip": (
                "Names start with this, then a counter: depth_00001_png16/, depth_00001_pred.npy, ...; a "
                "folder part is made in the output folder.")}),
            "png16": ("BOOLEAN", {"default": True, "tooltip": "16-bit PNGs, with depth_range.json to decode them."}),
            "exr": ("BOOLEAN", {"default": False, "tooltip": "float32 OpenEXR, the exact values."}),
            "npy": ("BOOLEAN", {"default": True, "tooltip": "float32 [N, H, W] .npy, the exact values."}),
            "depth16_video": ("BOOLEAN", {"default": False, "tooltip": "The 16-bit PNGs' codes as one FFV1 video."}),
            "fps": ("FLOAT", {"default": 24.0, "min": 0.01, "max": 1000.0, "step": 0.001, "tooltip": (
                "Frame rate of the 16-bit video.")}),
        }}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"
    CATEGORY = CATEGORY

    def save(self, raw_depth: DepthVideo, filename_prefix: str, png16: bool, exr: bool, npy: bool,
             depth16_video: bool, fps: float):
        from ..video.writers import save_outputs, write_npy

        if not (png16 or exr or npy or depth16_video):
            raise UserError("choose at least one format to save")
        folder, stem = output_stem(filename_prefix)
        still = len(raw_depth.depth) == 1
        written = save_outputs(folder, stem, raw_depth.depth, None, Fraction(fps).limit_denominator(1001),
                               save_npy=npy, save_png=png16, save_exr=exr, save_depth16=depth16_video, cmaps=(),
                               save_sbs=False, still=still, uncertainty=raw_depth.uncertainty)  # its EXRs with exr
        if raw_depth.uncertainty is not None and npy:
            written["uncertainty"] = write_npy(folder / f"{stem}_uncertainty.npy", raw_depth.uncertainty)
        names = [str(path) for path in written.values()]
        log.info("rolldepth: saved %s", ", ".join(names))
        return {"ui": {"text": names}}


def frames_uint8(images, chunk: int = 16) -> np.ndarray:
    """ComfyUI's float frames ([N, H, W, C] in [0, 1]; values outside clipped) as uint8 RGB, rounded as
    :func:`~rolldepth.video.reading.as_rgb_frames` rounds them, ``chunk`` frames at a time: a float copy of a long
    batch would double the memory it already takes."""
    import torch

    images = torch.as_tensor(images)
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise UserError(f"images must be a batch [N, H, W, 3], got {list(images.shape)}")
    out = np.empty((*images.shape[:3], 3), dtype=np.uint8)
    for first in range(0, len(images), chunk):
        block = images[first : first + chunk, ..., :3].float().clamp(0, 1) * 255
        out[first : first + chunk] = block.round().to(torch.uint8).cpu().numpy()
    return out


def parse_dilations(text: str) -> tuple[int, ...] | None:
    """'1 10 25' or '1, 10, 25' -> (1, 10, 25); empty -> None (the preset's)."""
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if not parts:
        return None
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise UserError(f"dilations must be whole numbers such as '1 10 25', got {text!r}") from None


def output_stem(prefix: str) -> tuple[Path, str]:
    """The folder and the first free ``<name>_<counter>`` for ``prefix`` in ComfyUI's output folder (the working
    directory's ``output/`` outside ComfyUI); a prefix that leaves the output folder is refused."""
    folder_paths = _comfy("folder_paths")
    root = Path(folder_paths.get_output_directory() if folder_paths is not None else "output").resolve()
    target = (root / (prefix.strip() or "depth")).resolve()
    if target == root or root not in target.parents:
        raise UserError(f"filename_prefix {prefix!r} must name a file inside the output folder {root}")
    folder, name = target.parent, target.name
    folder.mkdir(parents=True, exist_ok=True)
    taken = {int(m.group(1)) for p in folder.iterdir() if (m := re.match(re.escape(name) + r"_(\d{5})_", p.name))}
    return folder, f"{name}_{max(taken, default=0) + 1:05d}"


def _progress_report():
    """ComfyUI's progress bar and stop button for the pipeline (its ``progress`` callback); tqdm bars outside it."""
    utils, management = _comfy("comfy.utils"), _comfy("comfy.model_management")
    if utils is None or management is None:
        return True
    bar = utils.ProgressBar(1)

    def report(what: str, done: int, total: int) -> None:
        management.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, max(total, 1))

    return report


NODE_CLASS_MAPPINGS = {
    "LoadRollingDepth": LoadRollingDepth,
    "RollingDepthVideo": RollingDepthVideo,
    "SaveRollingDepth": SaveRollingDepth,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadRollingDepth": "Load RollingDepth model",
    "RollingDepthVideo": "RollingDepth video depth",
    "SaveRollingDepth": "Save RollingDepth depth (16-bit, EXR, npy)",
}
