"""Disk-backed runs: the same depth as the in-memory pipeline, bounded reads, resume after kill -9, restart on
change."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

import rolldepth.storage.workdir as workdir
from conftest import encode_video, pattern_frames
from rolldepth.apps.cli import main
from rolldepth.errors import UserError
from rolldepth.model.pipeline import FrameSource, RollingDepthPipeline
from rolldepth.process.presets import resolve_settings
from rolldepth.process.runner import RunOptions, process_video
from rolldepth.video.reading import read_frames
from rolldepth.storage.workdir import DiskStore, MemoryStore, NpyArray


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint):
    return RollingDepthPipeline.from_pretrained(tiny_checkpoint)


def options_for(**changes) -> RunOptions:
    settings = resolve_settings("fast", res=26, dilations=[1, 3], dtype="fp32",
                                refine_steps=changes.pop("refine_steps", 0))
    base = RunOptions(settings=settings, cmaps=(), save_png=False, save_sbs=False, progress=False,
                      batch_size=3, vae_batch_size=2, seed=5)
    return replace(base, **changes)


def count_unet_calls(monkeypatch, pipe, fail_at: int | None = None) -> list:
    """Count ``denoise`` (one UNet call each); raise KeyboardInterrupt at call number ``fail_at``."""
    calls, real = [], pipe.denoise

    def counted(*args):
        calls.append(1)
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(pipe, "denoise", counted)
    return calls


# ------------------------------------------------------------------------------------------------------------------
def test_npy_array_reads_and_writes_like_numpy(tmp_path):
    ref = np.random.default_rng(0).standard_normal((5, 3, 4, 6)).astype(np.float32)
    a = NpyArray.create(tmp_path / "a.npy", ref.shape)
    a[0:2] = ref[0:2]
    a[2] = ref[2]
    for k in (3, 4):
        for j in range(3):
            a[k, j] = ref[k, j]
    a.flush()
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), ref)  # a standard .npy file
    np.testing.assert_array_equal(a[1, 2], ref[1, 2])
    np.testing.assert_array_equal(a[-1], ref[-1])
    np.testing.assert_array_equal(a[np.array([4, 0, 4])], ref[[4, 0, 4]])
    np.testing.assert_array_equal(np.stack(list(a)), ref)
    np.testing.assert_array_equal(np.asarray(a.head(2)), ref[:2])
    with pytest.raises(IndexError):
        a[5]
    a.close()


def test_disk_store_resumes_only_a_matching_fingerprint(tmp_path):
    store = DiskStore(tmp_path / "w", {"seed": 1})
    store.array("x", (3, 2))[1] = [7, 8]
    store.set("x", 2)
    store.close()
    again = DiskStore(tmp_path / "w", {"seed": 1})
    assert again.resumed and again.get("x") == 2
    np.testing.assert_array_equal(again.array("x", (3, 2))[1], [7, 8])
    again.close()
    other = DiskStore(tmp_path / "w", {"seed": 2})
    assert not other.resumed and other.get("x") is None and not (tmp_path / "w" / "x.npy").exists()
    with pytest.raises(UserError, match="in use by another rolldepth run"):
        DiskStore(tmp_path / "w", {"seed": 2})  # a second run on the same folder while the first holds it
    other.remove()
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("changes", [{}, {"refine_steps": 2, "restore_res": True}])
def test_disk_backed_run_equals_in_memory_call(pipe, tmp_path, changes):
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(11))
    options = options_for(**changes)
    out = tmp_path / "out"
    written = process_video(pipe, video, out, options)
    s = options.settings
    expected = pipe(read_frames(video), dilations=s.dilations, processing_res=26, refine_steps=s.refine_steps,
                    restore_res=options.restore_res, batch_size=3, vae_batch_size=2, generator=5, progress=False)
    got = np.load(written["pred"])
    assert got.shape == expected.depth.shape == ((11, 36, 52) if changes else (11, 18, 26))
    np.testing.assert_allclose(got, expected.depth, rtol=0, atol=1e-6)
    assert sorted(os.listdir(out)) == [".clip.rolldepth-done.json", "clip_pred.npy"]  # the work folder is gone


def test_frames_that_stop_early_are_processed_as_the_shorter_video(pipe, caplog):
    """A damaged file can decode fewer frames than its packets promised: the run goes on with those it got."""
    frames = pattern_frames(12)
    source = FrameSource(12, 36, 52, lambda first: iter(frames[first:9]))
    out = pipe.run(source, MemoryStore(), dilations=(1, 2), processing_res=26, generator=2, progress=False)
    expected = pipe(frames[:9], dilations=(1, 2), processing_res=26, generator=2, progress=False)
    assert "only 9 of 12 frames" in caplog.text
    assert out.depth.shape == (9, 18, 26)
    np.testing.assert_array_equal(out.depth, expected.depth)


def test_disk_arrays_are_only_read_in_small_pieces(pipe, tmp_path, monkeypatch):
    """No stage (merge, renormalisation, refinement, writers) reads a whole disk-backed array at once."""
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(24))
    frame_bytes = 18 * 26 * 4
    monkeypatch.setattr(workdir, "READ_BLOCK_BYTES", 3 * frame_bytes)
    reads, real = [], NpyArray._read

    def recorded(self, first, count, items=None, skip=0):
        out = real(self, first, count, items, skip)
        reads.append(out.nbytes)
        return out

    monkeypatch.setattr(NpyArray, "_read", recorded)
    written = process_video(pipe, video, tmp_path / "out", options_for(refine_steps=2, cmaps=("Greys_r",),
                                                                       save_png=True, save_sbs=True))
    assert np.load(written["pred"]).shape == (24, 18, 26)
    assert len(reads) > 100
    assert max(reads) <= 3 * frame_bytes < 24 * frame_bytes  # a whole depth array would be 24 frames


def slow_cli_run(argv: list[str]) -> None:
    """The CLI with every UNet call slowed down, so the parent can kill it half-way."""
    real = RollingDepthPipeline.denoise

    def slow(self, *args):
        time.sleep(0.1)
        return real(self, *args)

    RollingDepthPipeline.denoise = slow
    os._exit(main(argv))


def test_run_killed_mid_way_resumes_to_the_identical_result(tiny_checkpoint, tmp_path, monkeypatch):
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(16))
    args = ["--model", str(tiny_checkpoint), "--res", "26", "-d", "1", "4", "--batch-size", "2", "--cmap",
            "--no-save-png", "--no-save-sbs", "--seed", "3"]
    out = tmp_path / "out"
    progress = out / ".clip.rolldepth-work" / "progress.json"
    # a forked child: a real process killed with SIGKILL, without paying for importing torch again
    child = multiprocessing.get_context("fork").Process(
        target=slow_cli_run, args=(["-q", "run", str(video), "-o", str(out), *args],)
    )
    child.start()
    deadline, done = time.monotonic() + 60, {}
    while done.get("snippets0", 0) < 4:  # two finished batches of the first group
        assert child.is_alive(), f"the run ended early (exit code {child.exitcode})"
        assert time.monotonic() < deadline
        time.sleep(0.02)
        try:
            done = json.loads(progress.read_text())["done"]
        except (OSError, ValueError, KeyError):
            pass
    child.kill()  # SIGKILL
    child.join()
    assert child.exitcode == -signal.SIGKILL
    done = json.loads(progress.read_text())["done"]  # as the killed process left it
    assert 4 <= done["snippets0"] < 14
    assert sorted(p.name for p in out.iterdir()) == [".clip.rolldepth-work"]  # no output under a final name

    calls = count_unet_calls(monkeypatch, RollingDepthPipeline)
    assert main(["-q", "run", str(video), "-o", str(out), *args]) == 0
    resumed = len(calls)
    assert main(["-q", "run", str(video), "-o", str(tmp_path / "fresh"), *args]) == 0
    np.testing.assert_array_equal(np.load(out / "clip_pred.npy"), np.load(tmp_path / "fresh" / "clip_pred.npy"))
    # 14 snippets of dilation 1 and 8 of dilation 4 in batches of 2: 11 UNet calls, minus the batches recorded
    assert len(calls) - resumed == 11
    assert resumed == 11 - done["snippets0"] // 2
    assert sorted(p.name for p in out.iterdir()) == [".clip.rolldepth-done.json", "clip_pred.npy"]


def test_changed_option_starts_over(pipe, tmp_path, monkeypatch, caplog):
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(10))
    out = tmp_path / "out"
    count_unet_calls(monkeypatch, pipe, fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        process_video(pipe, video, out, options_for(seed=0))
    assert sorted(p.name for p in out.iterdir()) == [".clip.rolldepth-work"]

    calls = count_unet_calls(monkeypatch, pipe)
    caplog.set_level("INFO", logger="rolldepth")
    written = process_video(pipe, video, out, options_for(seed=1))
    assert "starting over" in caplog.text
    assert len(calls) == 3 + 2  # 8 + 6 snippets (dilation 3 capped to 2) in batches of 3: every batch again
    expected = pipe(read_frames(video), dilations=(1, 3), processing_res=26, batch_size=3, vae_batch_size=2,
                    generator=1, progress=False).depth
    np.testing.assert_allclose(np.load(written["pred"]), expected, rtol=0, atol=1e-6)


def test_a_finished_input_is_skipped_until_its_input_options_or_outputs_change(pipe, tmp_path, monkeypatch, caplog):
    """A batch interrupted at its 57th video, run again, must not compute the 56 finished ones again; another output
    of a finished video is written from its depth; anything that would change the depth computes it anew."""
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(8))
    out = tmp_path / "out"
    first = process_video(pipe, video, out, options_for())
    pred = np.load(first["pred"])
    calls = count_unet_calls(monkeypatch, pipe)
    caplog.set_level("INFO", logger="rolldepth")
    assert process_video(pipe, video, out, options_for()) == first and calls == []
    assert "clip.mp4: done already" in caplog.text and "(clip_pred.npy)" in caplog.text
    with monkeypatch.context() as full:  # a finished input needs no disk: not refused for lack of it
        full.setattr("rolldepth.process.runner.free_disk", lambda folder: 0)
        assert process_video(pipe, video, out, options_for()) == first and calls == []

    caplog.clear()
    with_png = process_video(pipe, video, out, options_for(save_png=True))  # another output: from the depth
    assert calls == [] and with_png.keys() == {"pred", "png16"} and "its depth is done already" in caplog.text
    np.testing.assert_array_equal(np.load(with_png["pred"]), pred)
    assert process_video(pipe, video, out, options_for(save_png=True)) == with_png and calls == []
    shutil.rmtree(with_png["png16"])  # an output deleted: written again from the depth
    process_video(pipe, video, out, options_for(save_png=True))
    assert calls == [] and with_png["png16"].is_dir()
    frames = sorted(p.name for p in with_png["png16"].iterdir())
    (with_png["png16"] / "frame_000003.png").unlink()  # one frame of a folder deleted: the folder written again
    caplog.clear()
    process_video(pipe, video, out, options_for(save_png=True))
    assert calls == [] and "its depth is done already" in caplog.text
    assert sorted(p.name for p in with_png["png16"].iterdir()) == frames
    np.save(with_png["pred"], pred[:4])  # the depth replaced by other values: computed
    process_video(pipe, video, out, options_for(save_png=True))
    assert len(calls) > 0
    np.testing.assert_array_equal(np.load(with_png["pred"]), pred)
    calls.clear()
    with_png["pred"].unlink()  # the depth deleted: computed
    process_video(pipe, video, out, options_for(save_png=True))
    one_run = len(calls)  # UNet calls of the whole video
    assert one_run > 0
    np.testing.assert_array_equal(np.load(with_png["pred"]), pred)
    process_video(pipe, video, out, options_for(save_png=True, seed=3))  # another noise: another depth
    assert len(calls) == 2 * one_run
    process_video(pipe, video, out, options_for(save_png=True), resume=False)  # starting over is asked for
    assert len(calls) == 3 * one_run
    encode_video(video, pattern_frames(8, seed=1))  # the input changed
    changed = process_video(pipe, video, out, options_for(save_png=True))
    assert len(calls) == 4 * one_run and not np.array_equal(np.load(changed["pred"]), pred)


def test_outputs_that_need_the_snippets_are_computed_unless_the_earlier_run_wrote_them(pipe, tmp_path, monkeypatch):
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(8))
    out = tmp_path / "out"
    process_video(pipe, video, out, options_for())
    calls = count_unet_calls(monkeypatch, pipe)
    first = process_video(pipe, video, out, options_for(save_uncertainty=True, save_snippets=True))
    one_run = len(calls)
    assert one_run > 0 and {"uncertainty", "snippets"} <= first.keys()  # the work folder was gone: computed
    uncertainty = np.load(first["uncertainty"])
    # asked for again beside another output: kept from that run, the new output written from its depth
    again = process_video(pipe, video, out, options_for(save_uncertainty=True, save_png=True, save_exr=True))
    assert len(calls) == one_run and again["uncertainty"] == first["uncertainty"] and "png16" in again
    np.testing.assert_array_equal(np.load(again["uncertainty"]), uncertainty)
    assert len(list(again["uncertainty_exr"].glob("*.exr"))) == 8
    assert "snippets" not in again


def test_memory_bench_measures_each_child_on_its_own():
    """Peak RSS per child, not the largest child so far: a small run after a big one must read small."""
    from rolldepth.apps.bench import run_measured

    def allocate(mib: int) -> list[str]:
        return [sys.executable, "-c", f"b = bytearray({mib} << 20); b[::4096] = b'x' * len(b[::4096])"]

    code, _, big = run_measured(allocate(300))
    assert code == 0 and big > 300
    code, _, small = run_measured(allocate(20))
    assert code == 0 and 20 < small < 300


def test_reported_seconds_are_the_stages_not_counted_twice(pipe, tmp_path, caplog, monkeypatch):
    import re

    outs, real_run = [], pipe.run
    monkeypatch.setattr(pipe, "run", lambda *a, **k: outs.append(real_run(*a, **k)) or outs[-1])
    video = encode_video(tmp_path / "clip.mp4", pattern_frames(10))
    with caplog.at_level("INFO", logger="rolldepth"):
        process_video(pipe, video, tmp_path / "out", options_for())
    reported = float(re.search(r"10 frames in ([0-9.]+) s", caplog.text).group(1))
    timings = outs[0].timings
    assert timings["snippets_unet"] + timings["snippets_decode"] <= timings["snippets"]  # parts of that stage
    stages = timings["encode"] + timings["snippets"] + timings["coalign"]
    assert reported == pytest.approx(stages, abs=0.051)
