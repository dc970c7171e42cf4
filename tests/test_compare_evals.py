"""rolldepth compare (and benchmarks/compare_evals.py, its fly-by filter): paired per-video differences between
two eval reports, with a bootstrap interval."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from rolldepth.apps.cli import main as rolldepth_main
from rolldepth.errors import UserError
from rolldepth.evaluate import compare as compare_module

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_evals.py"
_spec = importlib.util.spec_from_file_location("compare_evals", _SCRIPT)
compare_evals = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_evals)


def report(values: dict[str, list[float]], names=("v0", "v1", "v2", "v3")) -> dict:
    """An eval.json with one variant; ``values`` maps metric -> per-video value (None for a missing metric)."""
    videos = [{"name": name, "variants": {"per-frame": {"disparity": {k: v[i] for k, v in values.items()}}}}
              for i, name in enumerate(names)]
    return {"videos": videos, "summary": {"per-frame": {}}}


def test_a_constant_shift_is_exact_and_excludes_zero():
    a = np.array([0.10, 0.30, 0.20, 0.50])
    result = compare_module.paired_bootstrap(a, a - 0.02, samples=2000)
    assert result["mean"] == pytest.approx(-0.02) and result["low"] == pytest.approx(-0.02)
    assert result["high"] == pytest.approx(-0.02) and (result["up"], result["down"], result["n"]) == (0, 4, 4)


def test_the_interval_is_the_bootstrap_of_the_paired_differences():
    # Differences -1, +1, -1, +1 (means of 4 resampled draws): the interval spans 0 and is symmetric; a large
    # between-video spread that both models share does not widen it, as it would unpaired.
    a = np.array([10.0, 50.0, 90.0, 130.0])
    b = a + np.array([-1.0, 1.0, -1.0, 1.0])
    result = compare_module.paired_bootstrap(a, b, samples=20000, seed=1)
    assert result["mean"] == pytest.approx(0) and (result["up"], result["down"]) == (2, 2)
    # all 4 draws -1: 1 in 16 > 2.5 %
    assert result["low"] == pytest.approx(-1.0) and result["high"] == pytest.approx(1.0)
    rng = np.random.default_rng(1)  # the same resampling by hand
    picks = rng.integers(0, 4, size=(20000, 4))
    assert np.percentile((b - a)[picks].mean(axis=1), 2.5) == pytest.approx(result["low"])
    with pytest.raises(ValueError):
        compare_module.paired_bootstrap(a, b[:3])


def test_compare_pairs_videos_by_name_and_skips_missing_metrics():
    a = report({"abs_rel": [0.1, 0.2, 0.3, 0.4], "tae_flow": [1.0, None, 1.0, 1.0]})
    b = report({"abs_rel": [0.4, 0.1, 0.2, 0.3], "tae_flow": [1.0, 1.0, 1.0, 1.0]}, names=("v3", "v0", "v1", "v2"))
    rows = compare_module.compare(a, b, samples=500)
    assert [r["metric"] for r in rows] == ["abs_rel"]  # tae_flow is missing for one video of A
    assert rows[0]["mean"] == pytest.approx(0) and rows[0]["low"] == rows[0]["high"] == pytest.approx(0)
    with pytest.raises(UserError, match="different videos"):
        compare_module.compare(a, report({"abs_rel": [0.1] * 4}, names=("v0", "v1", "v2", "x")))


def test_flyby_keeps_the_videos_the_synth_loader_marks(tmp_path, monkeypatch, capsys):
    # The loader's fly-by marks are tested on real renders (test_synth.py); here, that the filter keeps exactly the
    # marked videos (or the others) of both reports before pairing them.
    from types import SimpleNamespace

    import rolldepth.data.benchmarks

    marks = {"v0": 0, "v1": 3, "v2": 0, "v3": 5}
    monkeypatch.setattr(rolldepth.data.benchmarks, "load_dataset", lambda kind, root: [
        SimpleNamespace(name=name, flyby_object=mark) for name, mark in marks.items()])
    paths = []
    for label, values in (("a", [0.10, 0.30, 0.20, 0.50]), ("b", [0.10, 0.20, 0.30, 0.30])):
        paths.append(tmp_path / f"{label}.json")
        paths[-1].write_text(json.dumps(report({"abs_rel": values})))
    for flyby, expected in (("yes", (0.40, 0.25)), ("no", (0.15, 0.20))):
        monkeypatch.setattr("sys.argv", ["compare_evals.py", *map(str, paths), "--data", "D", "--flyby", flyby])
        compare_evals.main()
        out = capsys.readouterr().out
        assert f"the 2 videos {'with' if flyby == 'yes' else 'without'} a fly-by" in out
        assert f"| {expected[0] * 100:.2f} | {expected[1] * 100:.2f} |" in out
    monkeypatch.setattr("sys.argv", ["compare_evals.py", *map(str, paths), "--flyby", "yes"])
    with pytest.raises(SystemExit):
        compare_evals.main()  # --flyby without --data
    marks.clear()  # a --data folder that holds none of the reports' videos: a message, not a traceback
    monkeypatch.setattr("sys.argv", ["compare_evals.py", *map(str, paths), "--data", "D", "--flyby", "no"])
    with pytest.raises(SystemExit, match="no video of the reports"):
        compare_evals.main()


def test_rolldepth_compare_pairs_a_model_with_another_tools_predictions(tmp_path, capsys):
    """A model's per-frame variant against predictions scored with --predictions (one variant, named after their
    folder): --pair sets them side by side; B - A is computed per video before the mean."""
    model = report({"abs_rel": [0.10, 0.30, 0.20, 0.50], "delta1": [90.0, 70.0, 80.0, 50.0]})
    other = report({"abs_rel": [0.12, 0.35, 0.21, 0.60], "delta1": [88.0, 65.0, 80.0, 45.0]})
    other = {**other, "videos": [{**v, "variants": {"vda": v["variants"]["per-frame"]}} for v in other["videos"]],
             "summary": {"vda": {}}}
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "eval.json").write_text(json.dumps(model))
    (tmp_path / "vda.json").write_text(json.dumps(other))
    args = ["compare", str(tmp_path / "model"), str(tmp_path / "vda.json"), "--samples", "2000"]
    assert rolldepth_main([*args, "--pair", "per-frame=vda"]) == 0
    out = capsys.readouterr().out
    # differences +2, +5, +1, +10 (x100): mean +4.50, every video worse
    assert "| per-frame vs vda | AbsRel (lower is better) | 27.50 | 32.00 | **+4.50** |" in out and "| 4 / 0 |" in out
    assert "| per-frame vs vda | δ1 (higher is better) | 72.50 | 69.50 | **-3.00** |" in out

    for extra, message in ((["--pair", "per-frame=dav"], "report B has no variant 'dav': it has vda"),
                           ([], "share no variant"),
                           (["--pair", "per-frame"], "--pair takes VARIANT_OF_A=VARIANT_OF_B")):
        assert rolldepth_main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    (tmp_path / "bad.json").write_text("{")
    assert rolldepth_main(["compare", str(tmp_path / "bad.json"), str(tmp_path / "vda.json")]) == 2
    assert "is not an eval report" in capsys.readouterr().err
