"""A model whose UNet lies on the straight line between two fine-tunings of one model (weight-space ensembling).

A continuation that gains on one split and loses on another (issue 8's runs: better on range-changing shots, worse
on the held-out ones) often keeps most of both gains at a point between its start and its end: Wortsman et al.,
"Robust fine-tuning of zero-shot models" (WiSE-FT, 2022). ``--alpha`` 0 is ``--start``, 1 is ``--end``. Every other
component is taken from ``--end`` and must equal ``--start``'s in value: the line only makes sense between UNets
that share their codec and schedule.

    python benchmarks/interpolate_weights.py --start src/rolldepth/weights/default --end RUN/model \\
        --alpha 0.5 -o mid
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from rolldepth.model.layout import select_weights


def interpolate(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * start + alpha * end`` for every tensor, computed in float64 and stored in ``end``'s dtypes."""
    if start.keys() != end.keys():
        raise ValueError(f"the UNets differ in their tensors: {sorted(start.keys() ^ end.keys())[:5]}")
    out = {}
    for name, b in end.items():
        a = start[name]
        if a.shape != b.shape:
            raise ValueError(f"{name}: shape {tuple(a.shape)} in start, {tuple(b.shape)} in end")
        out[name] = ((1 - alpha) * a.double() + alpha * b.double()).to(b.dtype)
    return out


def unet_weights(model: Path) -> Path:
    """The UNet's one safetensors file, chosen as loading chooses it (``select_weights``)."""
    names = select_weights([p.name for p in (model / "unet").iterdir()])
    if len(names) != 1 or not names[0].endswith(".safetensors"):
        raise ValueError(f"{model}/unet: one safetensors file expected, found {names or 'none'}")
    return model / "unet" / names[0]


def same_file(a: Path, b: Path) -> bool:
    """Equal files; safetensors files are equal when their tensors are, in the coarser of the two dtypes, so a run
    saved in float32 (no ``--save-fp16``) still matches the float16 codec it started from and never retrained."""
    if a.suffix != ".safetensors":
        return filecmp.cmp(a, b, shallow=False)
    x, y = load_file(a), load_file(b)
    if x.keys() != y.keys():
        return False
    for name, u in x.items():
        v = y[name]
        coarse = u.dtype if u.element_size() <= v.element_size() else v.dtype
        if u.shape != v.shape or not torch.equal(u.to(coarse), v.to(coarse)):
            return False
    return True


def interpolate_models(start: Path, end: Path, alpha: float, out: Path) -> None:
    """Write ``out``: a copy of ``end`` whose UNet weights are interpolated towards ``start``'s."""
    for part in ("vae", "text_encoder", "scheduler"):
        weights = [p for p in (end / part).iterdir()
                   if p.suffix in (".safetensors", ".json") and p.name != "config.json"]
        for p in weights:
            if not (start / part / p.name).is_file() or not same_file(p, start / part / p.name):
                raise ValueError(f"{part}/{p.name} differs between the two models: interpolate UNets of one codec only")
    if out.exists():
        raise FileExistsError(f"{out} exists")
    partial = out.with_name(out.name + ".partial")  # renamed when complete: no half-written model under `out`
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(end, partial)
    target = unet_weights(end)
    save_file(interpolate(load_file(unet_weights(start)), load_file(target), alpha),
              partial / target.relative_to(end), metadata={"format": "pt"})
    partial.rename(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=Path, required=True, help="the model the continuation started from")
    parser.add_argument("--end", type=Path, required=True, help="the continuation")
    parser.add_argument("--alpha", type=float, required=True, help="0 gives --start, 1 gives --end")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    interpolate_models(args.start, args.end, args.alpha, args.output)
    print(f"{args.output}: UNet at {args.alpha:g} of the way from {args.start} to {args.end}")


if __name__ == "__main__":
    main()
