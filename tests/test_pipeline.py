"""The pipeline on a tiny random-init checkpoint of the real architecture, checked against hand computations."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import pattern_frames
from rolldepth.model.checkpoint import encode_empty_prompt
from rolldepth.errors import UserError
from rolldepth.model.pipeline import RollingDepthPipeline
from rolldepth.video.reading import resize_frames


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint):
    return RollingDepthPipeline.from_pretrained(tiny_checkpoint)


def reference_snippet(pipe, frames, indices, res, seed):
    """One snippet computed by hand: posterior-mean latents, one UNet call, the DDIM v-prediction update written out
    in float64 from the scheduler's alphas, decode and channel mean."""
    rgb = resize_frames(frames, res)
    h, w = rgb.shape[-2:]
    m = pipe.size_multiple
    rgb = F.pad(rgb, (0, -w % m, 0, -h % m), mode="replicate")
    sf = pipe.vae.config.scaling_factor
    latents = pipe.vae.encode(rgb[indices]).latent_dist.mean * sf
    noise = torch.randn(latents.shape[1:], generator=torch.Generator().manual_seed(seed)).expand_as(latents)
    context = encode_empty_prompt(pipe.tokenizer, pipe.text_encoder).expand(len(indices), -1, -1)
    v = pipe.unet(torch.cat([latents, noise], 1), 999, encoder_hidden_states=context,
                  cross_attention_kwargs={"num_frames": len(indices)}).sample.double()
    alphas = pipe.scheduler.alphas_cumprod.double()
    a_t = alphas[999]
    a_prev = torch.tensor(1.0, dtype=torch.float64) if pipe.scheduler.config.set_alpha_to_one else alphas[0]
    x0 = a_t.sqrt() * noise.double() - (1 - a_t).sqrt() * v
    eps = a_t.sqrt() * v + (1 - a_t).sqrt() * noise.double()
    prev = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    depth = pipe.vae.decode((prev / sf).float()).sample.mean(1)
    return depth[:, :h, :w].numpy()


def test_snippets_match_hand_computation_with_uneven_batches(pipe):
    frames = pattern_frames(9)
    with torch.no_grad():
        out = pipe(frames, dilations=(1, 2), processing_res=26, batch_size=3, generator=7,
                   return_snippets=True, progress=False)
        assert out.depth.shape == (9, 18, 26)
        for group, preds in zip(out.groups, out.snippets):
            for k in (0, len(group.indices) - 1):
                ref = reference_snippet(pipe, frames, group.indices[k], 26, 7)
                np.testing.assert_allclose(preds[k], ref, atol=2e-4)


def test_depth_is_the_renormalised_mean_of_aligned_snippets(pipe):
    frames = pattern_frames(10)
    out = pipe(frames, dilations=(1, 3), processing_res=0, generator=1, return_snippets=True, progress=False)
    offset = min(float(p.min()) for p in out.snippets)
    total = np.zeros(out.depth.shape)
    count = np.zeros(len(frames))
    for group, preds, s, t in zip(out.groups, out.snippets, out.scales, out.shifts):
        for k, idx in enumerate(group.indices):
            for j, frame in enumerate(idx):
                total[frame] += s[k] * (preds[k, j].astype(np.float64) - offset) + t[k]
                count[frame] += 1
    merged = total / count[:, None, None]
    expected = (merged - merged.min()) / (merged.max() - merged.min()) * 2 - 1
    np.testing.assert_allclose(out.depth, expected, atol=1e-5)
    assert out.depth.min() == pytest.approx(-1) and out.depth.max() == pytest.approx(1)


def test_seed_makes_runs_repeatable_and_matters(pipe):
    frames = pattern_frames(8)
    a = pipe(frames, dilations=(1,), processing_res=24, generator=3, progress=False).depth
    b = pipe(frames, dilations=(1,), processing_res=24, generator=3, progress=False).depth
    c = pipe(frames, dilations=(1,), processing_res=24, generator=4, progress=False).depth
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_refinement_follows_the_official_schedule(pipe, monkeypatch):
    import rolldepth.model.refine as module

    dilations, timesteps = [], []
    real_indices, real_denoise = module.snippet_indices, pipe.denoise
    monkeypatch.setattr(module, "snippet_indices",
                        lambda n, d, length=3: dilations.append(d) or real_indices(n, d, length))
    monkeypatch.setattr(pipe, "denoise", lambda r, d, t, n: timesteps.append(int(t)) or real_denoise(r, d, t, n))
    frames = pattern_frames(21)
    out = pipe(frames, dilations=(1,), processing_res=20, refine_steps=10, batch_size=64, generator=0, progress=False)
    assert dilations == [6, 5, 5, 4, 4, 3, 3, 2, 1, 1]
    # 1 batch for the 19 initial snippets, then one per refinement step
    assert timesteps == [999] + list(range(499, 0, -50))
    assert out.depth.shape == (21, 13, 20) and np.isfinite(out.depth).all()  # official sizes: int(H * f)
    assert np.abs(out.depth - out.depth_coaligned).max() > 1e-4


def test_a_progress_function_is_told_every_step_and_can_stop_the_run(pipe):
    frames = pattern_frames(12, height=30, width=44)
    options = dict(dilations=(1, 3), processing_res=32, refine_steps=2, vae_batch_size=5, generator=0)
    calls = []
    out = pipe(frames, **options, progress=lambda *call: calls.append(call))
    np.testing.assert_array_equal(out.depth, pipe(frames, **options, progress=False).depth)
    assert [c for c in calls if c[0] == "Encoding frames"] == [("Encoding frames", n, 12) for n in (0, 5, 10, 12)]
    assert [c[1:] for c in calls if c[0] == "Snippets (3 frames)"][-1] == (6, 6)  # dilation 3: 12 - 2 * 3
    assert (10, 10) in [c[1:] for c in calls if c[0] == "Snippets (3 frames)"]  # dilation 1
    assert calls[-1] == ("Refining", 2, 2) and ("Encoding depth", 12, 12) in calls

    class Stop(Exception):
        pass

    def stop_at_the_third(what, done, total):
        calls.append(what)
        if len(calls) == 3:
            raise Stop

    calls = []
    with pytest.raises(Stop):
        pipe(frames, **options, progress=stop_at_the_third)
    assert calls == ["Encoding frames"] * 3


def test_refinement_that_would_leave_frames_out_is_refused_before_any_work(pipe, monkeypatch):
    monkeypatch.setattr(pipe, "encode_frames", lambda *a, **k: pytest.fail("encoded before refusing"))
    with pytest.raises(UserError, match="leave 8 of 14 frames in no snippet"):
        pipe(pattern_frames(14), dilations=(1,), cap_dilation=False, processing_res=20, refine_steps=10,
             generator=0, progress=False)


def test_frames_too_small_to_coalign_are_refused_before_any_work(pipe, monkeypatch):
    """A 6x300 strip at 192 px is 192x3: the 2-px border co-alignment crops leaves no row. Said before encoding,
    not after every snippet is computed."""
    monkeypatch.setattr(pipe, "encode_frames", lambda *a, **k: pytest.fail("encoded before refusing"))
    with pytest.raises(UserError, match=re.escape("frames of 192x3 pixels (width x height) are too small")):
        pipe(pattern_frames(4, height=6, width=300), dilations=(1,), processing_res=192, progress=False)


def test_restore_res_returns_input_size(pipe):
    frames = pattern_frames(6, height=30, width=44)
    out = pipe(frames, dilations=(1,), processing_res=22, restore_res=True, generator=0, progress=False)
    assert out.depth.shape == (6, 30, 44)
    assert out.depth_coaligned.shape == (6, 15, 22)


@pytest.mark.parametrize("n_frames", [1, 2])
def test_too_short_video_is_a_user_error(pipe, n_frames):
    with pytest.raises(UserError, match="frame"):
        pipe(pattern_frames(n_frames), dilations=(1,), processing_res=16, progress=False)


def test_frames_in_the_layouts_of_other_libraries_give_the_same_depth(pipe, tmp_path):
    """Floats in [0, 1], diffusers' [N, 3, H, W] tensors, PIL images, RGBA, grey and a file path are the same video."""
    from PIL import Image

    from conftest import encode_video
    from rolldepth.video.reading import read_frames

    frames = pattern_frames(5)
    kw = dict(dilations=(1,), processing_res=20, generator=0, progress=False)
    depth = pipe(frames, **kw).depth
    same = {
        "float": frames / 255.0,
        "NCHW float tensor": torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255,
        "PIL images": [Image.fromarray(f) for f in frames],
        "RGBA": np.concatenate([frames, np.full_like(frames[..., :1], 7)], axis=-1),
        "list of arrays": list(frames),
    }
    for name, given in same.items():
        assert np.array_equal(pipe(given, **kw).depth, depth), name
    grey = pipe(frames[..., 0], **kw).depth
    assert np.array_equal(grey, pipe(np.repeat(frames[..., :1], 3, axis=-1), **kw).depth)
    assert not np.array_equal(grey, depth)
    video = encode_video(tmp_path / "clip.mp4", frames)  # decoded as the stages need it, as rolldepth run does
    assert np.array_equal(pipe(str(video), **kw).depth, pipe(read_frames(video), **kw).depth)
    Image.fromarray(frames[2]).save(tmp_path / "photo.png")  # a still: per-frame depth, whatever the kernels
    still = pipe(tmp_path / "photo.png", **kw).depth
    assert still.shape == (1, *depth.shape[1:])
    assert np.array_equal(still, pipe(frames[2:3], **kw | dict(snippet_lengths=(1,))).depth)


def test_uncertainty_is_the_spread_of_the_aligned_snippets_in_the_depths_units(pipe):
    frames = pattern_frames(10)
    kw = dict(dilations=(1, 3), processing_res=0, generator=1, progress=False)
    out = pipe(frames, return_snippets=True, output_uncertainty=True, **kw)
    offset = min(float(p.min()) for p in out.snippets)
    values = [[] for _ in frames]
    for group, preds, s, t in zip(out.groups, out.snippets, out.scales, out.shifts):
        for k, idx in enumerate(group.indices):
            for j, frame in enumerate(idx):
                values[frame].append(s[k] * (preds[k, j].astype(np.float64) - offset) + t[k])
    merged = np.stack([np.mean(v, axis=0) for v in values])
    expected = np.stack([np.std(v, axis=0) for v in values]) * 2 / (merged.max() - merged.min())
    assert out.uncertainty.shape == out.depth.shape
    np.testing.assert_allclose(out.uncertainty, expected, rtol=1e-4, atol=1e-8)
    assert out.uncertainty.max() > 1e-4  # a random-init model's snippets disagree: the check above is not 0 == 0
    # refinement changes the depth, not the disagreement of the snippets it started from
    refined = pipe(frames, output_uncertainty=True, refine_steps=2, refine_start_dilation=2, **kw)
    assert np.abs(refined.depth - out.depth).max() > 1e-3
    np.testing.assert_array_equal(refined.uncertainty, out.uncertainty)
    # back at the input's size, as the depth is
    restored = pipe(frames, output_uncertainty=True, restore_res=True, **{**kw, "processing_res": 16})
    assert restored.uncertainty.shape == restored.depth.shape == frames.shape[:3]
    assert pipe(frames, **kw).uncertainty is None


def test_uncertainty_needs_snippets_that_share_frames(pipe):
    with pytest.raises(UserError, match="snippets of one frame"):
        pipe(pattern_frames(4), snippet_lengths=(1,), dilations=(1, 2), output_uncertainty=True, progress=False)


@pytest.mark.parametrize("frames, message", [
    (np.full((4, 8, 8, 3), 200.0), "float frames must lie within [0, 1]"),
    (np.full((4, 8, 8, 3), 1000, dtype=np.uint16), "within 0..255"),
    (np.full((4, 8, 8, 3), np.nan), "NaN"),
    (np.zeros((1, 4, 8, 8, 3), dtype=np.uint8), "frames must be [N, H, W, 3]"),
    (np.zeros((4, 8, 8, 2), dtype=np.uint8), "frames must be [N, H, W, 3]"),
    ([np.zeros((8, 8, 3), np.uint8), np.zeros((6, 8, 3), np.uint8)], "different sizes"),
    ([], "no frames"),
])
def test_frames_that_are_not_a_video_are_a_user_error(pipe, frames, message):
    with pytest.raises(UserError, match=re.escape(message)):
        pipe(frames, progress=False)


def test_official_coalign_mode_merges_with_the_official_fixed_point(pipe):
    from rolldepth.method.coalign import official_coalign
    from rolldepth.method.merge import global_min, merge_frames, renormalise
    from rolldepth.method.coalign import subsampled

    frames = pattern_frames(12)
    kw = dict(dilations=(1, 4), processing_res=48, generator=0, progress=False, return_snippets=True)
    out = pipe(frames, coalign_mode="official", **kw)
    offset = global_min(out.snippets)
    result = official_coalign([subsampled(p, offset) for p in out.snippets], out.groups, 12)
    expected = renormalise(merge_frames(out.snippets, out.groups, 12, result.scales, result.shifts, offset))
    np.testing.assert_allclose(out.depth, expected, atol=1e-6)
    other = pipe(frames, coalign_mode="objective", **kw)
    np.testing.assert_array_equal(other.snippets[0], out.snippets[0])  # same predictions, another alignment
    assert np.abs(other.depth - out.depth).max() > 1e-5
    with pytest.raises(UserError, match="coalign_mode"):
        pipe(frames, coalign_mode="adam", **kw)
