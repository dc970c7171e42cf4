"""RollingDepthPipeline: snippets -> co-alignment -> merge -> optional refinement.

One readable ``__call__`` in the diffusers style; the math lives in small pure modules (``snippets``, ``coalign``,
``merge``) and the model parts are passed in (``unet``, ``vae``, ``scheduler``, ``text_encoder``, ``tokenizer``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from tqdm.auto import tqdm

from .attention import enable_multi_frame_attention
from .checkpoint import encode_empty_prompt, load_components, resolve_checkpoint
from ..method.coalign import COALIGN_SOLVERS, DEFAULT_COALIGN, subsample
from ..errors import UserError
from ..method.merge import global_min, merge_frames, renormalise
from ..method.snippets import SnippetGroup, build_snippet_groups, check_refine_coverage, refine_dilations, snippet_indices
from ..video.reading import processing_size, resize_depth, resize_frames
from .vram import plan_batches
from ..weights import default_model
from ..storage.workdir import MemoryStore, rows_in_blocks

log = logging.getLogger(__name__)

REFINE_SKIP_RATIO = 0.5  # refinement starts half-way down the noise schedule (t=499 of 1000)


def read_model_defaults(folder: Path) -> dict:
    """The optional ``rolldepth.json`` of a checkpoint: inference defaults its authors recommend (e.g. the small
    embedded model's ``processing_res``, far below the 768 px that suits the full SD2-based models)."""
    path = Path(folder) / "rolldepth.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None


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

    def __init__(self, unet, vae, scheduler, text_encoder, tokenizer, default_res: int | None = None):
        super().__init__()
        self.register_modules(unet=unet, vae=vae, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)
        enable_multi_frame_attention(self.unet)
        if self.unet.device.type == "cuda":  # NHWC convolutions: cuDNN's fast path for the UNet and the VAE
            for part in (self.unet, self.vae):
                part.to(memory_format=torch.channels_last)
        self.default_res = default_res
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
        return cls(**components, default_res=read_model_defaults(folder).get("processing_res"))

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

    def _sync(self) -> None:
        """Wait for queued GPU work, so that a stage's seconds are its own."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def weights_digest(self) -> str:
        """A short fingerprint of the weights, scheduler and prompt embedding, computed once per pipeline.

        A resumed run must only reuse cached predictions of the same model. Hashing every weight of an SD-sized
        UNet costs seconds, so each tensor contributes its name, shape, dtype and a strided sample of its values:
        any retrained or swapped model changes it.
        """
        if self._weights_digest is None:
            digest = hashlib.sha1()
            for part in ("unet", "vae"):
                for name, tensor in getattr(self, part).state_dict().items():
                    flat = tensor.detach().reshape(-1)
                    sample = flat[:: max(1, flat.numel() // 4096)].float().cpu().numpy()
                    digest.update(f"{part}.{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
                    digest.update(sample.tobytes())
            digest.update(self.empty_embedding.float().cpu().numpy().tobytes())
            digest.update(json.dumps(dict(self.scheduler.config), sort_keys=True, default=str).encode())
            self._weights_digest = digest.hexdigest()
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
    def __call__(
        self,
        frames: np.ndarray,
        *,
        dilations=(1, 25),
        snippet_lengths=(3,),
        cap_dilation: bool = True,
        refine_steps: int = 0,
        refine_snippet_length: int = 3,
        refine_start_dilation: int = 6,
        coalign_mode: str = DEFAULT_COALIGN,
        processing_res: int | None = None,
        restore_res: bool = False,
        batch_size: int | None = None,
        vae_batch_size: int | None = None,
        max_vram: float | None = None,
        generator: torch.Generator | int | None = None,
        return_snippets: bool = False,
        progress: bool = True,
    ) -> RollingDepthOutput:
        """Estimate a temporally consistent depth video.

        Parameters
        ----------
        frames : np.ndarray
            [N, H, W, 3] uint8 RGB frames.
        dilations, snippet_lengths, cap_dilation
            The rolling kernels: snippets of ``L`` frames spaced ``d`` apart, for every dilation ``d``.
        refine_steps, refine_snippet_length, refine_start_dilation
            Partial-diffusion refinement (0 steps = off), dilations shrinking from the start value to 1.
        coalign_mode : str
            ``"official"``: the fixed point the official Adam procedure converges to (solved directly);
            ``"objective"``: the minimum of the same loss (see :mod:`rolldepth.coalign`).
        processing_res : int, optional
            Max side used for inference (0 = native); default: the checkpoint's recommendation, else 768.
        restore_res : bool
            Resize the result back to the input size.
        batch_size, vae_batch_size : int, optional
            Snippets per UNet call and frames per VAE call; default: on a GPU the largest that fit its free memory
            (measured, see :mod:`rolldepth.vram`), on the CPU 4.
        max_vram : float, optional
            GB of GPU memory the automatic batch sizes may plan for (e.g. to leave room for other programs).
        generator : torch.Generator or int, optional
            Seed of the one noise map shared by all frames.
        return_snippets : bool
            Keep the raw snippet predictions in the output.
        progress : bool
            Show progress bars.

        Notes
        -----
        Everything stays in memory here; :meth:`run` with a :class:`~rolldepth.workdir.DiskStore` runs the same
        steps with the intermediate arrays on disk (what ``rolldepth run`` does), giving the same result.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise UserError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {list(frames.shape)}")
        source = FrameSource(len(frames), frames.shape[1], frames.shape[2], lambda first: iter(frames[first:]))
        return self.run(
            source, MemoryStore(), dilations=dilations, snippet_lengths=snippet_lengths, cap_dilation=cap_dilation,
            refine_steps=refine_steps, refine_snippet_length=refine_snippet_length,
            refine_start_dilation=refine_start_dilation, coalign_mode=coalign_mode, processing_res=processing_res,
            restore_res=restore_res, batch_size=batch_size, vae_batch_size=vae_batch_size, max_vram=max_vram,
            generator=generator, return_snippets=return_snippets, progress=progress,
        )

    @torch.no_grad()
    def run(
        self,
        source: FrameSource,
        store,
        *,
        dilations=(1, 25),
        snippet_lengths=(3,),
        cap_dilation: bool = True,
        refine_steps: int = 0,
        refine_snippet_length: int = 3,
        refine_start_dilation: int = 6,
        coalign_mode: str = DEFAULT_COALIGN,
        processing_res: int | None = None,
        restore_res: bool = False,
        batch_size: int | None = None,
        vae_batch_size: int | None = None,
        max_vram: float | None = None,
        generator: torch.Generator | int | None = None,
        return_snippets: bool = False,
        progress: bool = True,
        on_stage: Callable[[str], None] | None = None,
    ) -> RollingDepthOutput:
        """The pipeline on frames streamed from ``source``, intermediate arrays kept by ``store``.

        With a :class:`~rolldepth.workdir.DiskStore` memory does not grow with the video's length except for the
        subsampled co-alignment data (1/100 of the predictions), the frame-to-snippet bookkeeping and, with
        refinement, the latents of the whole video (which refinement keeps in memory: 1/16 of the depth's size for
        an SD VAE). Every stage records its progress in the store (frames encoded, snippets predicted per group,
        the alignment, finished arrays) and skips what an earlier, interrupted run already recorded; snippet
        batches and VAE batches start at the same indices either way, so a resumed run computes exactly what an
        uninterrupted one would. Arguments as for :meth:`__call__`; ``on_stage`` is told "reading frames" and
        "estimating depth" as those stages start. Arrays in the output are the store's (``NpyArray`` for a
        ``DiskStore``).
        """
        if (batch_size is not None and batch_size < 1) or (vae_batch_size is not None and vae_batch_size < 1):
            raise UserError("batch sizes must be >= 1")
        if coalign_mode not in COALIGN_SOLVERS:
            raise UserError(f"coalign_mode must be one of {', '.join(COALIGN_SOLVERS)}, got {coalign_mode!r}")
        n_frames = int(store.get("frames", source.n_frames))
        groups = build_snippet_groups(n_frames, dilations, snippet_lengths, cap=cap_dilation)
        if refine_steps > 0:
            check_refine_coverage(refine_steps, refine_start_dilation, n_frames, refine_snippet_length, cap_dilation)
        if isinstance(generator, int):
            generator = torch.Generator().manual_seed(generator)
        res = self.resolve_res(processing_res)
        height, width = processing_size(source.height, source.width, res)
        timings: dict[str, float] = {}

        # Batch sizes: planned once per run and recorded, so a resumed run batches exactly as the first one did.
        batches = store.get("batches")
        if batches is None:
            longest = max([group.snippet_len for group in groups] + [refine_snippet_length if refine_steps else 1])
            plan = plan_batches(self, self.latent_shape(height, width)[1:], longest, batch_size, vae_batch_size,
                                max_vram)
            batches = [plan.batch_size, plan.vae_batch_size]
            store.set("batches", batches)
        batch_size, vae_batch_size = (int(b) for b in batches)

        # 1. Frames streamed in VAE batches: resized to the processing size, encoded once each.
        tic = time.perf_counter()
        if on_stage:
            on_stage("reading frames")
        latents = store.array("latents", (source.n_frames, *self.latent_shape(height, width)))
        done = int(store.get("encoded", 0))
        if done < n_frames:
            encoded = self.encode_frames(
                source.frames(done), res, latents, start=done, batch=vae_batch_size, progress=progress,
                on_chunk=lambda k: store.set("encoded", k),
            )
            if encoded < n_frames:  # a damaged file: decoding stopped early
                log.warning("only %d of %d frames could be decoded; estimating depth for those", encoded, n_frames)
                n_frames = encoded
                groups = build_snippet_groups(n_frames, dilations, snippet_lengths, cap=cap_dilation)
                if refine_steps > 0:
                    check_refine_coverage(refine_steps, refine_start_dilation, n_frames, refine_snippet_length,
                                          cap_dilation)
                store.set("frames", n_frames)
        if len(latents) != n_frames:
            latents = latents[:n_frames] if isinstance(latents, np.ndarray) else latents.head(n_frames)
        timings["encode"] = time.perf_counter() - tic

        # 2. One-step snippet inference, snippets batched; one noise map shared by every frame.
        tic = time.perf_counter()
        if on_stage:
            on_stage("estimating depth")
        noise = torch.randn(latents.shape[1:], generator=generator, dtype=torch.float32)
        noise = noise.to(self.device, self.unet.dtype)
        snippets = []
        for g, group in enumerate(groups):
            key = f"snippets{g}"
            preds = store.array(key, (len(group), group.snippet_len, height, width))
            done = int(store.get(key, 0))
            if done < len(group):
                self.predict_snippets(
                    latents, noise, group.indices, batch_size, vae_batch_size, (height, width), progress,
                    out=preds, start=done, on_batch=lambda k, key=key: store.set(key, k), timings=timings,
                )
            snippets.append(preds)
        timings["snippets"] = time.perf_counter() - tic

        # 3. Co-alignment on subsampled, min-shifted predictions; 4. merge frame by frame, renormalise in place.
        tic = time.perf_counter()
        alignment = store.get("alignment")
        if alignment is None:
            offset = global_min(snippets)
            result = COALIGN_SOLVERS[coalign_mode]([subsampled(p, offset) for p in snippets], groups, n_frames)
            log.info("co-alignment: objective %.5f after %d iterations", result.objective, result.iterations)
            alignment = dict(offset=offset, scales=[s.tolist() for s in result.scales],
                             shifts=[t.tolist() for t in result.shifts])
            store.set("alignment", alignment)
        offset = float(alignment["offset"])
        scales = [np.asarray(s, dtype=np.float64) for s in alignment["scales"]]
        shifts = [np.asarray(t, dtype=np.float64) for t in alignment["shifts"]]
        depth = coaligned = store.array("merged", (n_frames, height, width))
        if not store.get("merged"):
            merge_frames(snippets, groups, n_frames, scales, shifts, offset, out=coaligned)
            renormalise(coaligned, out=coaligned)
            store.set("merged", True)
        timings["coalign"] = time.perf_counter() - tic

        # 5. Optional refinement: re-noise the merged video half-way and denoise it with shrinking snippets.
        if refine_steps > 0:
            tic = time.perf_counter()
            depth = store.array("refined", (n_frames, height, width))
            if not store.get("refined"):
                self.refine(
                    coaligned, latents, noise, refine_steps, refine_snippet_length, refine_start_dilation,
                    cap_dilation, batch_size, vae_batch_size, progress, out=depth,
                )
                store.set("refined", True)
            timings["refine"] = time.perf_counter() - tic

        if restore_res and (height, width) != (source.height, source.width):
            restored = store.array("restored", (n_frames, source.height, source.width))
            if not store.get("restored"):
                for first, block in rows_in_blocks(depth):
                    restored[first : first + len(block)] = resize_depth(block, (source.height, source.width))
                store.set("restored", True)
            depth = restored
        return RollingDepthOutput(
            depth=depth,
            depth_coaligned=coaligned,
            snippets=snippets if return_snippets else None,
            groups=groups,
            scales=scales,
            shifts=shifts,
            timings=timings,
        )

    # ----------------------------------------------------------------------------------------------------------
    def _pad(self, images: torch.Tensor) -> torch.Tensor:
        """Replicate-pad [N, C, h, w] on the bottom/right to multiples of the VAE's factor (a no-op for the
        multiples of 8 that most processing sizes are)."""
        m = self.size_multiple
        pad_h, pad_w = -images.shape[-2] % m, -images.shape[-1] % m
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
        return images

    def _encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        """One VAE call: [B, 3, H, W] in [-1, 1] -> scaled latent means (posterior mean, as in Marigold)."""
        images = images.to(self.device, self.vae.dtype)
        return self.vae.encode(images).latent_dist.mean * self.vae.config.scaling_factor

    def encode(self, images: torch.Tensor, batch: int, progress: bool, desc: str) -> torch.Tensor:
        """[N, 3, H, W] in [-1, 1] -> scaled latent means [N, 4, H/f, W/f], ``batch`` images per VAE call."""
        out = []
        for start in tqdm(range(0, len(images), batch), desc=desc, disable=not progress, leave=False):
            out.append(self._encode_batch(images[start : start + batch]))
        return torch.cat(out)

    def encode_frames(
        self, frames: Iterable[np.ndarray], res: int, out, start: int = 0, batch: int = 4, progress: bool = True,
        on_chunk: Callable[[int], None] | None = None,
    ) -> int:
        """Encode streamed uint8 RGB frames into ``out[start:]`` (float32 latents), ``batch`` frames per VAE call.

        Only one batch of frames is held at a time. ``on_chunk`` is called with the number of frames done after
        each batch (resumable runs record it). Returns the index after the last frame encoded.
        """
        index, chunk = start, []
        bar = tqdm(total=len(out), initial=start, desc="Encoding frames", disable=not progress, leave=False)

        def flush() -> None:
            nonlocal index
            latents = self._encode_batch(self._pad(resize_frames(np.stack(chunk), res)))
            out[index : index + len(chunk)] = latents.float().cpu().numpy()
            index += len(chunk)
            bar.update(len(chunk))
            chunk.clear()
            if on_chunk:
                on_chunk(index)

        for frame in frames:
            if index + len(chunk) >= len(out):
                break
            chunk.append(frame)
            if len(chunk) == batch:
                flush()
        if chunk:
            flush()
        bar.close()
        return index

    def decode(self, latents: torch.Tensor, size: tuple[int, int], batch: int) -> np.ndarray:
        """Depth latents [M, 4, h, w] -> depth [M, H, W] float32: mean of the 3 decoded channels, padding cropped."""
        out = []
        for start in range(0, len(latents), batch):
            chunk = latents[start : start + batch] / self.vae.config.scaling_factor
            image = self.vae.decode(chunk.to(self.vae.dtype)).sample.float().mean(dim=1)
            out.append(image[:, : size[0], : size[1]].cpu().numpy())
        return np.concatenate(out)

    def _gather(self, latents, index: np.ndarray) -> torch.Tensor:
        """Rows ``index`` of stored latents (ndarray, NpyArray or tensor) as a tensor on the device."""
        if isinstance(latents, torch.Tensor):
            return latents[torch.from_numpy(np.asarray(index)).to(latents.device)]
        return torch.from_numpy(np.ascontiguousarray(latents[np.asarray(index)])).to(self.device, self.vae.dtype)

    def denoise(self, rgb_latents, depth_latents, timestep, n_frames: int) -> torch.Tensor:
        """One DDIM step of the depth latents of whole snippets ([(B*L), 4, h, w], frames of a snippet consecutive)."""
        unet_in = torch.cat([rgb_latents, depth_latents], dim=1).to(self.unet.dtype)
        context = self.empty_embedding.expand(len(unet_in), -1, -1)
        v_pred = self.unet(
            unet_in, timestep, encoder_hidden_states=context, cross_attention_kwargs={"num_frames": n_frames}
        ).sample
        return self.scheduler.step(v_pred, timestep, depth_latents).prev_sample

    def predict_snippets(
        self, rgb_latents, noise, indices, batch, vae_batch, size, progress, *, out=None, start: int = 0,
        on_batch: Callable[[int], None] | None = None, timings: dict[str, float] | None = None,
    ) -> np.ndarray:
        """One-step prediction at t=999 for every snippet of a group: [K, L, H, W] float32 inverse depth.

        Written into ``out`` (any array indexed by row slices) from snippet ``start`` on, which must be a multiple
        of ``batch`` (a resumed run starts at the batch after the last one recorded); ``on_batch`` is called with
        the number of snippets done after each batch. ``timings`` (if given) accumulates the seconds of the UNet
        (``snippets_unet``) and of decoding (``snippets_decode``).
        """
        n_snippets, length = indices.shape
        self.scheduler.set_timesteps(1, device=self.device)
        timestep = self.scheduler.timesteps[0]
        if out is None:
            out = np.empty((n_snippets, length, *size), dtype=np.float32)
        desc = f"Snippets ({length} frames)"
        bar = tqdm(total=n_snippets, initial=start, desc=desc, disable=not progress, leave=False)
        for first in range(start, n_snippets, batch):
            idx = indices[first : first + batch].reshape(-1)
            tic = time.perf_counter()
            latents = self.denoise(self._gather(rgb_latents, idx), noise.expand(len(idx), -1, -1, -1), timestep, length)
            self._sync()
            toc = time.perf_counter()
            out[first : first + batch] = self.decode(latents, size, vae_batch).reshape(-1, length, *size)
            if timings is not None:
                timings["snippets_unet"] = timings.get("snippets_unet", 0.0) + toc - tic
                timings["snippets_decode"] = timings.get("snippets_decode", 0.0) + time.perf_counter() - toc
            bar.update(len(idx) // length)
            if on_batch:
                on_batch(min(first + batch, n_snippets))
        bar.close()
        return out

    def refine(self, depth, rgb_latents, noise, steps, length, start_dilation, cap, batch, vae_batch, progress,
               out=None):
        """Partial diffusion from t=499 with snippet dilations shrinking to 1; after EVERY step each frame's latent
        is the mean over all snippets that contain it (the official refinement).

        ``depth`` is read and ``out`` written one VAE batch at a time, but the latents of the whole video stay in
        memory while refining (every step touches all of them).
        """
        n_frames, height, width = depth.shape
        total = int(steps / REFINE_SKIP_RATIO)
        if total > self.scheduler.config.num_train_timesteps:
            raise UserError(f"too many refinement steps: {steps}")
        self.scheduler.set_timesteps(total, device=self.device)
        timesteps = self.scheduler.timesteps[int(total * REFINE_SKIP_RATIO) :]
        schedule = refine_dilations(len(timesteps), start_dilation, n_frames, length, cap=cap)

        rgb_all = self._gather(rgb_latents, np.arange(n_frames))
        clean = []
        for first in tqdm(range(0, n_frames, vae_batch), desc="Encoding depth", disable=not progress, leave=False):
            image = torch.from_numpy(np.asarray(depth[first : first + vae_batch], dtype=np.float32))
            clean.append(self._encode_batch(self._pad(image[:, None].expand(-1, 3, -1, -1))))
        clean = torch.cat(clean)
        noise_all = noise.expand(n_frames, -1, -1, -1)
        latents = self.scheduler.add_noise(clean, noise_all.to(clean.dtype), timesteps[:1])

        for timestep, dilation in tqdm(
            list(zip(timesteps, schedule)), desc="Refining", disable=not progress, leave=False
        ):
            indices = snippet_indices(n_frames, dilation, min(length, n_frames))
            total_latents = torch.zeros_like(latents)
            counts = torch.zeros(n_frames, dtype=latents.dtype, device=latents.device)
            for start in range(0, len(indices), batch):
                idx = torch.from_numpy(indices[start : start + batch].reshape(-1)).to(latents.device)
                stepped = self.denoise(rgb_all[idx], latents[idx], timestep, indices.shape[1])
                total_latents.index_add_(0, idx, stepped.to(latents.dtype))
                counts.index_add_(0, idx, torch.ones(len(idx), dtype=latents.dtype, device=latents.device))
            latents = total_latents / counts[:, None, None, None]
        if out is None:
            out = np.empty((n_frames, height, width), dtype=np.float32)
        for first in range(0, n_frames, vae_batch):
            out[first : first + vae_batch] = self.decode(latents[first : first + vae_batch], (height, width), vae_batch)
        return out


def subsampled(preds, offset: float) -> np.ndarray:
    """``subsample(preds - offset)`` as a compact array, read block by block (``preds`` may be on disk)."""
    return np.concatenate([subsample(block - offset) for _, block in rows_in_blocks(preds)])
