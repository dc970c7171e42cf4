"""`rolldepth train` that also keeps exponential moving averages of the trained UNet's weights (a CPU test, kept
here as its exact command; not a `rolldepth train` option, since it did not help).

    EMA=0.99,0.995 python benchmarks/results/weight_ema/ema_train.py train --init MODEL -o RUN ...

Each decay d keeps a float64 copy of the parameters, started from the initial weights and updated after every
optimizer step (copy = d * copy + (1 - d) * weights); the run's model is written as usual (RUN/model) and, beside it,
RUN/model_ema<d>: the same folder with the copy as the UNet's weights. The training itself is untouched: the same
command without this wrapper trains the same weights, bit for bit.
"""
import os
import shutil
import sys
from pathlib import Path

import torch

from rolldepth.train import trainer

DECAYS = [float(d) for d in os.environ["EMA"].split(",")]


class EMAAdamW(torch.optim.AdamW):
    """AdamW that updates the moving averages after each step; the last one made is the UNet stage's."""

    last = None

    def __init__(self, params, **kwargs):
        self.tracked = list(params)
        super().__init__(self.tracked, **kwargs)
        self.averages = {d: [p.detach().double().clone() for p in self.tracked] for d in DECAYS}
        EMAAdamW.last = self

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for d, average in self.averages.items():
            for a, p in zip(average, self.tracked):
                a.mul_(d).add_(p.detach().double(), alpha=1 - d)
        return loss


def train(cfg, out, **kwargs):
    from diffusers import UNet2DConditionModel

    model = Path(train_once(cfg, out, **kwargs))
    for d, average in EMAAdamW.last.averages.items():
        target = model.parent / f"model_ema{d:g}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(model, target)
        unet = UNet2DConditionModel.from_pretrained(target / "unet")
        dtype = next(unet.parameters()).dtype  # as the run saved it (--save-fp16 or not)
        with torch.no_grad():
            for p, a in zip(unet.parameters(), average, strict=True):
                if p.shape != a.shape:
                    raise SystemExit(f"{target}: the UNet's parameters are not in the order they were trained in")
                p.copy_(a.to(dtype))
        shutil.rmtree(target / "unet")
        unet.save_pretrained(target / "unet")
    return model


train_once, trainer.train = trainer.train, train
trainer.torch.optim.AdamW = EMAAdamW
from rolldepth.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
