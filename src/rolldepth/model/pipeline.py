"""RollingDepthPipeline: snippets -> co-alignment -> merge -> optional refinement.

``__call__`` and :meth:`~RollingDepthPipeline.run` tell the algorithm in order, in the diffusers style. The math
lives in the pure modules of :mod:`rolldepth.method` (``snippets``, ``coalign``, ``merge``); the model steps in
:mod:`.codec` (VAE), :mod:`.inference` (UNet) and :mod:`.refine`; the storage and resume bookkeeping of every stage
in :mod:`.stages`. The model parts are passed in (``unet``, ``vae``, ``scheduler``, ``text_encoder``, ``tokenizer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline

from ..errors import UserError
from ..method.coalign import COALIGN_SOLVERS, DEFAULT_COALIGN, check_coalign_size
from ..method.snippets import PER_FRAME_KERNELS, SnippetGroup, snippets_share_frames
from ..storage.workdir import MemoryStore
from ..video.reading import as_rgb_frames, is_still, iter_frames, probe, processing_size
from ..weights import default_model
from . import codec, inference, stages
from .attention import enable_multi_frame_attention
from .checkpoint import encode_empty_prompt, load_components, resolve_checkpoint
from .digest import weights_digest
from .loading import read_model_defaults
from .progress import Report
from .refine import refine


@dataclass
class FrameSource:
    """Frames to process, decoded on demand so a long video never has to be in memory.

    Attributes
    ----------
    n_frames, height, width : int
        How many frames and their size (all frames have it).
    frames : callable
        ``frames(first)`` iterates uint8 [H, W, 3] RGB frames from index ``first`` to the end; it is called again
        for every pass (e.g. a resumed run starts decoding where the last one stopped).
    """

    n_frames: int
    height: int
    width: int
    frames: Callable[[int], Iterator[np.ndarray]]


@dataclass
class RollingDepthOutput:
    """What one pipeline call returns.

    Attributes
    ----------
    depth : np.ndarray or NpyArray
        [N, H, W] float32 relative INVERSE depth (larger = nearer), one affine frame for the whole video, about
        [-1, 1]. H, W are the processing size, or the input size with ``restore_res``.
    depth_coaligned : np.ndarray
        [N, h, w] the co-aligned merge before refinement (equal to ``depth`` without refinement).
    uncertainty : np.ndarray or None
        [N, H, W] float32 (with ``output_uncertainty``): at every pixel, the standard deviation of the co-aligned
        predictions of the snippets that hold the frame, in the units of ``depth`` (before refinement, which does
        not change it); 0 where a frame lies in one snippet only.
    snippets : list of np.ndarray or None
        Per dilation group, the raw snippet predictions [K, L, h, w] (only with ``return_snippets``).
    groups : list of SnippetGroup
        The snippet indices that were used.
    scales, shifts : list of np.ndarray
        Per group, the co-alignment scale and shift of every snippet.
    timings : dict
        Seconds spent in each stage.
    """

    depth: np.ndarray
    depth_coaligned: np.ndarray
    snippets: list[np.ndarray] | None
    groups: list[SnippetGroup]
    scales: list[np.ndarray]
    shifts: list[np.ndarray]
    timings: dict[str, float]
    uncertainty: np.ndarray | None = None


class RollingDepthPipeline(DiffusionPipeline):
    """Video depth with a multi-frame Marigold-style model run on dilated rolling snippets.

    Parameters
    ----------
    unet : UNet2DConditionModel
        Depth UNet with 8 input channels (RGB latent ++ noisy depth latent); its self-attention is made multi-frame.
    vae : AutoencoderKL
        Encodes RGB frames and depth maps, decodes depth latents.
    scheduler : DDIMScheduler
        v-prediction, trailing timesteps, zero terminal SNR (as in the checkpoint).
    text_encoder, tokenizer
        Only used once, to embed the empty prompt.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, unet, vae, scheduler, text_encoder, tokenizer, default_res: int | None = None,
                 default_refine_steps: int | None = None):
        super().__init__()
        self.register_modules(unet=unet, vae=vae, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)
        enable_multi_frame_attention(self.unet)
        for part in (self.unet, self.vae):  # NHWC convolutions: the fast path of cuDNN and of the CPU's oneDNN
            part.to(memory_format=torch.channels_last)  # (python benchmarks/channels_last_cpu.py)
        self.default_res = default_res
        self.default_refine_steps = default_refine_steps  # what presets that refine use instead (rolldepth.json)
        self._empty_embedding: torch.Tensor | None = None
        self._weights_digest: str | None = None

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path | None = None, dtype: torch.dtype = torch.float32, device="cpu", **_
    ):
        """Load a checkpoint in diffusers layout from a local folder or a hub id (e.g. ``prs-eth/rollingdepth-v1-0``).

        With no name, the small model embedded in the package is loaded, as ``rolldepth run`` does without ``--model``.
        """
        folder = resolve_checkpoint(default_model() if name_or_path is None else name_or_path)
        components = load_components(folder, dtype=dtype, device=device)
        defaults = read_model_defaults(folder)
        return cls(**components, default_res=defaults.get("processing_res"),
                   default_refine_steps=defaults.get("refine_steps"))

    # ----------------------------------------------------------------------------------------------------------
    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Image sides are padded to multiples of this: the VAE's factor only, as diffusers' Marigold does.

        The UNet takes any latent size (its up-sampling follows the skip connections' sizes), so a 768x432 frame
        reaches it as a 96x54 latent, as in the official RollingDepth: padding to a multiple of the UNet's depth
        (768x448) would put rows of replicated content into every joint self-attention.
        """
        return self.vae_factor

    @property
    def empty_embedding(self) -> torch.Tensor:
        if self._empty_embedding is None:
            self._empty_embedding = encode_empty_prompt(self.tokenizer, self.text_encoder).to(
                self.device, self.unet.dtype
            )
            if self.text_encoder.device.type == "cuda":  # used once: give its GPU memory to the UNet's batches
                self.text_encoder.to("cpu")
        return self._empty_embedding

    def weights_digest(self) -> str:
        """A short fingerprint of the weights, scheduler and prompt embedding, computed once per pipeline: a resumed
        run must only reuse cached predictions of the same model (see :func:`.digest.weights_digest`)."""
        if self._weights_digest is None:
            self._weights_digest = weights_digest(self)
        return self._weights_digest

    def resolve_res(self, processing_res: int | None) -> int:
        """The processing resolution: as given, else the checkpoint's recommendation, else 768."""
        res = self.default_res if processing_res is None else processing_res
        return 768 if res is None else int(res)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """[C, h, w] of the RGB latent of one frame of the processing size (after padding)."""
        m, f = self.size_multiple, self.vae_factor
        return (
            int(self.vae.config.latent_channels),
            (height + -height % m) // f,
            (width + -width % m) // f,
        )

    # ----------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, frames, **options) -> RollingDepthOutput:
        """Estimate a temporally consistent depth video from ``frames``: a video file or image-sequence folder
        (decoded as the stages need it, upright as ``rolldepth run`` turns it), a single image file (per-frame
        depth, whatever kernels are given, as ``rolldepth run`` does), or the frames themselves, uint8
        [N, H, W, 3] RGB or any layout :func:`~rolldepth.video.reading.as_rgb_frames` accepts (floats in [0, 1],
        [N, 3, H, W] tensors, grey, RGBA, a list of PIL images).

        Keyword arguments as for :meth:`run` (``dilations``, ``refine_steps``, ``processing_res``, ``generator``, ...).
        The intermediate arrays stay in memory here; :meth:`run` with a :class:`~rolldepth.storage.workdir.DiskStore`
        runs the same steps with them on disk (what ``rolldepth run`` does), giving the same result.
        """
        if isinstance(frames, (str, Path)):
            if is_still(Path(frames)):
                options = {**options, **PER_FRAME_KERNELS}
            info = probe(frames)
            source = FrameSource(info.n_frames, info.height, info.width, lambda first: iter_frames(frames, first))
        else:
            frames = as_rgb_frames(frames)
            source = FrameSource(len(frames), frames.shape[1], frames.shape[2], lambda first: iter(frames[first:]))
        return self.run(source, MemoryStore(), **options)

    @torch.no_grad()
    def run(
        self, source: FrameSource, store, *, dilations=(1, 25), snippet_lengths=(3,), cap_dilation: bool = True,
        refine_steps: int = 0, refine_snippet_length: int = 3, refine_start_dilation: int = 6,
        coalign_mode: str = DEFAULT_COALIGN, processing_res: int | None = None, restore_res: bool = False,
        batch_size: int | None = None, vae_batch_size: int | None = None, max_vram: float | None = None,
        generator: torch.Generator | int | None = None, return_snippets: bool = False,
        output_uncertainty: bool = False, progress: bool | Report = True, on_stage: Callable[[str], None] | None = None,
    ) -> RollingDepthOutput:
        """The pipeline on frames streamed from ``source``, intermediate arrays kept by ``store``.

        ``dilations``, ``snippet_lengths``, ``cap_dilation``: the rolling kernels, snippets of ``L`` frames spaced
        ``d`` apart for every dilation ``d``. ``refine_steps`` (0 = off), ``refine_snippet_length``,
        ``refine_start_dilation``: partial-diffusion refinement, dilations shrinking to 1. ``coalign_mode``:
        ``"official"`` (the fixed point of the official Adam procedure, solved directly) or ``"objective"`` (the
        minimum of its loss, see :mod:`rolldepth.method.coalign`). ``processing_res``: max side for inference (0 =
        native; default the checkpoint's recommendation, else 768); ``restore_res`` resizes the result back to the
        input size. ``batch_size``, ``vae_batch_size``: snippets per UNet call and frames per VAE call (default: on a
        GPU the largest that fit its free memory, or ``max_vram`` GB; on the CPU the largest up to 4 that fit its
        memory; see :mod:`rolldepth.model.vram`). ``generator``: seed of the one noise map shared by all frames.
        ``return_snippets`` keeps the raw predictions; ``output_uncertainty`` also returns how much the co-aligned
        snippets disagree at every pixel (their standard deviation, in the depth's units; Marigold's pipeline gives
        the same of its ensemble); ``progress`` shows bars, or, a function ``(what, done, total)``, is told every
        step instead (a host application's own bar; an exception raised from it stops the run); ``on_stage`` is told
        "reading frames" and "estimating depth".

        Every stage records its progress in the store and skips what an interrupted run already recorded (see
        :mod:`.stages`), so a resumed run computes exactly what an uninterrupted one would; with a
        :class:`~rolldepth.storage.workdir.DiskStore` memory does not grow with the video's length except for the
        subsampled co-alignment data, the frame-to-snippet bookkeeping and, with refinement, the video's latents.
        Arrays in the output are the store's (``NpyArray`` for a ``DiskStore``).
        """
        if (batch_size is not None and batch_size < 1) or (vae_batch_size is not None and vae_batch_size < 1):
            raise UserError("batch sizes must be >= 1")
        if coalign_mode not in COALIGN_SOLVERS:
            raise UserError(f"coalign_mode must be one of {', '.join(COALIGN_SOLVERS)}, got {coalign_mode!r}")
        kernels = stages.Kernels(dilations, snippet_lengths, cap_dilation, refine_steps, refine_snippet_length,
                                 refine_start_dilation)
        n_frames = int(store.get("frames", source.n_frames))
        groups = kernels.groups(n_frames)
        if output_uncertainty and not snippets_share_frames(group.snippet_len for group in groups):
            raise UserError("the uncertainty is the disagreement of the snippets that hold a frame, and snippets of "
                            "one frame (the per-frame kernel, which a single image gets) never share one: use "
                            "snippets of 2 or more frames")
        if isinstance(generator, int):
            generator = torch.Generator().manual_seed(generator)
        res = self.resolve_res(processing_res)
        size = processing_size(source.height, source.width, res)
        check_coalign_size(*size)  # before any model work, not after it
        timings: dict[str, float] = {}
        batch, vae_batch = stages.batch_sizes(self, store, kernels, size, batch_size, vae_batch_size, max_vram)

        with stages.timed(timings, "encode"):  # 1. frames streamed in VAE batches, encoded once each
            if on_stage:
                on_stage("reading frames")
            latents, n_frames, groups = stages.encode_video(self, source, store, res, size, n_frames, groups,
                                                            kernels, vae_batch, progress)
        with stages.timed(timings, "snippets"):  # 2. one-step snippet inference; one noise map for every frame
            if on_stage:
                on_stage("estimating depth")
            noise = inference.shared_noise(self, latents.shape[1:], generator)
            snippets = stages.predict_groups(self, store, latents, noise, groups, size, batch, vae_batch, progress,
                                             timings)
        with stages.timed(timings, "coalign"):  # 3. co-alignment, 4. merge and renormalisation
            coaligned, scales, shifts = stages.align_and_merge(store, snippets, groups, n_frames, size, coalign_mode)
        uncertainty = None
        if output_uncertainty:
            with stages.timed(timings, "uncertainty"):  # 4b. the snippets' disagreement about each pixel
                uncertainty = stages.snippet_uncertainty(store, snippets, groups, n_frames, size)
        depth = coaligned
        if refine_steps > 0:
            with stages.timed(timings, "refine"):  # 5. partial diffusion of the merged video
                depth = stages.refine_video(self, store, coaligned, latents, noise, kernels, n_frames, size, batch,
                                            vae_batch, progress)
        if restore_res and size != (source.height, source.width):
            depth = stages.restore_size(store, depth, n_frames, (source.height, source.width))
            if uncertainty is not None:
                uncertainty = stages.restore_size(store, uncertainty, n_frames, (source.height, source.width),
                                                  key="uncertainty_restored")
        return RollingDepthOutput(
            depth=depth, depth_coaligned=coaligned, snippets=snippets if return_snippets else None, groups=groups,
            scales=scales, shifts=shifts, timings=timings, uncertainty=uncertainty,
        )

    # ---------------------------------------------------------------------------------------------------------
    # The model steps, as methods so that a test or a subclass can replace one (see .codec, .inference, .refine).
    def encode_frames(self, frames, res: int, out, start: int = 0, batch: int = 4, progress: bool | Report = True,
                      on_chunk: Callable[[int], None] | None = None) -> int:
        """Streamed uint8 RGB frames into latents ``out[start:]`` (see :func:`.codec.encode_frames`)."""
        return codec.encode_frames(self, frames, res, out, start, batch, progress, on_chunk)

    def encode(self, images: torch.Tensor, batch: int, progress: bool | Report, desc: str) -> torch.Tensor:
        """[N, 3, H, W] in [-1, 1] -> scaled latent means (see :func:`.codec.encode`)."""
        return codec.encode(self, images, batch, progress, desc)

    def decode(self, latents: torch.Tensor, size: tuple[int, int], batch: int) -> np.ndarray:
        """Depth latents [M, 4, h, w] -> depth [M, H, W] float32 (see :func:`.codec.decode`)."""
        return codec.decode(self, latents, size, batch)

    def denoise(self, rgb_latents, depth_latents, timestep, n_frames: int) -> torch.Tensor:
        """One DDIM step of the depth latents of whole snippets (see :func:`.inference.denoise`)."""
        return inference.denoise(self, rgb_latents, depth_latents, timestep, n_frames)

    def predict_snippets(self, rgb_latents, noise, indices, batch, vae_batch, size, progress, **kwargs) -> np.ndarray:
        """One-step prediction of every snippet of a group (see :func:`.inference.predict_snippets`)."""
        return inference.predict_snippets(self, rgb_latents, noise, indices, batch, vae_batch, size, progress, **kwargs)

    def refine(self, depth, rgb_latents, noise, steps, length, start_dilation, cap, batch, vae_batch, progress,
               out=None):
        """Partial-diffusion refinement of the merged video (see :func:`.refine.refine`)."""
        return refine(self, depth, rgb_latents, noise, steps, length, start_dilation, cap, batch, vae_batch,
                      progress, out)
