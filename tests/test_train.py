"""Training: the snippet target, the seeded sampling, the loss at t=999, exact resume, and a model that loads."""

import json

import numpy as np
import pytest
import torch

from rolldepth.model.checkpoint import TINY_TEXT, TINY_UNET, TINY_VAE, build_components, load_components
from rolldepth.apps.cli import main
from rolldepth.errors import UserError
from rolldepth.model.pipeline import RollingDepthPipeline
from rolldepth.train.trainer import (
    SyntheticVideos, TrainConfig, lr_factor, normalise_snippet, step_rng, train, unet_loss,
)


def write_videos(root, n_sequences=2, n_frames=6, size=(40, 32), seed=0):
    """A dataset in the `rolldepth synth` layout with random frames and planes at known depths."""
    rng = np.random.default_rng(seed)
    entries = []
    for k in range(n_sequences):
        folder = root / f"seq_{k:05d}"
        folder.mkdir(parents=True)
        np.save(folder / "frames.npy", rng.integers(0, 256, (n_frames, size[1], size[0], 3), dtype=np.uint8))
        depth = rng.uniform(0.5, 20.0, (n_frames, size[1], size[0])).astype(np.float32)
        np.save(folder / "depth.npy", depth)
        entries.append({"name": folder.name})
    (root / "dataset.json").write_text(json.dumps({"sequences": entries}))
    return root


def tiny_config(data, **overrides):
    fields = dict(data=str(data), vae_steps=2, unet_steps=3, frames_per_batch=6, vae_batch=2, crop=(32, 24),
                  save_every=1, warmup=1)
    return TrainConfig(**(fields | overrides))


@pytest.fixture
def tiny_parts(monkeypatch):
    """Train the tiny architecture instead of the small one, so a whole run takes a second."""
    import rolldepth.train.trainer as module

    monkeypatch.setattr(module, "SMALL_UNET", TINY_UNET)
    monkeypatch.setattr(module, "SMALL_VAE", TINY_VAE)
    monkeypatch.setattr(module, "SMALL_TEXT", TINY_TEXT)


def test_snippet_target_is_normalised_jointly_over_frames():
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 10, (3, 20, 30))
    depth[2] *= 4  # the last frame is farther: a per-frame normalisation would hide it
    out = normalise_snippet(depth)
    inverse = 1 / depth
    lo, hi = np.percentile(inverse.ravel(), [2, 98])  # the percentiles of the whole snippet, float64
    expected = np.clip((inverse - lo) / (hi - lo) * 2 - 1, -1, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out[2].mean() < out[0].mean() - 0.3  # far frame stays darker (smaller inverse depth)
    assert (out == 1).mean() == pytest.approx(0.02, abs=0.005) and (out == -1).mean() == pytest.approx(0.02, abs=0.005)


def test_sampling_depends_only_on_seed_and_step(tmp_path):
    data = SyntheticVideos(write_videos(tmp_path / "d"))
    cfg = tiny_config(tmp_path / "d")
    first = data.snippets(step_rng(0, 7)[0], 2, 3, cfg)
    again = data.snippets(step_rng(0, 7)[0], 2, 3, cfg)
    other = data.snippets(step_rng(0, 8)[0], 2, 3, cfg)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], other[1])
    rgb, target, keys = first
    assert rgb.shape == (6, 3, 24, 32) and target.shape == (6, 1, 24, 32) and keys.shape == (6,)
    assert rgb.min() >= -1 and rgb.max() <= 1 and target.min() >= -1 and target.max() <= 1


def test_snippet_dilations_reach_the_configured_maximum(tmp_path, capsys):
    """Inference uses dilations up to 25; --max-dilation lets training draw them (8 by default)."""
    data = SyntheticVideos(write_videos(tmp_path / "d", n_sequences=1, n_frames=60, size=(16, 16)))
    for largest in (8, 25):
        rng, cfg = np.random.default_rng(3), tiny_config(tmp_path / "d", crop=(16, 16), max_dilation=largest)
        drawn = set()
        for _ in range(200):
            frames = data.snippets(rng, 1, 3, cfg)[2] // 2
            assert abs(int(frames[1] - frames[0])) == abs(int(frames[2] - frames[1]))
            drawn.add(abs(int(frames[1] - frames[0])))
        assert drawn == set(range(1, largest + 1))
    code = main(["-q", "train", "--data", str(tmp_path / "d"), "-o", str(tmp_path / "x"), "--max-dilation", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--max-dilation must be at least 1" in err and "\n" not in err


def test_lr_schedule_warms_up_and_decays_to_a_tenth():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100) == pytest.approx(0.1)


def test_one_step_regime_targets_minus_the_clean_latent():
    """At t=999 of the zero-terminal-SNR schedule the UNet input is pure noise and v = -z0: a UNet that outputs -z0
    has zero loss there, which is exactly what one-step inference decodes."""
    parts = build_components(TINY_UNET, TINY_VAE, TINY_TEXT)
    vae, scheduler = parts["vae"], parts["scheduler"]
    rgb = torch.rand(3, 3, 16, 16) * 2 - 1
    target = torch.rand(3, 1, 16, 16) * 2 - 1
    z0 = vae.encode(target.expand(-1, 3, -1, -1)).latent_dist.mean * vae.config.scaling_factor

    class MinusClean(torch.nn.Module):
        def forward(self, sample, timestep, encoder_hidden_states, cross_attention_kwargs):
            assert torch.all(timestep == 999) and cross_attention_kwargs == {"num_frames": 3}
            return type("Out", (), {"sample": -z0})()

    loss = unet_loss(MinusClean(), vae, scheduler, torch.zeros(1, 2, 32), rgb, target, 3, torch.Generator(), 1.0)
    assert float(loss) < 1e-8


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, tiny_parts, monkeypatch):
    data = write_videos(tmp_path / "d")
    straight = load_components(train(tiny_config(data), tmp_path / "straight", progress=False))

    import rolldepth.train.trainer as module

    real_log = module.Run.log_loss

    def crash_after_saving_step_2(self, stage, step, loss):
        real_log(self, stage, step, loss)
        if stage == "unet" and step == 2:
            raise KeyboardInterrupt  # after step 2's update; its state (saved every step) is from step 1 + 1
    monkeypatch.setattr(module.Run, "log_loss", crash_after_saving_step_2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(data), tmp_path / "resumed", progress=False)
    monkeypatch.setattr(module.Run, "log_loss", real_log)
    assert json.loads((tmp_path / "resumed" / "state_unet" / "step.json").read_text())["step"] == 2
    resumed = load_components(train(tiny_config(data), tmp_path / "resumed", progress=False))

    for name in ("unet", "vae"):
        a, b = straight[name].state_dict(), resumed[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert straight["vae"].config.scaling_factor == resumed["vae"].config.scaling_factor != 0.18215
    lines = [json.loads(x) for x in (tmp_path / "resumed" / "loss.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["step"]) for e in lines] == [("vae", 0), ("vae", 1), ("unet", 0), ("unet", 1), ("unet", 2)]


def test_training_lowers_the_loss_and_the_model_runs(tmp_path, tiny_parts):
    """Many steps on a 1-sequence dataset: the mean loss of the last steps is well below that of the first."""
    data = write_videos(tmp_path / "d", n_sequences=1)
    cfg = tiny_config(data, vae_steps=0, unet_steps=40, unet_lr=3e-3, save_every=100, one_step_fraction=1.0)
    model = train(cfg, tmp_path / "run", progress=False)
    losses = [json.loads(x)["loss"] for x in (tmp_path / "run" / "loss.jsonl").read_text().splitlines()]
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8])
    assert json.loads((model / "rolldepth.json").read_text()) == {"processing_res": 192}
    pipe = RollingDepthPipeline.from_pretrained(model)
    frames = np.load(data / "seq_00000" / "frames.npy")
    out = pipe(frames, dilations=(1,), processing_res=32, generator=0, progress=False)
    assert out.depth.shape == (6, 25, 32) and np.isfinite(out.depth).all()  # official sizes floor


def test_fine_tuning_keeps_the_codec_and_fp16_halves_the_files(tmp_path, tiny_checkpoint):
    data = write_videos(tmp_path / "d")
    cfg = tiny_config(data, init=str(tiny_checkpoint), unet_steps=1, save_fp16=True)
    model = train(cfg, tmp_path / "ft", progress=False)
    before, after = load_components(tiny_checkpoint), load_components(model)
    kept = before["vae"].state_dict()  # unchanged up to the fp16 rounding of the saved files
    assert all(torch.equal(kept[k].half().float(), v) for k, v in after["vae"].state_dict().items())
    untuned = before["unet"].state_dict()
    assert not all(torch.equal(untuned[k].half().float(), v) for k, v in after["unet"].state_dict().items())
    assert not (tmp_path / "ft" / "state_vae").exists()
    size = lambda folder: sum(f.stat().st_size for f in (folder / "unet").glob("*.safetensors"))
    assert size(model) < 0.6 * size(tiny_checkpoint)


@pytest.mark.parametrize("option, message", [
    (["--lr", "0"], "--lr must be a positive number, got 0.0"),  # 0 used to mean "the default"
    (["--lr", "-1"], "--lr must be a positive number"),  # used to be torch's ValueError traceback
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--unet-minutes", "-1"], "--unet-minutes must be a positive number of minutes"),
    (["--vae-minutes", "0"], "--vae-minutes must be a positive number of minutes"),
    (["--processing-res", "-1"], "--processing-res must be >= 0"),
    (["--save-every", "0"], "--save-every must be at least 1"),  # used to be raised to 1 without a word
    (["--workers", "-2"], "--workers at least 0, got 100 and -2"),  # used to train without workers
])
def test_impossible_training_options_are_one_line_before_any_work(tmp_path, tiny_parts, capsys, option, message):
    data = write_videos(tmp_path / "d")
    code = main(["-q", "train", "--data", str(data), "-o", str(tmp_path / "run"), "--crop", "32x24", *option])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("rolldepth: error:") and "\n" not in err and message in err, err
    assert not (tmp_path / "run").exists()


def test_resume_with_other_settings_and_bad_data_are_user_errors(tmp_path, tiny_parts, capsys):
    data = write_videos(tmp_path / "d")
    train(tiny_config(data, unet_steps=0, vae_steps=1), tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="other settings"):
        train(tiny_config(data, unet_steps=0, vae_steps=1, seed=5), tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="larger than"):
        train(tiny_config(data, crop=(64, 64)), tmp_path / "big", progress=False)
    capsys.readouterr()
    code = main(["-q", "train", "--data", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("rolldepth: error:") and "dataset.json" in err and "\n" not in err


def test_batches_from_workers_equal_batches_in_process(tmp_path):
    """DataLoader workers make the same batches, in step order, as the training process itself would."""
    from rolldepth.train.trainer import StepBatches

    data = SyntheticVideos(write_videos(tmp_path / "d"))
    cfg = tiny_config(tmp_path / "d")

    def make(rng):
        return data.snippets(rng, 2, 3, cfg)

    inline = list(StepBatches(make, 0, 3, 9, micro=2))
    loader = torch.utils.data.DataLoader(StepBatches(make, 0, 3, 9, micro=2), batch_size=None, num_workers=2)
    pooled = list(loader)
    assert [s for s, _ in pooled] == [s for s, _ in inline] == list(range(3, 9))
    for (_, a), (_, b) in zip(inline, pooled):
        assert len(a) == len(b) == 2 and not torch.equal(a[0][0], a[1][0])  # two different draws per step
        assert all(torch.equal(x, y) for part_a, part_b in zip(a, b) for x, y in zip(part_a, part_b))
    single = list(StepBatches(make, 0, 3, 9))  # without accumulation a step's batch is the first of those draws
    assert all(torch.equal(x, y) for (_, one), (_, two) in zip(single, inline) for x, y in zip(one[0], two[0]))


def test_accumulated_batches_update_as_their_concatenation(tmp_path):
    """k batches accumulated in a step give the weights and losses of one step on all of them at once (a mean
    loss over equal batches): a float64 linear model, checked against the same draws concatenated."""
    from rolldepth.train.trainer import Run, fit

    truth = torch.arange(1.0, 6.0, dtype=torch.float64)

    def draw(rng):
        x = torch.from_numpy(rng.normal(size=(4, 5)))
        return x, x @ truth + torch.from_numpy(rng.normal(size=4))

    def concatenated(rng):
        parts = [draw(rng) for _ in range(3)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def mse(model, batch, generator):
        return ((model(batch[0]).squeeze(1) - batch[1]) ** 2).mean()

    results = []
    for name, make, k in (("accumulated", draw, 3), ("together", concatenated, 1)):
        torch.manual_seed(0)
        model = torch.nn.Linear(5, 1).double()
        initial = torch.cat([p.detach().flatten() for p in model.parameters()])
        run = Run(tmp_path / name, tiny_config(tmp_path, save_every=100))
        fitted = fit(run, "unet", model, 5, 0.1, make, mse, progress=False, accumulate=k)
        losses = [json.loads(x)["loss"] for x in (tmp_path / name / "loss.jsonl").read_text().splitlines()]
        results.append((torch.cat([p.detach().flatten() for p in fitted.parameters()]), losses))
    (weights, losses), (weights_ref, losses_ref) = results
    torch.testing.assert_close(weights, weights_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(losses, losses_ref, rtol=1e-5)
    assert (weights - initial).abs().min() > 0.05  # the steps moved every weight


def test_time_budget_fixes_the_steps_and_resume_keeps_them(tmp_path, tiny_parts):
    data = write_videos(tmp_path / "d")
    cfg = tiny_config(data, vae_steps=0, unet_steps=10_000, unet_minutes=0.01, save_every=10_000)
    train(cfg, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "state_unet" / "step.json").read_text())
    # the rate is timed from the 10th step until the 60th or half the budget (0.3 s), then 0.6 s of steps in all
    assert 11 <= saved["step"] == saved["total"] < 10_000
    lines = (tmp_path / "run" / "loss.jsonl").read_text().splitlines()
    assert len(lines) == saved["total"]


def test_a_stage_whose_steps_slow_down_ends_on_time_with_its_state_saved(tmp_path, tiny_parts, monkeypatch):
    """The step count is planned from the first steps' rate; when later steps run slower (a busy machine) the stage
    still ends within its time, saved, instead of overrunning until a caller's timeout kills it with nothing kept."""
    import time

    import rolldepth.train.trainer as module

    plan, loss, info = [], module.unet_loss, module.log.info

    def note_plan(message, *args):  # "%s stage: %.3g steps/s, %d steps in %.1f minutes"
        if "steps in" in message:
            plan.append(args[2])
        info(message, *args)

    def slowing_loss(*args, **kwargs):
        if plan:  # once the plan is made, each step takes 1 s more
            time.sleep(1.0)
        return loss(*args, **kwargs)

    monkeypatch.setattr(module.log, "info", note_plan)
    monkeypatch.setattr(module, "unet_loss", slowing_loss)
    data = write_videos(tmp_path / "d")
    cfg = tiny_config(data, vae_steps=0, unet_steps=10_000, unet_minutes=0.1, save_every=10_000)
    tic = time.perf_counter()
    train(cfg, tmp_path / "run", progress=False)
    elapsed = time.perf_counter() - tic
    saved = json.loads((tmp_path / "run" / "state_unet" / "step.json").read_text())
    # The plan fills the 6 s budget at the first steps' rate (the tiny model runs several steps a second), so the
    # last 3 s hold some of its steps that, slowed down, take 1 s each: without the cut they run on for seconds.
    assert saved["step"] == saved["total"] < plan[0] - 3
    assert elapsed < 6 + 1 + 3  # the budget, one slow step, start-up and saving
    assert len((tmp_path / "run" / "loss.jsonl").read_text().splitlines()) == saved["total"]
    assert (tmp_path / "run" / "model" / "unet").is_dir()


def test_processes_whose_clocks_disagree_stop_at_the_same_step(tmp_path, tiny_checkpoint):
    """With several processes (`accelerate launch`, torchrun), a stage planned by time must end at the same step in
    every one, or the first to stop leaves the others waiting for its gradients (here gloo raises "Connection
    closed by peer" and nothing is saved). Two CPU processes, the second one's clock three times fast, so alone it
    would plan fewer steps and run out of time sooner."""
    import os
    import subprocess
    import sys

    data = write_videos(tmp_path / "d", n_frames=8, size=(32, 24))
    script = tmp_path / "fast_clock.py"
    script.write_text(
        "import os, sys, time\n"
        f"open(os.path.join({str(tmp_path)!r}, 'rank' + os.environ['RANK']), 'w').close()\n"
        "if os.environ.get('RANK') == '1':\n"
        "    real = time.perf_counter; t0 = real()\n"
        "    time.perf_counter = lambda: t0 + 3 * (real() - t0)\n"
        "from rolldepth.apps.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
               "-q", "train", "--data", str(data), "-o", str(tmp_path / "run"), "--init", str(tiny_checkpoint),
               "--vae-steps", "0", "--unet-steps", "100000", "--unet-minutes", "0.25", "--crop", "32x24",
               "--frames-per-batch", "6"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.glob("rank*")) == ["rank0", "rank1"]  # two processes trained
    saved = json.loads((tmp_path / "run" / "state_unet" / "step.json").read_text())
    assert saved["step"] == saved["total"] < 100000
    assert (tmp_path / "run" / "model" / "unet").is_dir()


def test_several_datasets_are_sampled_as_one(tmp_path):
    a = write_videos(tmp_path / "a", n_sequences=2)
    b = write_videos(tmp_path / "b", n_sequences=3, seed=1)
    assert len(SyntheticVideos(f"{a};{b}").frames) == 5
    assert len(SyntheticVideos([a, b]).frames) == 5


@pytest.mark.parametrize("pad", [False, True])
def test_latent_cache_returns_each_images_own_latent_and_encodes_it_once(tmp_path, pad):
    """Every cached latent equals the codec's latent of the frame (mirrored or not) its key names, worked out
    from the dataset arrays independently; a frame drawn again is not encoded again. Padded (as on a GPU), the
    codec only ever sees batches of a power of two or of the whole batch's size, and the counts are the real ones."""
    from rolldepth.train.trainer import LatentCache, encode_mean

    vae = build_components(TINY_UNET, TINY_VAE, TINY_TEXT, seed=0)["vae"].eval()
    encode, sizes = vae.encode, []
    vae.encode = lambda images: sizes.append(len(images)) or encode(images)
    data = SyntheticVideos(write_videos(tmp_path / "d", n_sequences=2, n_frames=4))
    cfg = tiny_config(tmp_path / "d", crop=(40, 32))
    cache = LatentCache(2 * data.n_frames, pad_batches=pad)
    keys_seen, new_per_step, encoded_per_step = set(), [], []
    for step in range(6):
        rgb, _, keys = data.snippets(step_rng(0, step)[0], 2, 3, cfg)
        new_per_step.append(len([k for k in keys.tolist() if k not in keys_seen]))
        sizes.clear()
        latents = cache(vae, rgb, keys)
        encoded_per_step.append(list(sizes))
        keys_seen |= set(keys.tolist())
        for key, latent in zip(keys.tolist(), latents):
            seq = int(np.searchsorted(data.first_frame, key // 2, side="right") - 1)
            image = np.asarray(data.frames[seq][key // 2 - data.first_frame[seq]])
            image = image[:, ::-1] if key % 2 else image
            pixels = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
            torch.testing.assert_close(latent[None], encode_mean(vae, pixels), atol=1e-5, rtol=1e-4)
    assert cache.used == 36 and cache.encoded == len(keys_seen) < 36
    padded = [min(6, 1 << (n - 1).bit_length()) for n in new_per_step]
    expected = [[size] if n else [] for n, size in zip(new_per_step, padded if pad else new_per_step)]
    assert encoded_per_step == expected and any(0 < n < size for n, size in zip(new_per_step, padded))  # some padding


def test_training_with_cached_latents_matches_and_needs_whole_frames(tmp_path, tiny_parts):
    data = write_videos(tmp_path / "d")
    cfg = tiny_config(data, vae_steps=0, unet_steps=6, crop=(40, 32), save_every=100)
    train(cfg, tmp_path / "fresh", progress=False)
    train(cfg, tmp_path / "cached", progress=False, cache_latents=True)
    losses = [[json.loads(x)["loss"] for x in (tmp_path / run / "loss.jsonl").read_text().splitlines()]
              for run in ("fresh", "cached")]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    with pytest.raises(UserError, match="whole frames"):
        train(tiny_config(data, crop=(32, 24)), tmp_path / "crop", progress=False, cache_latents=True)
