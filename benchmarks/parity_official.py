"""Parity check: the official RollingDepth code and rolldepth, stage by stage, on one tiny random checkpoint.

Both pipelines load the same tiny random-init checkpoint (:func:`rolldepth.model.checkpoint.write_tiny_checkpoint`: the
SD layout, an 8-channel UNet, a v-prediction DDIM scheduler), see the same preprocessed frames and the same noise
map (one ``torch.randn`` draw of ``[4, h, w]`` from a CPU generator seeded with ``--seed``, shared by all frames on
both sides), and run in float32 on the CPU. The official code runs in a subprocess of its own interpreter, with
its vendored diffusers fork (cross-frame attention via ``num_view``) first on ``sys.path``; it writes its arrays to
an ``.npz`` that is compared with ours. Printed per stage: max absolute difference and max relative difference
(max abs difference / max abs official value):

0. inputs: our frame normalisation (``x / 127.5 - 1``) vs the official one (``x / 255 * 2 - 1``), and the
   empty-prompt embedding; the official side is fed OUR preprocessed frames, so the rest starts from equal inputs;
1. RGB latents (VAE posterior means, scaled);
2. snippet predictions (one step at t=999), per dilation group, and the capped dilations / snippet indices;
3. co-aligned merge: ours with ``coalign_mode="official"`` (a direct solver of the fixed point the official Adam
   converges to) vs the official 2000-step Adam ``DepthAligner``. Also the per-snippet scales and shifts divided by
   the mean scale (a common factor on all ``(s, t)`` cancels in the renormalised merge and is nearly free in the
   loss, so the two solvers may settle at different mean scales), the official loss at either end point, and our
   replica of the Adam procedure (:func:`rolldepth.method.coalign.adam_coalign`) on our snippets, which shows how far
   two Adam runs on near-identical inputs land apart (Adam's steps of ``lr`` = 1e-3 keep it jittering at that level);
4. refinement (``--refine-steps`` partial-diffusion steps from t=499) of the co-aligned video, end to end, and our
   refinement started from the official co-aligned video (the refinement code alone).

Targets: snippets <= 1e-4 relative, final depth <= 1e-3 relative (float32).

Usage
-----
Once, the official code (checked at commit c233765) and an interpreter for it. Its ``requirements.txt`` asks for
torch 2.4.1 + xformers + torchvision; only what the code path below needs is installed, without torch: our
torch comes from our virtualenv through a ``.pth`` file, and transformers 4.x / huggingface_hub 0.x replace the
5.x / 2.x of our environment (the fork, diffusers 0.30, does not import with transformers 5)::

    git clone https://github.com/prs-eth/RollingDepth /work/official-rd
    python -m venv /work/official-venv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /work/official-venv/lib/python3.11/site-packages/rd.pth
    /work/official-venv/bin/pip install --no-deps einops==0.8.1 transformers==4.46.3 tokenizers==0.20.3 \\
        huggingface_hub==0.26.5

Then, from the repository root with our environment (about a minute on one CPU core)::

    OMP_NUM_THREADS=1 python benchmarks/parity_official.py --official /work/official-rd \\
        --official-python /work/official-venv/bin/python

The figures are also written to ``benchmarks/results/parity_official.txt`` (``--out``).

Notes
-----
Adapters on the official side, none of which changes its computation: ``torchvision`` is replaced by a stub
(only its video loading and ``restore_res`` resizing use it, and neither runs here), the tokenizer is given to it
as a slow ``CLIPTokenizer`` built from the checkpoint's ``tokenizer.json`` vocabulary (transformers 4 cannot read
a fast-only tokenizer folder as ``CLIPTokenizer``), and the text encoder's weights, saved by transformers 5 without
the ``text_model.`` prefix, are loaded with that prefix added. The official ``forward`` is called directly with
the frame tensor, so its own video decoding and resizing are not part of the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------------
# Official side (runs in the subprocess, never imports rolldepth)
# ---------------------------------------------------------------------------------------------------------------
def _stub_torchvision() -> None:
    """Stand-in for ``torchvision``, imported by the official pipeline module for video loading and
    ``restore_res`` only. Installed after diffusers and transformers were imported: both probe for torchvision
    with ``find_spec``, and must see it missing."""
    import enum
    import types

    def resize(*_, **__):
        raise NotImplementedError("torchvision stub: resizing is not part of the parity check")

    tv, transforms, functional = (types.ModuleType(n) for n in
                                  ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"))
    transforms.InterpolationMode = enum.Enum("InterpolationMode", "NEAREST BILINEAR BICUBIC")
    functional.resize = resize
    tv.transforms, transforms.functional = transforms, functional
    sys.modules.update({m.__name__: m for m in (tv, transforms, functional)})


def _official_text_parts(checkpoint: Path):
    """The checkpoint's tokenizer and text encoder in the form transformers 4 expects (see the module notes)."""
    import torch
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    spec = json.loads((checkpoint / "tokenizer" / "tokenizer.json").read_text())
    folder = Path(tempfile.mkdtemp())
    (folder / "vocab.json").write_text(json.dumps(spec["model"]["vocab"]))
    merges = [" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]]
    (folder / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n")
    max_length = json.loads((checkpoint / "tokenizer" / "tokenizer_config.json").read_text())["model_max_length"]
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length)

    text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(checkpoint / "text_encoder"))
    weights = load_file(checkpoint / "text_encoder" / "model.safetensors")
    weights = {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in weights.items()}
    missing, unexpected = text_encoder.load_state_dict(weights, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise RuntimeError(f"text encoder weights do not fit: missing {missing}, unexpected {unexpected}")
    return tokenizer, text_encoder.to(torch.float32).eval()


def official_worker(official: Path, inputs_path: Path, out_path: Path) -> None:
    """Run the official pipeline on the inputs of ``inputs_path`` and save every stage to ``out_path``."""
    sys.path[:0] = [str(official / "diffusers" / "src"), str(official)]
    import diffusers  # noqa: F401  (the fork; before the torchvision stub)
    import torch
    import transformers  # noqa: F401

    _stub_torchvision()
    import rollingdepth.rollingdepth_pipeline as official_pipeline
    from rollingdepth import RollingDepthPipeline

    torch.set_num_threads(1)
    inputs = np.load(inputs_path)
    checkpoint = Path(str(inputs["checkpoint"]))
    tokenizer, text_encoder = _official_text_parts(checkpoint)
    pipe = RollingDepthPipeline.from_pretrained(
        checkpoint, tokenizer=tokenizer, text_encoder=text_encoder, torch_dtype=torch.float32
    )
    pipe.set_progress_bar_config(disable=True)

    # Keep what forward() computes but does not return: the RGB latents (first encode_rgb call) and the alignment.
    kept: dict = {}
    encode_rgb = pipe.encode_rgb

    def keep_latents(*args, **kwargs):
        latents = encode_rgb(*args, **kwargs)
        kept.setdefault("latents", latents)
        return latents

    pipe.encode_rgb = keep_latents
    aligner_run = official_pipeline.DepthAligner.run

    def keep_alignment(self, *args, **kwargs):
        result = aligner_run(self, *args, **kwargs)
        kept["scales"], kept["shifts"] = result[1], result[2]
        return result

    official_pipeline.DepthAligner.run = keep_alignment

    def forward(refine_step: int):
        kept.clear()
        dilations = [int(d) for d in inputs["dilations"]]  # capped in place by forward()
        out = pipe.forward(
            input_frames=torch.from_numpy(inputs["frames"])[None], dilations=dilations, cap_dilation=True,
            snippet_lengths=[int(inputs["snippet_len"])], init_infer_steps=[1], strides=[1], coalign_kwargs=None,
            refine_step=refine_step, refine_snippet_len=int(inputs["snippet_len"]),
            refine_start_dilation=int(inputs["refine_start_dilation"]),
            generator=torch.Generator().manual_seed(int(inputs["seed"])), verbose=False, max_vae_bs=4,
            unload_snippet=False,
        )
        return out, dilations

    refine_error = ""
    try:
        out, dilations = forward(int(inputs["refine_steps"]))
    except Exception as exc:  # report the stage as not compared, keep the others
        refine_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        out, dilations = forward(0)

    n_frames, length = inputs["frames"].shape[0], int(inputs["snippet_len"])
    arrays = {
        "empty_embedding": pipe.empty_text_embed.detach().numpy(),  # set by forward()
        "latents": kept["latents"][0].numpy(),
        "coaligned": out.depth_coaligned[:, 0].numpy(),
        "depth": out.depth_pred[:, 0].numpy(),
        "dilations": np.array(dilations),
        "refine_error": np.array(refine_error),
    }
    for g, (snippets, d) in enumerate(zip(out.snippet_ls, dilations)):
        arrays[f"snippets{g}"] = snippets[:, :, 0].numpy()
        arrays[f"indices{g}"] = np.array(pipe.get_snippet_indice(0, torch.zeros(1), n_frames, length, d, d, 1))
        arrays[f"scales{g}"] = kept["scales"][g].detach().reshape(-1).numpy()
        arrays[f"shifts{g}"] = kept["shifts"][g].detach().reshape(-1).numpy()
    np.savez(out_path, **arrays)


# ---------------------------------------------------------------------------------------------------------------
# Our side and the comparison
# ---------------------------------------------------------------------------------------------------------------
def moving_pattern(n_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 [N, H, W, 3]: a gradient with a textured block moving across it (every stage has work to do)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for i in range(n_frames):
        image = np.stack([xx * 2 + 3 * i, yy * 3, 128 + 40 * np.sin(xx / 7.0 + i / 3.0)], axis=-1)
        x0 = (5 * i) % (width - 24)
        image[16:40, x0 : x0 + 24] = rng.uniform(0, 255, size=(24, 24, 3))
        frames[i] = image.clip(0, 255).astype(np.uint8)
    return frames


def ours(checkpoint: Path, frames: np.ndarray, args) -> dict:
    """Our pipeline on the same checkpoint and frames; also the Adam replica on our snippets (diagnostic)."""
    import torch

    from rolldepth import RollingDepthPipeline
    from rolldepth.method.coalign import adam_coalign, subsample
    from rolldepth.method.merge import global_min, merge_frames, renormalise

    torch.set_num_threads(1)
    pipe = RollingDepthPipeline.from_pretrained(checkpoint)
    kept = {}
    encode_frames = pipe.encode_frames

    def keep_latents(source, res, out, **kwargs):  # the latents array the pipeline fills
        kept["latents"] = out
        return encode_frames(source, res, out, **kwargs)

    pipe.encode_frames = keep_latents
    result = pipe(
        frames, dilations=args.dilations, snippet_lengths=(args.snippet_len,), cap_dilation=True,
        refine_steps=args.refine_steps, refine_snippet_length=args.snippet_len,
        refine_start_dilation=args.refine_start_dilation, coalign_mode="official", processing_res=args.res,
        generator=args.seed, return_snippets=True, progress=False, batch_size=4, vae_batch_size=4,
    )
    offset = global_min(result.snippets)
    adam = adam_coalign([subsample(s - offset) for s in result.snippets], result.groups, len(frames))
    adam_merged = renormalise(merge_frames(result.snippets, result.groups, len(frames), adam.scales, adam.shifts,
                                           offset))
    return dict(pipe=pipe, result=result, latents=np.asarray(kept["latents"]), adam=adam, adam_merged=adam_merged,
                empty_embedding=pipe.empty_embedding.float().numpy())


def diff(mine, theirs, scale: float | None = None) -> tuple[float, float]:
    """(max |mine - theirs|, that / ``scale``), ``scale`` by default max |theirs|."""
    mine, theirs = np.asarray(mine, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if mine.shape != theirs.shape:
        raise ValueError(f"shape mismatch: ours {mine.shape}, official {theirs.shape}")
    worst = float(np.max(np.abs(mine - theirs)))
    scale = float(np.max(np.abs(theirs))) if scale is None else scale
    return worst, worst / max(scale, 1e-30)


def relative_alignment(scales, shifts) -> tuple[np.ndarray, np.ndarray]:
    """All groups' scales and shifts divided by the mean scale (the part of the alignment the merge depends on)."""
    s, t = np.concatenate([np.ravel(a) for a in scales]), np.concatenate([np.ravel(a) for a in shifts])
    return s / s.mean(), t / s.mean()


def objective(snippets, groups, scales, shifts) -> float:
    """The official co-alignment loss (float64) of an alignment of the given snippets, as each side fitted it."""
    from rolldepth.method.coalign import official_objective, subsample
    from rolldepth.method.merge import global_min

    offset = global_min(snippets)
    n_frames = int(max(g.indices.max() for g in groups)) + 1
    return official_objective([subsample(np.asarray(p) - offset) for p in snippets], groups, n_frames, scales, shifts)


def official_commit(official: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(official), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of prs-eth/RollingDepth")
    parser.add_argument("--official-python", default=sys.executable,
                        help="interpreter for the official code (transformers 4.x, einops; see the docstring)")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: a fresh tiny random one)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 96), metavar=("H", "W"),
                        help="frame size; a multiple of 8 so neither side pads (default 64 96)")
    parser.add_argument("--dilations", type=int, nargs="+", default=[1, 25], help="capped to the video as usual")
    parser.add_argument("--snippet-len", type=int, default=3)
    parser.add_argument("--refine-steps", type=int, default=4)
    parser.add_argument("--refine-start-dilation", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "parity_official.txt")
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        official_worker(args.official.resolve(), *args.worker)
        return

    import torch

    from rolldepth.model.checkpoint import write_tiny_checkpoint
    from rolldepth.video.reading import resize_frames

    height, width = args.size
    args.res = max(height, width)  # processing at the native size: no resize, no padding on either side
    frames = moving_pattern(args.frames, height, width, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = args.checkpoint or write_tiny_checkpoint(tmp / "tiny", seed=0)
        inputs, outputs = tmp / "inputs.npz", tmp / "official.npz"
        np.savez(inputs, frames=resize_frames(frames, args.res).numpy(), checkpoint=str(checkpoint.resolve()),
                 dilations=args.dilations, snippet_len=args.snippet_len, refine_steps=args.refine_steps,
                 refine_start_dilation=args.refine_start_dilation, seed=args.seed)
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), HF_HUB_OFFLINE="1",
                   PYTHONPATH="")
        subprocess.run([args.official_python, __file__, "--official", str(args.official), "--worker", str(inputs),
                        str(outputs)], check=True, env=env)
        off = dict(np.load(outputs))
        mine = ours(checkpoint, frames, args)

    result = mine["result"]
    rows: list[str] = []

    def row(name: str, pair: tuple[float, float], target: float | None = None) -> None:
        verdict = "" if target is None else ("  ok" if pair[1] <= target else f"  FAILS target {target:g}")
        rows.append(f"{name:<60} max abs {pair[0]:.3e}   rel {pair[1]:.3e}{verdict}")

    x = torch.arange(256, dtype=torch.float32)
    row("0. normalising 0..255: /127.5-1 vs /255*2-1", diff(x / 127.5 - 1, x / 255.0 * 2 - 1))
    row("0. empty-prompt embedding", diff(mine["empty_embedding"], off["empty_embedding"]))
    row("1. RGB latents", diff(mine["latents"], off["latents"]))
    ours_dilations = [g.dilation for g in result.groups]
    same_indices = all(np.array_equal(g.indices, off[f"indices{i}"]) for i, g in enumerate(result.groups))
    rows.append(f"2. capped dilations: ours {ours_dilations}, official {off['dilations'].tolist()}; "
                f"snippet indices {'identical' if same_indices else 'DIFFER'}")
    for g, snippets in enumerate(result.snippets):
        row(f"2. snippets, dilation {ours_dilations[g]} ({len(snippets)} snippets)", diff(snippets,
            off[f"snippets{g}"]), 1e-4)
    groups = result.groups
    off_scales = [off[f"scales{g}"].astype(np.float64) for g in range(len(groups))]
    off_shifts = [off[f"shifts{g}"].astype(np.float64) for g in range(len(groups))]
    # A common factor on all (s, t) cancels in the renormalised merge: compare s / mean(s) and t / mean(s), the
    # shifts relative to the range of the snippets (they are tiny themselves, so relative to their own size says
    # nothing).
    ref_s, ref_t = relative_alignment(off_scales, off_shifts)
    span = float(np.ptp(np.concatenate([np.ravel(off[f"snippets{g}"]) for g in range(len(groups))])))
    for name, fit in (("ours", (result.scales, result.shifts)),
                      ("(diag.) our Adam", (mine["adam"].scales, mine["adam"].shifts))):
        rel_s, rel_t = relative_alignment(*fit)
        row(f"3. s/mean(s): {name} vs official Adam", diff(rel_s, ref_s))
        row(f"3. t/mean(s) (rel: range): {name} vs official Adam", diff(rel_t, ref_t, scale=span))
    rows.append(f"3. mean scale: ours {np.mean(np.concatenate(result.scales)):.4f}, official Adam "
                f"{np.mean(np.concatenate(off_scales)):.4f}; official objective at ours "
                f"{objective(result.snippets, groups, result.scales, result.shifts):.3e}, at the official Adam end "
                f"{objective([off[f'snippets{g}'] for g in range(len(groups))], groups, off_scales, off_shifts):.3e}")
    # Without refinement the merge is the final depth (target 1e-3); either way it is set against the spread of
    # two Adam runs on near-identical snippets, the precision to which the official procedure defines it.
    merged = diff(result.depth_coaligned, off["coaligned"])
    spread = diff(mine["adam_merged"], off["coaligned"])
    row("3. co-aligned merge: ours vs official Adam", merged, 1e-3 if args.refine_steps == 0 else None)
    row("3. (diag.) merge: our Adam replica vs official Adam", spread)
    rows.append(f"   ours is {'within' if merged[0] <= spread[0] else 'OUTSIDE'} the Adam run-to-run spread")
    error = str(off["refine_error"])
    if args.refine_steps == 0:
        rows.append("4. refinement: not run (--refine-steps 0)")
    elif error:
        rows.append(f"4. refinement: NOT COMPARED, the official refinement failed: {error}")
    else:
        row(f"4. refined depth ({args.refine_steps} steps), final", diff(result.depth, off["depth"]), 1e-3)
        # Our refinement started from the official co-aligned video: the refinement code alone.
        noise = torch.randn(mine["latents"].shape[1:], generator=torch.Generator().manual_seed(args.seed))
        alone = mine["pipe"].refine(off["coaligned"], mine["latents"], noise, args.refine_steps, args.snippet_len,
                                    args.refine_start_dilation, True, 4, 4, False)
        row("4. (diag.) refinement alone, from the official merge", diff(alone, off["depth"]), 1e-3)

    header = [
        f"Parity with the official RollingDepth (commit {official_commit(args.official)}), float32, CPU, "
        f"torch {torch.__version__}",
        f"tiny random checkpoint, {args.frames} frames of {height}x{width}, dilations {args.dilations} "
        f"(capped), snippet length {args.snippet_len}, refinement {args.refine_steps} steps from dilation "
        f"{args.refine_start_dilation}, seed {args.seed}",
        "rel = max abs difference / max abs official value; targets: snippets <= 1e-4, final depth <= 1e-3",
        "",
    ]
    text = "\n".join(header + rows) + "\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
