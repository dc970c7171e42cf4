"""Batch planning from GPU memory: the arithmetic, and what happens where nothing can be measured (the CPU)."""

import pytest

from rolldepth.model.pipeline import RollingDepthPipeline
from rolldepth.model.vram import CPU_BATCH, MAX_BATCH, largest_batch, linear_cost, plan_batches


def test_largest_batch_is_the_largest_that_fits():
    # fixed 1 GB + 0.5 GB per item under 4 GB: 6 items (4.0 GB) fit, 7 (4.5 GB) do not
    assert largest_batch(4.0, 1.0, 0.5) == 6
    assert largest_batch(4.0, 1.0, 0.5, cap=3) == 3
    assert largest_batch(1.4, 1.0, 0.5) == 0  # not even one
    assert largest_batch(1.5, 1.0, 0.5) == 1  # exactly one
    assert largest_batch(10.0, 1.0, 0.0) == MAX_BATCH  # nothing grows with the batch


def test_linear_cost_from_two_peaks():
    assert linear_cost(300, 500) == (100, 200)
    assert linear_cost(300, 250) == (300, 0)  # noise: a smaller second peak is no negative cost


def test_cpu_keeps_given_or_default_batches(tiny_checkpoint):
    pipe = RollingDepthPipeline.from_pretrained(tiny_checkpoint)
    assert plan_batches(pipe, (8, 8), 3, None, None).batch_size == CPU_BATCH
    plan = plan_batches(pipe, (8, 8), 3, 2, 7, max_vram_gb=0.001)  # a cap means nothing without a GPU
    assert (plan.batch_size, plan.vae_batch_size) == (2, 7)


@pytest.mark.parametrize("batch,vae_batch", [(None, None), (1, 5)])
def test_pipeline_records_the_batches_it_used(tiny_checkpoint, batch, vae_batch):
    """A resumed run must batch exactly as the first did: the plan is stored with the run's other progress."""
    import numpy as np

    from rolldepth.model.pipeline import FrameSource
    from rolldepth.storage.workdir import MemoryStore

    pipe = RollingDepthPipeline.from_pretrained(tiny_checkpoint)
    frames = np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    store = MemoryStore()
    pipe.run(FrameSource(5, 16, 16, lambda first: iter(frames[first:])), store, dilations=(1,), processing_res=16,
             batch_size=batch, vae_batch_size=vae_batch, progress=False)
    assert store.get("batches") == [batch or CPU_BATCH, vae_batch or CPU_BATCH]


def test_cpu_batches_are_the_largest_that_fit_the_memory():
    from rolldepth.errors import UserError
    from rolldepth.model.vram import HEADROOM, plan_cpu_batches

    costs = {"vae": 200, "unet": 300}
    plan = plan_cpu_batches(costs, None, None, available=int(1000 / HEADROOM))  # plans for 1000 bytes
    assert (plan.batch_size, plan.vae_batch_size, plan.predicted_peak) == (3, 4, 900)  # 3 x 300; 4 x 200 (cap 4)
    plan = plan_cpu_batches(costs, None, None, available=int(450 / HEADROOM))
    assert (plan.batch_size, plan.vae_batch_size) == (1, 2)
    assert plan_cpu_batches(costs, 3, None, available=int(450 / HEADROOM)).batch_size == 3  # given sizes stand
    assert plan_cpu_batches(costs, None, None, available=None).batch_size == CPU_BATCH  # memory unknown
    with pytest.raises(UserError, match="one snippet at this resolution needs about 0.0 GB"):
        plan_cpu_batches(costs, None, None, available=int(250 / HEADROOM))
    with pytest.raises(UserError, match="one frame"):
        plan_cpu_batches(costs, 1, None, available=int(150 / HEADROOM))


def test_the_longest_snippet_counts_the_refinement_only_when_it_runs():
    """The UNet batch is planned for the longest snippet of the run: the planner and the pre-load estimate both read
    it from the kernels."""
    from rolldepth.model.stages import Kernels

    assert Kernels((1, 10), (3, 2), True, 10, 5, 6).longest_snippet == 5
    assert Kernels((1, 10), (3, 2), True, 0, 5, 6).longest_snippet == 3
    assert Kernels((1,), (1,), True, 0, 5, 6).longest_snippet == 1


def test_a_cpu_short_of_memory_runs_in_smaller_batches_with_the_same_depth(tiny_checkpoint, monkeypatch):
    """Smaller batches must change nothing but the memory: same noise, same snippets, same depth."""
    import numpy as np

    import rolldepth.model.vram as vram
    from rolldepth.model.pipeline import FrameSource
    from rolldepth.storage.workdir import MemoryStore

    pipe = RollingDepthPipeline.from_pretrained(tiny_checkpoint)
    frames = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)

    def run():
        store = MemoryStore()
        out = pipe.run(FrameSource(6, 16, 16, lambda first: iter(frames[first:])), store, dilations=(1,),
                       processing_res=16, generator=0, progress=False)
        return out.depth, store.get("batches")

    depth, batches = run()
    assert batches == [CPU_BATCH, CPU_BATCH]
    # tiny model at 16x16 (latent 8x8): a 3-frame snippet 120 x 16 ch x 3 x 64 = 368640 bytes, a decoded frame
    # 34 x 16 x 256 = 139264, an encoded one 23 x 16 x 256 = 94208; 400000 bytes hold 1 snippet and 2 decodes
    monkeypatch.setattr(vram, "available_memory", lambda: int(400_000 / vram.HEADROOM) + 1)
    small_depth, small_batches = run()
    assert small_batches == [1, 2]
    np.testing.assert_allclose(small_depth, depth, atol=1e-5)
