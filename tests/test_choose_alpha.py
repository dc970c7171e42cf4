"""benchmarks/choose_alpha.py: the rule that picked v2.3, applied to the evaluations it was picked from."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = _ROOT / "benchmarks" / "choose_alpha.py"
_spec = importlib.util.spec_from_file_location("choose_alpha", _SCRIPT)
choose_alpha = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(choose_alpha)

_RECORDED = _ROOT / "benchmarks" / "results" / "weight_interpolation"


def _choose(root: Path) -> list[str]:
    """The lines choose_alpha.py prints for the evaluations in ``root``."""
    return subprocess.run([sys.executable, str(_SCRIPT), str(root)], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_the_largest_alpha_that_keeps_the_ordinary_shots_and_gains_on_the_consistency_shots():
    start = (0.20, 0.45)
    assert choose_alpha.choose_alpha({0.0: start, 0.3: (0.19, 0.44), 0.7: (0.20, 0.43), 1.0: (0.21, 0.40)}) == 0.7
    # a tie on the consistency shots is no gain; a tie on the ordinary shots is no loss
    assert choose_alpha.choose_alpha({0.0: start, 0.5: (0.19, 0.45), 0.3: (0.20, 0.449)}) == 0.3
    # nothing qualifies: keep the start
    assert choose_alpha.choose_alpha({0.0: start, 0.5: (0.21, 0.30), 1.0: (0.15, 0.46)}) == 0.0
    with pytest.raises(ValueError, match="start"):
        choose_alpha.choose_alpha({0.5: start})


def test_the_recorded_validation_evaluations_give_v2_3s_alpha(tmp_path):
    """The eval.json files `rolldepth eval` wrote for v2.3's choice, laid out as train_v2_gpu.sh lays them out."""
    for name, alpha in (("v22", "0"), ("a03", "0.3"), ("a05", "0.5"), ("a07", "0.7")):
        for seed, recipe in (("40", "ordinary"), ("42", "consistency")):
            (tmp_path / f"a{alpha}_{recipe}").mkdir()
            shutil.copy(_RECORDED / f"val{seed}_{name}.json", tmp_path / f"a{alpha}_{recipe}" / "eval.json")
    (tmp_path / "a1_ordinary").mkdir()  # an evaluation cut by its time-out: no eval.json, not a candidate
    (tmp_path / "a1_consistency").mkdir()

    scores = choose_alpha.read_scores(tmp_path)
    assert sorted(scores) == [0.0, 0.3, 0.5, 0.7]
    assert scores[0.0] == pytest.approx((0.1985, 0.4594), abs=5e-5)  # the README's table: 19.85 and 45.94
    out = _choose(tmp_path)
    assert out[-1] == "0.7"
    assert "| **0.7** | 18.56 | 44.31 |" in out


def _lay_out(recorded: Path, root: Path) -> Path:
    """A run's recorded validation (``a<ALPHA>_<recipe>.json``) laid out as train_v2_gpu.sh lays it out."""
    for alpha in ("0", "0.3", "0.5", "0.7", "1"):
        for recipe in choose_alpha.RECIPES:
            (root / f"a{alpha}_{recipe}").mkdir(parents=True)
            shutil.copy(recorded / f"a{alpha}_{recipe}.json", root / f"a{alpha}_{recipe}" / "eval.json")
    return root


def test_the_recorded_validation_of_the_sixth_run_gives_v2_4s_alpha(tmp_path):
    """v2.4's choice (results/v2_gpu_run7/val/); with only the evaluations that finished inside the run (0 and 0.3),
    the rule gave 0.3, which is what the run printed."""
    _lay_out(_ROOT / "benchmarks" / "results" / "v2_gpu_run7" / "val", tmp_path)
    out = _choose(tmp_path)
    assert out[-1] == "0.5"
    assert "| **0.5** | 17.11 | 39.24 |" in out

    for alpha in ("0.5", "0.7", "1"):
        (tmp_path / f"a{alpha}_ordinary" / "eval.json").unlink()
    out = _choose(tmp_path)
    assert out[-1] == "0.3"
    assert "| 0.7 | not finished, not a candidate | |" in out  # the table says which were cut


def test_the_recorded_validation_of_the_seventh_run_keeps_v2_4(tmp_path):
    """The seventh run (results/v2_gpu_run8/val/, on an H200): no point of its line kept the ordinary shots' AbsRel,
    so the rule keeps the start, v2.4. v2.4 is the sixth run's alpha 0.5, scored there on an H100: the same shots,
    rendered and evaluated on the two machines, gave the same figures."""
    seventh = _lay_out(_ROOT / "benchmarks" / "results" / "v2_gpu_run8" / "val", tmp_path / "seventh")
    out = _choose(seventh)
    assert out[-1] == "0"
    assert "| **0** | 17.11 | 39.24 |" in out
    assert "| 0.5 | 17.21 | 38.22 |" in out

    sixth = _ROOT / "benchmarks" / "results" / "v2_gpu_run7" / "val"
    for recipe in choose_alpha.RECIPES:
        on_h200 = json.loads((seventh / f"a0_{recipe}" / "eval.json").read_text())
        on_h100 = json.loads((sixth / f"a0.5_{recipe}.json").read_text())
        assert [v["variants"]["per-frame"]["disparity"] for v in on_h200["videos"]] == \
            [v["variants"]["per-frame"]["disparity"] for v in on_h100["videos"]]


def test_the_recorded_validation_of_the_eighth_run_gives_the_run_itself(tmp_path):
    """The eighth run (results/v2_gpu_run9/val/, four times the scenes in 16-frame shots): every point of its line
    gained on both recipes, so the rule takes the largest, the run (alpha 1), though 0.7 scored a little better on
    both. Its start was v2.4 again, on the same validation shots as the seventh run: the same figures."""
    eighth = _lay_out(_ROOT / "benchmarks" / "results" / "v2_gpu_run9" / "val", tmp_path)
    out = _choose(eighth)
    assert out[-1] == "1"
    assert "| **1** | 16.73 | 38.14 |" in out
    assert "| 0.7 | 16.34 | 37.96 |" in out

    seventh = _ROOT / "benchmarks" / "results" / "v2_gpu_run8" / "val"
    for recipe in choose_alpha.RECIPES:
        now = json.loads((eighth / f"a0_{recipe}" / "eval.json").read_text())
        before = json.loads((seventh / f"a0_{recipe}.json").read_text())
        assert [v["variants"]["per-frame"]["disparity"] for v in now["videos"]] == \
            [v["variants"]["per-frame"]["disparity"] for v in before["videos"]]
