"""Multi-frame self-attention: checked against a float64 reference written out by hand, against diffusers' stock
processor, for snippet independence, and for bad batch/frame combinations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from rolldepth.model.attention import MultiFrameAttnProcessor, check_frames, enable_multi_frame_attention
from rolldepth.model.checkpoint import TINY_TEXT, TINY_UNET, TINY_VAE, build_components

HEADS, DIM_HEAD, CHANNELS = 2, 8, 16


def make_attention(seed: int = 0, cross_dim: int | None = None) -> Attention:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        attn = Attention(query_dim=CHANNELS, heads=HEADS, dim_head=DIM_HEAD, cross_attention_dim=cross_dim, bias=True)
        # Non-trivial biases everywhere, so a wrong projection order would show.
        for p in attn.parameters():
            p.data.normal_(0, 0.5)
    return attn.eval()


def reference(attn: Attention, x: torch.Tensor, num_frames: int) -> np.ndarray:
    """softmax(QK^T/sqrt(d))V per head over the concatenated tokens of each snippet, then the output projection,
    all in float64 numpy from the module's weights."""
    w = {name: p.detach().double().numpy() for name, p in attn.named_parameters()}
    x = x.detach().double().numpy()
    frames_total, tokens, _ = x.shape
    out = np.empty((frames_total, tokens, CHANNELS))
    for s in range(frames_total // num_frames):
        tok = x[s * num_frames : (s + 1) * num_frames].reshape(num_frames * tokens, CHANNELS)  # (L n) c
        q = tok @ w["to_q.weight"].T + w["to_q.bias"]
        k = tok @ w["to_k.weight"].T + w["to_k.bias"]
        v = tok @ w["to_v.weight"].T + w["to_v.bias"]
        heads = []
        for h in range(HEADS):
            sl = slice(h * DIM_HEAD, (h + 1) * DIM_HEAD)
            logits = q[:, sl] @ k[:, sl].T / np.sqrt(DIM_HEAD)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            heads.append(p @ v[:, sl])
        o = np.concatenate(heads, axis=1) @ w["to_out.0.weight"].T + w["to_out.0.bias"]
        out[s * num_frames : (s + 1) * num_frames] = o.reshape(num_frames, tokens, CHANNELS)
    return out


def test_matches_float64_reference_over_joint_tokens():
    attn = make_attention()
    attn.set_processor(MultiFrameAttnProcessor())
    torch.manual_seed(1)
    x = torch.randn(6, 5, CHANNELS)  # 2 snippets x 3 frames, 5 tokens each
    with torch.no_grad():
        got = attn(x, num_frames=3).double().numpy()
        per_frame = attn(x, num_frames=1).double().numpy()
    np.testing.assert_allclose(got, reference(attn, x, 3), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(per_frame, reference(attn, x, 1), rtol=1e-4, atol=1e-5)
    # The frames differ, so joint attention is not per-frame attention.
    assert np.abs(got - per_frame).max() > 1e-2


def test_four_dim_feature_maps_use_same_joint_attention():
    attn = make_attention(seed=3)
    attn.set_processor(MultiFrameAttnProcessor())
    torch.manual_seed(2)
    maps = torch.randn(4, CHANNELS, 2, 3)  # [B*L, C, H, W]
    with torch.no_grad():
        got = attn(maps, num_frames=2)
    tokens = maps.flatten(2).transpose(1, 2)  # [B*L, H*W, C]
    expected = reference(attn, tokens, 2)
    np.testing.assert_allclose(got.flatten(2).transpose(1, 2).double().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_single_frame_equals_stock_processor():
    attn = make_attention(seed=4)
    torch.manual_seed(3)
    x = torch.randn(3, 7, CHANNELS)
    with torch.no_grad():
        attn.set_processor(AttnProcessor2_0())
        stock = attn(x)
        attn.set_processor(MultiFrameAttnProcessor())
        ours_default = attn(x)
        ours_one = attn(x, num_frames=1)
    torch.testing.assert_close(ours_default, stock, rtol=0, atol=0)
    torch.testing.assert_close(ours_one, stock, rtol=0, atol=0)


def test_cross_attention_stays_per_frame():
    attn = make_attention(seed=5, cross_dim=12)
    torch.manual_seed(4)
    x, context = torch.randn(4, 5, CHANNELS), torch.randn(4, 2, 12)
    with torch.no_grad():
        attn.set_processor(AttnProcessor2_0())
        stock = attn(x, encoder_hidden_states=context)
        attn.set_processor(MultiFrameAttnProcessor())
        ours = attn(x, encoder_hidden_states=context, num_frames=2)
    torch.testing.assert_close(ours, stock, rtol=0, atol=0)


def test_snippets_do_not_attend_to_each_other():
    attn = make_attention(seed=6)
    attn.set_processor(MultiFrameAttnProcessor())
    torch.manual_seed(5)
    x = torch.randn(6, 4, CHANNELS)
    y = x.clone()
    y[3:] = torch.randn(3, 4, CHANNELS)  # snippet 2 changed
    y2 = x.clone()
    y2[4] += 1.0  # one frame of snippet 2 changed
    with torch.no_grad():
        a, b, c = attn(x, num_frames=3), attn(y, num_frames=3), attn(y2, num_frames=3)
    torch.testing.assert_close(b[:3], a[:3], rtol=0, atol=1e-6)
    assert (b[3:] - a[3:]).abs().max() > 1e-2
    # Within a snippet, changing one frame changes every frame of that snippet (joint attention).
    for frame in (3, 5):
        assert (c[frame] - a[frame]).abs().max() > 1e-3
    torch.testing.assert_close(c[:3], a[:3], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "batch, frames", [(5, 2), (3, 4), (4, 0), (4, -1), (4, 2.0), (4, True), (4, "2")]
)
def test_check_frames_rejects(batch, frames):
    with pytest.raises(ValueError):
        check_frames(batch, frames)


@pytest.mark.parametrize("batch, frames", [(4, 2), (4, 4), (3, 1), (6, 3)])
def test_check_frames_accepts(batch, frames):
    check_frames(batch, frames)


def test_processor_raises_on_bad_batch_and_on_joint_mask():
    attn = make_attention()
    attn.set_processor(MultiFrameAttnProcessor())
    x = torch.randn(5, 4, CHANNELS)
    with pytest.raises(ValueError, match="5"):
        attn(x, num_frames=2)
    with pytest.raises(ValueError, match="mask"):
        attn(x[:4], attention_mask=torch.zeros(4, 1, 4), num_frames=2)


@pytest.fixture(scope="module")
def tiny_unet():
    return build_components(TINY_UNET, TINY_VAE, TINY_TEXT, seed=0)["unet"]


def test_unet_multi_frame(tiny_unet):
    unet = tiny_unet
    torch.manual_seed(6)
    sample = torch.randn(4, 8, 8, 8)
    context = torch.randn(4, 2, 32)
    t = torch.tensor(500)
    with torch.no_grad():
        unet.set_attn_processor(AttnProcessor2_0())
        stock = unet(sample, t, encoder_hidden_states=context).sample
        enable_multi_frame_attention(unet)
        assert all(isinstance(p, MultiFrameAttnProcessor) for p in unet.attn_processors.values())
        plain = unet(sample, t, encoder_hidden_states=context).sample
        one = unet(sample, t, encoder_hidden_states=context, cross_attention_kwargs={"num_frames": 1}).sample
        joint = unet(sample, t, encoder_hidden_states=context, cross_attention_kwargs={"num_frames": 2}).sample
        changed = sample.clone()
        changed[2:] = torch.randn(2, 8, 8, 8)
        joint2 = unet(changed, t, encoder_hidden_states=context, cross_attention_kwargs={"num_frames": 2}).sample
        with pytest.raises(ValueError):
            unet(sample[:3], t, encoder_hidden_states=context[:3], cross_attention_kwargs={"num_frames": 2})
    torch.testing.assert_close(plain, stock, rtol=0, atol=0)
    torch.testing.assert_close(one, stock, rtol=0, atol=0)
    assert (joint - stock).abs().max() > 1e-4
    torch.testing.assert_close(joint2[:2], joint[:2], rtol=0, atol=1e-5)
