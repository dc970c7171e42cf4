"""The documented public API: every name the README shows, every command and option of the CLI.

The package's modules moved into layers (see ARCHITECTURE.md); these are the names users import and type, and
they must keep working wherever the code behind them lives.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# Every option of every command, as the command line had them before the package was split into layers.
OPTIONS = {
    "run": """
        --anchor-tolerance --assumed-range --audio --batch-size --cap-dilation --cmap --coalign --device --dilations
        --dtype --fov --fps --frame-count --frames --from --help --input-fps --intrinsics --max-vae-bs --max-vram
        --metric-anchors --model --no-audio --no-autorotate --no-cap-dilation --no-save-depth16 --no-save-exr
        --no-save-npy --no-save-png --no-save-sbs --output-dir --ply-every --preset --quiet --ray --ray-cpus
        --ray-gpus --refine-snippet-length --refine-start-dilation --refine-step --refine-steps --res --restore-res
        --save-depth16 --save-exr --save-npy --save-ply --save-png --save-rrd --save-sbs --save-snippets --save-stereo
        --save-uncertainty --seed --shots --snip-len --snippet-lengths --stereo-convergence --stereo-parallax
        --start-frame --vae-batch-size --verbose -d -h -m -o -p -q -v
    """.split(),
    "bench": """
        --device --dilations --fast-frames --frames --help --json --max-vram --memory-frames --model --paper-frames
        --quiet --res --seed --shape --verbose --video-frames --what -d -h -m -q -v
    """.split(),
    "synth": """
        --consistency --frames --help --motion-blur --quiet --realism --rich-textures --seed --sequences --shadows
        --shutter --size --thin-structures --verbose --workers -h -q -v
    """.split(),
    "train": """
        --accumulate --cache-latents --codec-loss --crop --data --frames-per-batch --help --init --lr --max-dilation
        --one-step-fraction --output-dir --processing-res --quiet --save-every --save-fp16 --seed --unet-minutes
        --unet-steps --vae-batch --vae-minutes --vae-steps --verbose --workers -h -o -q -v
    """.split(),
    "eval": """
        --coalign --data --device --dtype --help --kind --max-frames --max-videos --model --no-tae --out
        --prediction-kind --predictions --quiet --refine-steps --res --save-predictions --seed --uncertainty --variants
        --verbose -h -m -o -q -v
    """.split(),
    "compare": """
        --help --pair --quiet --samples --space --verbose -h -q -v
    """.split(),
    "web": """
        --device --help --host --model --port --quiet --share --verbose -h -m -q -v
    """.split(),
}


def test_the_pipeline_and_its_output_import_from_the_package():
    import rolldepth
    from rolldepth import RollingDepthOutput, RollingDepthPipeline

    assert set(rolldepth.__all__) == {"RollingDepthPipeline", "RollingDepthOutput"}
    assert callable(RollingDepthPipeline.from_pretrained) and callable(RollingDepthPipeline.run)
    assert {"depth", "depth_coaligned", "snippets", "groups", "scales", "shifts", "timings", "uncertainty"} <= set(
        RollingDepthOutput.__dataclass_fields__
    )
    assert isinstance(rolldepth.__version__, str)
    with pytest.raises(AttributeError):
        rolldepth.NoSuchName  # noqa: B018


def test_the_readme_python_api_imports():
    from rolldepth.metric import fit_metric_scale
    from rolldepth.pointcloud import frame_points, intrinsics_from_fov, write_ply
    from rolldepth.runner import RunOptions, process_video
    from rolldepth.video_io import read_frames

    for name in (fit_metric_scale, frame_points, intrinsics_from_fov, write_ply, process_video, read_frames):
        assert callable(name)
    assert {"metric_anchors", "anchor_tolerance", "save_ply", "ply_every", "fov", "intrinsics", "assumed_range",
            "save_rrd"} <= set(RunOptions.__dataclass_fields__)


def test_the_embedded_model_is_found():
    from rolldepth.weights import default_model

    assert (default_model() / "unet").is_dir()


def test_every_command_and_option_is_there():
    from rolldepth.cli import build_parser, main

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert list(commands) == ["run", "bench", "synth", "train", "eval", "compare", "web"]
    for name, options in OPTIONS.items():
        assert sorted(s for a in commands[name]._actions for s in a.option_strings) == sorted(options), name
    assert main is __import__("rolldepth.apps.cli", fromlist=["main"]).main  # the console script's target


def test_python_dash_m_rolldepth_cli_runs():
    result = subprocess.run([sys.executable, "-m", "rolldepth.cli", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "{run,bench,synth,train,eval,compare,web}" in result.stdout


def test_the_command_line_is_built_without_loading_torch():
    """`rolldepth --help` and every command's options answer at once: torch (seconds to import) loads only when a
    command needs it."""
    code = "import sys; from rolldepth.apps.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_mistakes_are_answered_before_torch_loads(tmp_path):
    """A wrong path, a video too short for the snippets, frames too small at the model's resolution, a folder that is
    no checkpoint, training data that is no dataset: each is one line within a second, not after seconds of
    importing torch and diffusers (and with -q, not after importing diffusers and transformers to silence their
    bars)."""
    import json

    from conftest import encode_video, pattern_frames

    short = str(encode_video(tmp_path / "short.mp4", pattern_frames(2)))
    strip = str(encode_video(tmp_path / "strip.mp4", pattern_frames(4, height=6, width=300)))
    out = str(tmp_path / "out")
    commands = [
        ["run", str(tmp_path / "missing.mp4"), "-o", out],
        ["run", short, "-o", out],
        ["run", strip, "-o", out],
        ["run", short, "-o", out, "--model", str(tmp_path)],
        ["eval", "--data", str(tmp_path), "--kind", "video", "-o", out, "--model", str(tmp_path)],
        ["train", "--data", str(tmp_path), "-o", out],
        ["train", "--data", str(tmp_path), "-o", out, "--lr", "-1"],
    ]
    code = (
        "import json, sys; from rolldepth.apps.cli import main\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    assert main(['-q', *argv]) == 2, argv\n"
        "print(sorted({'torch', 'diffusers', 'transformers'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code, json.dumps(commands)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
    errors = result.stderr.splitlines()
    expected = ["input not found", "the video has 2", "too small to co-align", "is not a RollingDepth/Marigold",
                "is not a RollingDepth/Marigold", "not a rolldepth synth dataset", "--lr must be a positive number"]
    assert len(errors) == len(expected) and all(e in line for e, line in zip(expected, errors)), errors
