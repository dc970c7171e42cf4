"""benchmarks/interpolate_weights.py: a UNet on the line between two fine-tunings that share one codec."""

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rolldepth.model.checkpoint import load_components, write_tiny_checkpoint

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "interpolate_weights.py"
_spec = importlib.util.spec_from_file_location("interpolate_weights", _SCRIPT)
interpolate_weights = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(interpolate_weights)

_UNET = Path("unet") / "diffusion_pytorch_model.safetensors"


def test_unet_is_the_weighted_mean_and_the_rest_is_kept(tmp_path, tiny_checkpoint):
    """Every UNet tensor equals a float64 (1 - a) x start + a x end; the model loads; the codec is end's, unchanged."""
    other = write_tiny_checkpoint(tmp_path / "other", seed=1)
    end = tmp_path / "end"
    shutil.copytree(tiny_checkpoint, end)
    shutil.copy(other / _UNET, end / _UNET)  # a "continuation": new UNet, same codec

    out = tmp_path / "mid"
    interpolate_weights.interpolate_models(tiny_checkpoint, end, 0.25, out)

    a, b, mid = (load_file(p / _UNET) for p in (tiny_checkpoint, end, out))
    assert mid.keys() == a.keys()
    moved = 0
    for name, m in mid.items():
        expected = 0.75 * a[name].double() + 0.25 * b[name].double()
        assert m.dtype == b[name].dtype
        torch.testing.assert_close(m.double(), expected, rtol=1e-6, atol=1e-7)
        moved += int(not torch.equal(a[name], b[name]))
    assert moved > 10  # the two UNets really differ, so the check above is not start == end == mid
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        tiny_checkpoint / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert load_components(out)["unet"] is not None


def test_models_of_different_codecs_are_refused(tmp_path, tiny_checkpoint):
    other = write_tiny_checkpoint(tmp_path / "other", seed=1)
    with pytest.raises(ValueError, match="vae"):
        interpolate_weights.interpolate_models(tiny_checkpoint, other, 0.5, tmp_path / "mid")
    assert not (tmp_path / "mid").exists()


def test_a_codec_saved_at_higher_precision_is_the_same_codec(tmp_path, tiny_checkpoint):
    """A run saved without --save-fp16 stores its untouched codec in float32: equal in value, so it is accepted;
    one value changed by more than float16's rounding is refused."""
    vae = Path("vae") / "diffusion_pytorch_model.safetensors"
    start, end = tmp_path / "start", tmp_path / "end"
    shutil.copytree(tiny_checkpoint, start)
    half = {k: v.half() for k, v in load_file(start / vae).items()}
    save_file(half, start / vae)
    shutil.copytree(start, end)
    full = {k: v.float() for k, v in half.items()}
    save_file(full, end / vae)
    assert (start / vae).read_bytes() != (end / vae).read_bytes()
    interpolate_weights.interpolate_models(start, end, 0.5, tmp_path / "mid")
    assert load_file(tmp_path / "mid" / vae)[next(iter(full))].dtype == torch.float32

    name = next(k for k, v in full.items() if v.numel() > 1)
    full[name] = full[name].clone()
    full[name].view(-1)[0] += 0.01 * (full[name].abs().max() + 1)
    save_file(full, end / vae)
    with pytest.raises(ValueError, match="vae"):
        interpolate_weights.interpolate_models(start, end, 0.5, tmp_path / "mid2")


def test_unets_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        interpolate_weights.interpolate({"w": torch.zeros(2, 3)}, {"w": torch.zeros(3, 2)}, 0.5)
    with pytest.raises(ValueError, match="differ"):
        interpolate_weights.interpolate({"w": torch.zeros(2)}, {"v": torch.zeros(2)}, 0.5)
