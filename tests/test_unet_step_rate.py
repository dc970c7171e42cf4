"""benchmarks/unet_step_rate.py: the batch size it chooses, and the profile of a training step it writes."""

import importlib.util
import re
import sys
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "unet_step_rate.py"
_spec = importlib.util.spec_from_file_location("unet_step_rate", _SCRIPT)
unet_step_rate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(unet_step_rate)


def test_the_choice_is_the_only_bare_number_and_the_profile_covers_the_backward_pass(tiny_checkpoint, tmp_path,
                                                                                    monkeypatch, capsys):
    profile = tmp_path / "step_profile.txt"
    monkeypatch.setattr(sys, "argv", ["unet_step_rate.py", "--model", str(tiny_checkpoint), "--crop", "32x24",
                                      "--batches", "3", "6", "--steps", "2", "--min-gain", "100",
                                      "--cache-latents", "--profile", str(profile)])
    unet_step_rate.main()
    lines = capsys.readouterr().out.splitlines()
    # --min-gain 100: a larger batch never wins, so the smallest is chosen, and it is the one line the shell
    # script reads as a number.
    assert [line for line in lines if re.fullmatch(r"\d+", line)] == ["3"]
    text = profile.read_text()
    assert text.startswith("3 frames per batch, 3 steps profiled on cpu")
    wall, busy = map(float, re.search(r"wall ([\d.]+) ms a step.*busy ([\d.]+) ms", text).groups())
    assert 0 < busy and 0 < wall
    # The profiled steps are whole training steps: the UNet's convolutions backward and the optimizer's update.
    assert "aten::convolution_backward" in text and "Optimizer.step" in text
