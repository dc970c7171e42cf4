"""Multi-frame training: the codec (VAE) stage for models trained from scratch, then the snippet UNet stage.

RollingDepth's authors did not release training code; this is the project's own recipe, written from the paper:

* snippets of 1..3 frames at random dilations, the inverse-depth target normalised JOINTLY over the snippet with
  its 2nd/98th percentiles (so the model learns one affine frame per snippet, which co-alignment relies on);
* v-prediction MSE at random timesteps of the zero-terminal-SNR schedule, mixed with the t=999 one-step regime that
  inference uses (at t=999 the input is pure noise and ``v = -z0``);
* one noise map shared by the frames of a snippet, as at inference;
* augmentation: random crops, horizontal flips, time reversal, and depth-range jitter (the normalising percentiles
  drawn around 2/98), so the model does not over-fit one exact normalisation.

Every batch, noise map and timestep is drawn from generators seeded by ``(seed, step)``: a run interrupted at any
point and resumed from its last saved state computes exactly what an uninterrupted run computes.
Training goes through HF accelerate, so the same command runs on one CPU or under ``accelerate launch`` on GPUs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .config import TrainConfig, check_synth_dataset

log = logging.getLogger(__name__)

# The small model shipped in the package: a 4x codec and a 3-level UNet whose attention only runs at 1/8 and 1/16
# of the image (joint attention over frames is quadratic in tokens; SPEC: keep it at low resolution on the CPU).
SMALL_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(32, 64, 128),  # v2: 128 channels at the latent's scale (v1: 64; its codec capped accuracy)
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=16,
    mid_block_add_attention=False,
)
SMALL_UNET = dict(
    in_channels=8,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(64, 128, 192),
    layers_per_block=1,
    norm_num_groups=32,
    cross_attention_dim=64,
    attention_head_dim=(2, 4, 6),  # diffusers' legacy name: heads per level (32 channels each)
    use_linear_projection=True,
)
SMALL_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4, projection_dim=64)


# ------------------------------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------------------------------
def normalise_snippet(depth: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Metric depth of one snippet [L, H, W] -> inverse depth in [-1, 1], jointly over all its frames.

    The ``low``/``high`` percentiles of the snippet's inverse depth map to -1/1 and values beyond are clipped (as in
    Marigold). One affine map for the whole snippet: the frames keep their relative scale.
    """
    inverse = 1.0 / np.maximum(depth.astype(np.float64), 1e-6)
    lo, hi = np.percentile(inverse, [low, high])
    scaled = (inverse - lo) / max(hi - lo, 1e-12) * 2.0 - 1.0
    return np.clip(scaled, -1.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------------
class SyntheticVideos:
    """The sequences of a ``rolldepth synth`` dataset, memory-mapped, and seeded snippet/image sampling from them."""

    def __init__(self, roots):
        """``roots``: one dataset folder, or several (a ``;``-separated string or a list) sampled as one."""
        if isinstance(roots, str):
            roots = roots.split(";")
        elif isinstance(roots, Path):
            roots = [roots]
        self.frames, self.depth = [], []
        for root in roots:
            self._add(Path(root))
        self.first_frame = np.cumsum([0] + [len(f) for f in self.frames])  # of each sequence, in all the data

    def _add(self, root: Path) -> None:
        check_synth_dataset(root)
        index = root / "dataset.json"
        try:
            names = [entry["name"] for entry in json.loads(index.read_text())["sequences"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{index} is not a valid dataset description ({exc})") from None
        for name in names:
            try:
                frames = np.load(root / name / "frames.npy", mmap_mode="r")
                depth = np.load(root / name / "depth.npy", mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise UserError(f"{root / name} is missing or corrupt ({exc})") from None
            if frames.shape[:3] != depth.shape or frames.ndim != 4:
                raise UserError(f"{root / name}: frames {frames.shape} and depth {depth.shape} do not match")
            self.frames.append(frames)
            self.depth.append(depth)
        if not self.frames:
            raise UserError(f"{root} holds no sequences")

    def _crop_box(self, rng: np.random.Generator, seq: int, crop: tuple[int, int]) -> tuple[slice, slice]:
        height, width = self.depth[seq].shape[1:]
        crop_w, crop_h = crop
        if crop_w > width or crop_h > height:
            raise UserError(f"crop {crop_w}x{crop_h} is larger than the dataset's {width}x{height} frames")
        top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
        return slice(top, top + crop_h), slice(left, left + crop_w)

    @property
    def n_frames(self) -> int:
        return int(self.first_frame[-1])

    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) shared by every sequence, or None if the sizes differ."""
        sizes = {depth.shape[1:] for depth in self.depth}
        return (sizes.pop()[::-1]) if len(sizes) == 1 else None

    def snippets(self, rng: np.random.Generator, n: int, length: int, cfg: TrainConfig
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` random snippets of ``length`` frames: RGB [n*L, 3, h, w] in [-1, 1], targets [n*L, 1, h, w] and
        which image each RGB frame is ([n*L]: 2 x its index in all the data, + 1 if mirrored)."""
        rgb, target, keys = [], [], []
        for _ in range(n):
            seq = int(rng.integers(len(self.frames)))
            n_frames = len(self.frames[seq])
            dilation = int(rng.integers(1, max(1, min(cfg.max_dilation, (n_frames - 1) // max(length - 1, 1))) + 1))
            span = dilation * (length - 1)
            start = int(rng.integers(0, n_frames - span))
            idx = start + dilation * np.arange(length)
            if rng.uniform() < 0.5:
                idx = idx[::-1]
            rows, cols = self._crop_box(rng, seq, cfg.crop)
            frames = np.asarray(self.frames[seq][idx][:, rows, cols])
            depth = np.asarray(self.depth[seq][idx][:, rows, cols])
            jitter = rng.uniform(-cfg.percentile_jitter, cfg.percentile_jitter, size=2)
            norm = normalise_snippet(depth, 2.0 + jitter[0], 98.0 + jitter[1])
            mirrored = rng.uniform() < 0.5
            if mirrored:
                frames, norm = frames[:, :, ::-1], norm[:, :, ::-1]
            rgb.append(frames)
            target.append(norm)
            keys.append(2 * (self.first_frame[seq] + idx) + int(mirrored))
        rgb_t = torch.from_numpy(np.ascontiguousarray(np.concatenate(rgb))).permute(0, 3, 1, 2).float() / 127.5 - 1
        target_t = torch.from_numpy(np.ascontiguousarray(np.concatenate(target)))[:, None]
        return rgb_t, target_t, torch.from_numpy(np.concatenate(keys).astype(np.int64))

    def snippet_batch(self, rng: np.random.Generator, cfg: TrainConfig):
        """One UNet batch: a snippet length drawn with ``cfg.length_weights``, then ``cfg.frames_per_batch // length``
        snippets of it; returns ``(length, rgb, targets, keys)`` as :meth:`snippets`."""
        weights = np.asarray(cfg.length_weights, dtype=np.float64)
        length = int(rng.choice(cfg.snippet_lengths, p=weights / weights.sum()))
        return (length, *self.snippets(rng, max(1, cfg.frames_per_batch // length), length, cfg))

    def images(self, rng: np.random.Generator, n: int, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
        """Codec training images: half RGB frames, half normalised inverse depth as 3 equal channels, in [-1, 1];
        and which of them are depth ([n] bool)."""
        rgb, target, _ = self.snippets(rng, n, 1, cfg)
        use_depth = torch.from_numpy(rng.uniform(size=n) < 0.5)
        return torch.where(use_depth[:, None, None, None], target.expand(-1, 3, -1, -1), rgb), use_depth


def step_rng(seed: int, step: int, rank: int = 0) -> tuple[np.random.Generator, torch.Generator]:
    """The generators of one training step: a function of (seed, step, rank) only, which makes resuming exact."""
    state = np.random.SeedSequence([seed, step, rank]).generate_state(2)
    return np.random.default_rng(state[0]), torch.Generator().manual_seed(int(state[1]))


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


# ------------------------------------------------------------------------------------------------------------------
# Losses
# ------------------------------------------------------------------------------------------------------------------
def encode_mean(vae, images: torch.Tensor) -> torch.Tensor:
    """Scaled posterior means, as the pipeline encodes."""
    return vae.encode(images.to(vae.device, vae.dtype)).latent_dist.mean * vae.config.scaling_factor


def vae_loss(vae, images: torch.Tensor, generator: torch.Generator, kl_weight: float, is_depth=None,
             relative: bool = False) -> torch.Tensor:
    """L1 reconstruction of a sampled latent plus a small KL term (keeps the latent space smooth for the UNet).

    ``relative``: the error of a depth image's pixel is divided by its disparity on the [-1, 1] scale mapped to
    [0.1, 1.1], so far pixels, where a small error is a large relative one, weigh up to 10x more than near ones.
    """
    posterior = vae.encode(images).latent_dist
    noise = torch.randn(posterior.mean.shape, generator=generator).to(images.device)
    latents = posterior.mean + posterior.std * noise
    error = (vae.decode(latents).sample.float() - images.float()).abs()
    if relative and is_depth is not None:
        disparity = (images.float() + 1) / 2  # the depth codec's images are disparity mapped to [-1, 1]
        weight = torch.where(is_depth.to(images.device)[:, None, None, None], 1.0 / (disparity + 0.1), 1.0)
        error = error * weight
    return error.mean() + kl_weight * posterior.kl().mean()


class LatentCache:
    """The codec's latents of whole training frames, each encoded the first time it (or its mirror image) is drawn.

    The codec is frozen while the UNet trains, so a frame's latent never changes: a long run encodes each RGB frame
    once instead of at every draw. Depth targets cannot be cached: they are normalised per snippet, with jitter.
    A cached latent may differ from a fresh one in the last bits (it was encoded in another batch), so a resumed
    run matches an uninterrupted one to float rounding rather than bit for bit.

    ``pad_batches`` (on for GPU training): the frames to encode are padded with repeats of one of them to a power of
    two, or to the whole batch. The number of new frames changes at almost every step, and cuDNN's benchmark mode
    autotunes the codec's convolutions for every new batch shape; unpadded, a run re-tunes at almost every step.
    """

    def __init__(self, n_images: int, pad_batches: bool = False):
        self.n_images, self.pad_batches, self.latents, self.filled = n_images, pad_batches, None, None
        self.encoded = self.used = 0

    @torch.no_grad()
    def __call__(self, vae, rgb: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        keys = keys.to(rgb.device)
        missing = torch.arange(len(keys), device=rgb.device) if self.filled is None else \
            (~self.filled[keys]).nonzero().squeeze(1)
        n = len(missing)
        if n:
            todo = missing
            if self.pad_batches:
                todo = torch.cat([missing, missing[:1].expand(min(len(keys), 1 << (n - 1).bit_length()) - n)])
            fresh = encode_mean(vae, rgb[todo])[:n]
            if self.latents is None:  # sized by the first latents: the codec decides their shape
                self.latents = torch.empty((self.n_images, *fresh.shape[1:]), dtype=fresh.dtype, device=fresh.device)
                self.filled = torch.zeros(self.n_images, dtype=torch.bool, device=fresh.device)
            self.latents[keys[missing]] = fresh.to(self.latents.dtype)
            self.filled[keys[missing]] = True
        self.encoded += n
        self.used += len(keys)
        return self.latents[keys]


def unet_loss(unet, vae, scheduler, context, rgb, target, length, generator, one_step_fraction,
              rgb_latents: torch.Tensor | None = None) -> torch.Tensor:
    """v-prediction MSE for a batch of snippets (frames of a snippet consecutive, ``length`` frames each); the RGB
    frames are encoded here unless their latents are given."""
    with torch.no_grad():
        if rgb_latents is None:
            rgb_latents = encode_mean(vae, rgb)
        depth_latents = encode_mean(vae, target.expand(-1, 3, -1, -1))
    n_snippets = len(rgb) // length
    noise = torch.randn((n_snippets, *depth_latents.shape[1:]), generator=generator)
    steps = torch.randint(0, scheduler.config.num_train_timesteps, (n_snippets,), generator=generator)
    one_step = torch.rand(n_snippets, generator=generator) < one_step_fraction
    steps = torch.where(one_step, scheduler.config.num_train_timesteps - 1, steps)
    noise, steps = (x.repeat_interleave(length, dim=0).to(depth_latents.device) for x in (noise, steps))
    noisy = scheduler.add_noise(depth_latents, noise, steps)
    v_target = scheduler.get_velocity(depth_latents, noise, steps)
    v_pred = unet(
        torch.cat([rgb_latents, noisy], dim=1), steps, encoder_hidden_states=context.expand(len(rgb), -1, -1),
        cross_attention_kwargs={"num_frames": length},
    ).sample
    return F.mse_loss(v_pred.float(), v_target.float())


# ------------------------------------------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------------------------------------------
class Run:
    """One training output folder: the config, the resumable state of each stage, the loss log and the model."""

    def __init__(self, out: Path, cfg: TrainConfig):
        self.out, self.cfg = Path(out), cfg
        self.out.mkdir(parents=True, exist_ok=True)
        saved = self.out / "train_config.json"
        current = json.loads(json.dumps(asdict(cfg)))
        if saved.is_file():
            previous = json.loads(saved.read_text())
            default = json.loads(json.dumps(asdict(TrainConfig(data=""))))  # settings added since that run
            changed = sorted(k for k in current if k not in ("vae_steps", "unet_steps", "save_every", "workers") and
                             previous.get(k, default[k]) != current[k])
            if changed:
                raise UserError(f"{self.out} holds a run with other settings ({', '.join(changed)}); use a new -o")
        saved.write_text(json.dumps(current, indent=1) + "\n")

    def state_dir(self, stage: str) -> Path:
        return self.out / f"state_{stage}"

    def saved_step(self, stage: str) -> int:
        meta = self.state_dir(stage) / "step.json"
        return json.loads(meta.read_text())["step"] if meta.is_file() else 0

    def saved_total(self, stage: str) -> int | None:
        """The stage's length as fixed by a time budget in an earlier session (None: the configured steps)."""
        meta = self.state_dir(stage) / "step.json"
        return json.loads(meta.read_text()).get("total") if meta.is_file() else None

    def save_state(self, stage: str, step: int, model, optimizer, total: int | None = None) -> None:
        """Model + optimizer state, written beside the old state and swapped in by renames (crash-safe)."""
        final, tmp = self.state_dir(stage), self.out / f".state_{stage}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp / "state.pt")
        (tmp / "step.json").write_text(json.dumps({"step": step, "total": total}))
        old = self.out / f".state_{stage}.old"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)

    def load_state(self, stage: str, model, optimizer) -> int:
        old = self.out / f".state_{stage}.old"
        if not self.state_dir(stage).exists() and old.exists():  # crash between the two renames
            old.rename(self.state_dir(stage))
        step = self.saved_step(stage)
        if step:
            state = torch.load(self.state_dir(stage) / "state.pt", map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            log.info("resuming %s stage at step %d", stage, step)
        self.trim_log(stage, step)
        return step

    def trim_log(self, stage: str, step: int) -> None:
        """Drop log lines of steps after the saved state: they are computed again, identically, on resume."""
        path = self.out / "loss.jsonl"
        if path.is_file():
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            kept = [e for e in lines if e["stage"] != stage or e["step"] < step]
            path.write_text("".join(json.dumps(e) + "\n" for e in kept))

    def log_loss(self, stage: str, step: int, loss: float) -> None:
        with open(self.out / "loss.jsonl", "a") as f:
            f.write(json.dumps({"stage": stage, "step": step, "loss": round(loss, 6)}) + "\n")


class StepBatches(torch.utils.data.IterableDataset):
    """The batches of steps ``start .. stop-1`` in order, made from each step's own generator: each is a list of
    ``micro`` batches drawn one after the other from it (gradient accumulation; one batch is the same draw with or
    without it).

    Under a DataLoader with ``W`` workers, worker ``w`` makes steps ``start + w``, ``start + w + W``, ...; the
    loader hands them out round-robin, so the main process receives them in step order and the batches are the
    same whatever the number of workers (and as without workers): resuming stays exact.
    """

    def __init__(self, make_batch, seed: int, start: int, stop: int, rank: int = 0, micro: int = 1):
        super().__init__()
        self.make_batch, self.seed, self.start, self.stop, self.rank = make_batch, seed, start, stop, rank
        self.micro = micro

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for step in range(self.start + worker, self.stop, workers):
            rng = step_rng(self.seed, step, self.rank)[0]
            yield step, [self.make_batch(rng) for _ in range(self.micro)]


def fit(run: Run, stage: str, model, total: int, lr: float, make_batch, loss_fn, progress: bool = True,
        minutes: float | None = None, accumulate: int = 1):
    """The shared loop: AdamW, warm-up + cosine, accelerate for devices, seeded steps, periodic resumable saves.

    ``make_batch(rng)`` draws a step's data (in ``cfg.workers`` DataLoader processes) and ``loss_fn(model, batch,
    generator)`` computes its loss on the model's device; both generators come from :func:`step_rng`. On a GPU
    the model runs in bf16 autocast with channels-last tensors. With ``minutes``, the stage's length is set by
    time: after a few steps the step rate is measured and the stage is given as many steps (at most ``total``) as
    fit in that time, and ends early if they do not (the rate fell); the number is saved with the state, so a
    resumed run keeps the same schedule. With ``accumulate`` = k, a step averages the gradients of k batches (drawn
    in turn from the step's generators) before it updates: k times the batch at the memory, and on a CPU the speed
    per frame, of one; the loss logged is their mean.
    """
    from accelerate import Accelerator
    from accelerate.utils import broadcast, send_to_device
    from tqdm.auto import tqdm

    cfg = run.cfg
    cuda = torch.cuda.is_available()
    accelerator = Accelerator(cpu=not cuda, mixed_precision="bf16" if cuda else "no")
    model.requires_grad_(True).train()
    if cuda:
        model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # fixed crop: a few batch shapes, each autotuned once
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    start = run.load_state(stage, model, optimizer)
    planned = run.saved_total(stage)
    if planned:
        total, minutes = planned, None
    model, optimizer = accelerator.prepare(model, optimizer)
    data = StepBatches(make_batch, cfg.seed, start, total, accelerator.process_index, accumulate)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=cfg.workers, pin_memory=cuda,
                                         prefetch_factor=4 if cfg.workers else None)
    bar = tqdm(desc=f"train {stage}", initial=start, total=total, disable=not progress)
    started = time.perf_counter()
    # The step rate is timed from the 10th step (the first ones pay for start-up and autotuning) to the 60th, or to
    # the step that ends the first half of the budget if that comes sooner (slow steps).
    timed_from, calibrate = start + min(10, max(0, total - start - 1)), start + min(60, max(1, total - start))
    tic = time.perf_counter()
    for step, batches in loader:
        if step == timed_from:
            tic, timed_steps = time.perf_counter(), step
        if step >= total:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_factor(step, cfg.warmup, total)
        generator = step_rng(cfg.seed, step, accelerator.process_index)[1]
        value = 0.0
        for k, batch in enumerate(batches):  # gradients add up; only the last backward syncs across processes
            with accelerator.no_sync(model) if k + 1 < len(batches) else contextlib.nullcontext():
                loss = loss_fn(model, send_to_device(batch, accelerator.device, non_blocking=True), generator)
                accelerator.backward(loss / len(batches))
            value += float(loss.detach()) / len(batches)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(value):
            raise RuntimeError(f"{stage} loss is {value} at step {step}; lower the learning rate")
        bar.update()
        bar.set_postfix(loss=f"{value:.4f}")
        now = time.perf_counter()
        if minutes and calibrate and (step + 1 == calibrate or (step > timed_from and now - started > minutes * 30)):
            rate = (step + 1 - timed_steps) / (now - tic)  # the warm-up's first steps do not depend on the total
            total = min(total, step + 1 + int(rate * max(0.0, minutes * 60 - (now - started))))
            calibrate = 0
            bar.total = total
            log.info("%s stage: %.3g steps/s, %d steps in %.1f minutes", stage, rate, total, minutes)
        elif minutes and not calibrate and now - started > minutes * 60 and step + 1 < total:
            # Steps slowed down after the rate was timed: end here, saved, rather than overrun the budget and be
            # cut off by whatever waits on it (the accelerator scripts' timeout) with nothing written.
            log.info("%s stage: out of time after %d of %d steps", stage, step + 1, total)
            total = bar.total = step + 1
        if minutes and accelerator.num_processes > 1:  # the main process's clock decides for all of them: processes
            # that planned apart would part ways at the end, one waiting forever for the others' gradients
            total = bar.total = int(broadcast(torch.tensor([total], device=accelerator.device))[0])
        if accelerator.is_main_process:
            run.log_loss(stage, step, value)
            if (step + 1) % cfg.save_every == 0 or step + 1 == total:
                run.save_state(stage, step + 1, accelerator.unwrap_model(model), optimizer, total)
    bar.close()
    model = accelerator.unwrap_model(model).to(memory_format=torch.contiguous_format)
    return model.eval().requires_grad_(False)


@torch.no_grad()
def latent_scaling_factor(vae, data: SyntheticVideos, cfg: TrainConfig, n: int = 64) -> float:
    """1 / std of the unscaled latent means over RGB and depth images, so the UNet sees unit-variance latents."""
    images = data.images(np.random.default_rng([cfg.seed, 10**9]), n, cfg)[0].to(vae.device, vae.dtype)
    return float(1.0 / vae.encode(images).latent_dist.mean.std())


def initial_components(cfg: TrainConfig) -> dict:
    from ..model.checkpoint import build_components, load_components

    if cfg.init:
        return load_components(cfg.init)
    return build_components(SMALL_UNET, SMALL_VAE, SMALL_TEXT, seed=cfg.seed)


def train(cfg: TrainConfig, out: str | Path, progress: bool = True, cache_latents: bool = False) -> Path:
    """Train (or resume) a model and write it as a checkpoint folder ``out/model``.

    From scratch the codec is trained first (``vae_steps``), then the UNet with the codec frozen; from ``init`` the
    codec is kept as it is and only the UNet is fine-tuned. ``cache_latents`` keeps the RGB latents of the UNet
    stage (:class:`LatentCache`); it needs whole frames (``crop`` = the data's frame size), since a latent is not
    cropped like its image.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0

    from ..model.attention import enable_multi_frame_attention
    from ..model.checkpoint import encode_empty_prompt, save_components

    cfg.check()
    data = SyntheticVideos(cfg.data)
    frames = data.frame_size()
    if cache_latents and frames != tuple(cfg.crop):
        raise UserError(f"--cache-latents needs whole frames: set --crop to the data's frame size (the crop is "
                        f"{cfg.crop[0]}x{cfg.crop[1]}, the frames "
                        f"{'%dx%d' % frames if frames else 'of several sizes'})")
    run = Run(Path(out), cfg)
    parts = initial_components(cfg)
    vae, unet = parts["vae"], parts["unet"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # where accelerate puts the model

    if not cfg.init and cfg.vae_steps:
        vae = fit(run, "vae", vae, cfg.vae_steps, cfg.vae_lr, lambda rng: data.images(rng, cfg.vae_batch, cfg),
                  lambda m, batch, g: vae_loss(m, batch[0], g, cfg.kl_weight, batch[1], cfg.codec_loss == "relative"),
                  progress, cfg.vae_minutes)
        vae.register_to_config(scaling_factor=latent_scaling_factor(vae, data, cfg))
        log.info("codec latent scaling factor %.4f", vae.config.scaling_factor)

    # Everything the UNet's loss touches lives on the UNet's device: the frozen codec and the prompt embedding.
    vae = vae.to(device).eval().requires_grad_(False)
    enable_multi_frame_attention(unet)
    context = encode_empty_prompt(parts["tokenizer"], parts["text_encoder"]).to(device)
    scheduler = parts["scheduler"]
    cache = LatentCache(2 * data.n_frames, pad_batches=device.type == "cuda") if cache_latents else None

    def snippet_loss(model, batch, generator):
        length, rgb, target, keys = batch
        latents = cache(vae, rgb, keys) if cache else None
        return unet_loss(model, vae, scheduler, context, rgb, target, length, generator, cfg.one_step_fraction, latents)

    if cfg.unet_steps:
        unet = fit(run, "unet", unet, cfg.unet_steps, cfg.unet_lr, lambda rng: data.snippet_batch(rng, cfg),
                   snippet_loss, progress, cfg.unet_minutes, cfg.accumulate)
        if cache and cache.used:
            log.info("latent cache: %d of %d RGB frames encoded (%.0f %%)", cache.encoded, cache.used,
                     100 * cache.encoded / cache.used)
    parts.update(vae=vae.cpu(), unet=unet.cpu())
    unet.set_attn_processor(AttnProcessor2_0())  # saved as a stock UNet; the pipeline installs its processor
    if cfg.save_fp16:  # loading casts back to the dtype asked for (fp32 on the CPU)
        parts.update({name: parts[name].half() for name in ("unet", "vae", "text_encoder")})
    return save_components(parts, run.out / "model",
                           extra_json={"rolldepth.json": {"processing_res": cfg.processing_res}})


# ------------------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------------------
