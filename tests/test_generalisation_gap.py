"""benchmarks/generalisation_gap.py: the training loss on fixed batches, comparable between groups of scenes."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from rolldepth.train.trainer import SyntheticVideos, step_rng

from test_train import tiny_config, write_videos

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "generalisation_gap.py"
_spec = importlib.util.spec_from_file_location("generalisation_gap", _SCRIPT)
generalisation_gap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generalisation_gap)


def test_groups_differ_only_in_their_scenes(tmp_path, tiny_checkpoint):
    """A copy of a dataset with one sequence's frames replaced: exactly the batches that drew that sequence change."""
    seen = write_videos(tmp_path / "seen", n_sequences=3)
    unseen = tmp_path / "unseen"
    shutil.copytree(seen, unseen)
    frames = np.load(unseen / "seq_00002" / "frames.npy")
    np.save(unseen / "seq_00002" / "frames.npy", 255 - frames)
    cfg = tiny_config(seen, crop=(32, 24), max_dilation=2)
    parts = generalisation_gap.training_parts(str(tiny_checkpoint))
    a, b = (generalisation_gap.batch_losses(parts, SyntheticVideos(root), cfg, 8) for root in (seen, unseen))
    data = SyntheticVideos(seen)
    drew = [bool(np.any(data.snippet_batch(step_rng(0, i)[0], cfg)[3].numpy() // 2 >= data.first_frame[2]))
            for i in range(8)]
    assert 0 < sum(drew) < 8
    for i in range(8):
        assert (a[i] != b[i]) == drew[i], i


def test_the_command_writes_one_result_per_model(tmp_path, tiny_checkpoint, monkeypatch):
    seen, unseen = write_videos(tmp_path / "s", seed=1), write_videos(tmp_path / "u", seed=2)
    out = tmp_path / "gap.json"
    monkeypatch.setattr(sys, "argv", ["generalisation_gap.py", "--model", str(tiny_checkpoint), str(tiny_checkpoint),
                                      "--seen", str(seen), "--unseen", str(unseen), "--batches", "3",
                                      "--frames-per-batch", "6", "--max-dilation", "2", "--json", str(out)])
    generalisation_gap.main()
    results = json.loads(out.read_text())["results"]
    assert len(results) == 2 and results[0] == results[1]  # the same model twice: the same figures
    assert results[0]["seen"] != results[0]["unseen"] and results[0]["batches"] == 3
