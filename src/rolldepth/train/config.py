"""The settings of a training run, apart from the code that trains (so the command line reads them without
loading torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


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

    def check(self) -> None:
        """Refuse impossible settings, data folders that are no ``rolldepth synth`` dataset and a wrong ``init``
        checkpoint, before torch loads and any data is read."""
        from ..model.layout import check_model_name

        if self.vae_steps < 0 or self.unet_steps < 0 or self.frames_per_batch < 3 or self.vae_batch < 1 \
                or min(self.crop) < 8:
            raise UserError("steps must be >= 0, frames per batch >= 3 and the crop at least 8x8")
        if self.accumulate < 1:
            raise UserError(f"--accumulate must be at least 1, got {self.accumulate}")
        if self.max_dilation < 1:
            raise UserError(f"--max-dilation must be at least 1, got {self.max_dilation}")
        if not 0.0 <= self.one_step_fraction <= 1.0:
            raise UserError(f"--one-step-fraction must be within [0, 1], got {self.one_step_fraction}")
        for what, lr in (("--lr", self.unet_lr), ("the codec's learning rate", self.vae_lr)):
            if not (math.isfinite(lr) and lr > 0):
                raise UserError(f"{what} must be a positive number, got {lr}")
        for flag, minutes in (("--vae-minutes", self.vae_minutes), ("--unet-minutes", self.unet_minutes)):
            if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
                raise UserError(f"{flag} must be a positive number of minutes, got {minutes}")
        if self.processing_res < 0:
            raise UserError(f"--processing-res must be >= 0 (0 keeps the input size), got {self.processing_res}")
        if self.save_every < 1 or self.workers < 0:
            raise UserError(f"--save-every must be at least 1 and --workers at least 0, got {self.save_every} and "
                            f"{self.workers}")
        for root in self.data.split(";"):
            check_synth_dataset(Path(root))
        if self.init:
            check_model_name(self.init)


def check_synth_dataset(root: Path) -> None:
    """Refuse a folder that holds no ``rolldepth synth`` dataset (its ``dataset.json``)."""
    if not (root / "dataset.json").is_file():
        raise UserError(f"{root} is not a rolldepth synth dataset (no dataset.json); make one with `rolldepth synth`")
