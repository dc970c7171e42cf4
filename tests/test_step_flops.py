"""benchmarks/step_flops.py: the counts scale as closed forms say they must."""

import importlib.util
from pathlib import Path

import pytest

from rolldepth.model.attention import enable_multi_frame_attention
from rolldepth.model.checkpoint import load_components

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "step_flops.py"
_spec = importlib.util.spec_from_file_location("step_flops", _SCRIPT)
step_flops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_flops)


def test_encoder_work_grows_with_the_pixels_and_the_backward_pass_is_counted(tiny_checkpoint):
    parts = load_components(tiny_checkpoint)
    enable_multi_frame_attention(parts["unet"])
    encode, train = step_flops.step_flops(parts, 32, 32)
    encode_2x, _ = step_flops.step_flops(parts, 64, 32)
    encode_4x, _ = step_flops.step_flops(parts, 64, 64)
    _, forward = step_flops.step_flops(parts, 32, 32, backward=False)
    # The encoder's work is a p + b p^2 in the pixels p (convolutions, and its mid-block's attention over all
    # positions, counted since it runs on the math backend), so E(4p) - 4 E(p) = 6 (E(2p) - 2 E(p)) > 0.
    quadratic = encode_2x - 2 * encode
    assert quadratic > 0 and encode_4x - 4 * encode == pytest.approx(6 * quadratic, rel=1e-3)
    # A layer's backward pass does twice its forward work (input and weight gradients), less the first layer's
    # input gradient, which nothing needs.
    assert 2.5 * forward < train <= 3 * forward
