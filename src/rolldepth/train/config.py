"""The settings of a training run, apart from the code that trains (so the command line reads them without
loading torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Everything a run depends on; saved with its state so that a resume can refuse different settings."""

    data: str
    init: str | None = None  # checkpoint to fine-tune; None = the small model from scratch
    vae_steps: int = 600
    unet_steps: int = 1500
    vae_lr: float = 3e-4
    unet_lr: float = 2e-4
    warmup: int = 100
    frames_per_batch: int = 24  # snippets per batch = frames_per_batch // L
    accumulate: int = 1  # UNet batches whose gradients make one optimizer step (a CPU runs small batches faster)
    vae_batch: int = 8
    crop: tuple[int, int] = (128, 96)  # (width, height)
    snippet_lengths: tuple[int, ...] = (1, 2, 3)
    length_weights: tuple[float, ...] = (0.2, 0.2, 0.6)
    max_dilation: int = 8
    one_step_fraction: float = 0.5  # share of snippets trained at t=999, the inference regime
    percentile_jitter: float = 2.0  # depth-range augmentation: percentiles drawn from 2+-j and 98-+j
    kl_weight: float = 1e-6
    codec_loss: str = "l1"  # "relative": depth pixels' L1 divided by their disparity (AbsRel is relative)
    save_every: int = 100
    seed: int = 0
    workers: int = 0  # DataLoader processes drawing batches (0: in the training process)
    vae_minutes: float | None = None  # time budgets: the stage gets as many steps (at most *_steps) as fit
    unet_minutes: float | None = None
    processing_res: int = 192  # recommended inference resolution written to rolldepth.json
    save_fp16: bool = False  # store the final weights in half precision (the shipped model: half the size)
