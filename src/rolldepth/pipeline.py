"""RollingDepthPipeline: snippets -> co-alignment -> merge -> optional refinement.

One readable ``__call__`` in the diffusers style; the math lives in small pure modules (``snippets``, ``coalign``,
``merge``) and the model parts are passed in (``unet``, ``vae``, ``scheduler``, ``text_encoder``, ``tokenizer``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from tqdm.auto import tqdm

from .attention import enable_multi_frame_attention
from .checkpoint import encode_empty_prompt, load_components, resolve_checkpoint
from .coalign import coalign, subsample
from .errors import UserError
from .merge import global_min, merge_frames, renormalise
from .snippets import SnippetGroup, build_snippet_groups, refine_dilations, snippet_indices
from .video_io import resize_depth, resize_frames

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
class RollingDepthOutput:
    """What one pipeline call returns.

    Attributes
    ----------
    depth : np.ndarray
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
        self.default_res = default_res
        self._empty_embedding: torch.Tensor | None = None

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, dtype: torch.dtype = torch.float32, device="cpu", **_):
        """Load a checkpoint in diffusers layout from a local folder or a hub id (e.g. ``prs-eth/rollingdepth-v1-0``)."""
        folder = resolve_checkpoint(name_or_path)
        components = load_components(folder, dtype=dtype, device=device)
        return cls(**components, default_res=read_model_defaults(folder).get("processing_res"))

    # ----------------------------------------------------------------------------------------------------------
    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this for the VAE and every UNet downsampling to line up."""
        return self.vae_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def empty_embedding(self) -> torch.Tensor:
        if self._empty_embedding is None:
            self._empty_embedding = encode_empty_prompt(self.tokenizer, self.text_encoder).to(
                self.device, self.unet.dtype
            )
        return self._empty_embedding

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
        processing_res: int | None = None,
        restore_res: bool = False,
        batch_size: int = 4,
        vae_batch_size: int = 4,
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
        processing_res : int, optional
            Max side used for inference (0 = native); default: the checkpoint's recommendation, else 768.
        restore_res : bool
            Resize the result back to the input size.
        batch_size, vae_batch_size : int
            Snippets per UNet call and frames per VAE call.
        generator : torch.Generator or int, optional
            Seed of the one noise map shared by all frames.
        return_snippets : bool
            Keep the raw snippet predictions in the output.
        progress : bool
            Show progress bars.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise UserError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {list(frames.shape)}")
        if batch_size < 1 or vae_batch_size < 1:
            raise UserError("batch sizes must be >= 1")
        n_frames, in_h, in_w = frames.shape[:3]
        if isinstance(generator, int):
            generator = torch.Generator().manual_seed(generator)
        groups = build_snippet_groups(n_frames, dilations, snippet_lengths, cap=cap_dilation)
        timings: dict[str, float] = {}

        # 1. Frames -> processing size -> RGB latents, encoded once per frame.
        tic = time.perf_counter()
        res = self.default_res if processing_res is None else processing_res
        res = 768 if res is None else res
        rgb = resize_frames(frames, res)
        height, width = rgb.shape[-2:]
        rgb_latents = self.encode(self._pad(rgb), vae_batch_size, progress, "Encoding frames")
        timings["encode"] = time.perf_counter() - tic

        # 2. One-step snippet inference, snippets batched; one noise map shared by every frame.
        tic = time.perf_counter()
        noise = torch.randn(rgb_latents.shape[1:], generator=generator, dtype=torch.float32)
        noise = noise.to(self.device, self.unet.dtype)
        snippets = [
            self.predict_snippets(rgb_latents, noise, g.indices, batch_size, vae_batch_size, (height, width), progress)
            for g in groups
        ]
        timings["snippets"] = time.perf_counter() - tic

        # 3. Co-alignment on subsampled, min-shifted predictions; 4. merge at full resolution, renormalise.
        tic = time.perf_counter()
        offset = global_min(snippets)
        result = coalign([subsample(s - offset) for s in snippets], groups, n_frames)
        depth = renormalise(merge_frames(snippets, groups, n_frames, result.scales, result.shifts, offset))
        timings["coalign"] = time.perf_counter() - tic
        log.info("co-alignment: objective %.5f after %d iterations", result.objective, result.iterations)
        coaligned = depth

        # 5. Optional refinement: re-noise the merged video half-way and denoise it with shrinking snippets.
        if refine_steps > 0:
            tic = time.perf_counter()
            depth = self.refine(
                depth, rgb_latents, noise, refine_steps, refine_snippet_length, refine_start_dilation,
                cap_dilation, batch_size, vae_batch_size, progress,
            )
            timings["refine"] = time.perf_counter() - tic

        if restore_res and (height, width) != (in_h, in_w):
            depth = resize_depth(depth, (in_h, in_w))
        return RollingDepthOutput(
            depth=np.ascontiguousarray(depth, dtype=np.float32),
            depth_coaligned=coaligned,
            snippets=snippets if return_snippets else None,
            groups=groups,
            scales=result.scales,
            shifts=result.shifts,
            timings=timings,
        )

    # ----------------------------------------------------------------------------------------------------------
    def _pad(self, images: torch.Tensor) -> torch.Tensor:
        """Replicate-pad [N, C, h, w] on the bottom/right to sides the VAE and UNet can halve cleanly."""
        m = self.size_multiple
        pad_h, pad_w = -images.shape[-2] % m, -images.shape[-1] % m
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
        return images

    def encode(self, images: torch.Tensor, batch: int, progress: bool, desc: str) -> torch.Tensor:
        """[N, 3, H, W] in [-1, 1] -> scaled latent means [N, 4, H/f, W/f] (posterior mean, as in Marigold)."""
        out = []
        for start in tqdm(range(0, len(images), batch), desc=desc, disable=not progress, leave=False):
            chunk = images[start : start + batch].to(self.device, self.vae.dtype)
            out.append(self.vae.encode(chunk).latent_dist.mean * self.vae.config.scaling_factor)
        return torch.cat(out)

    def decode(self, latents: torch.Tensor, size: tuple[int, int], batch: int) -> np.ndarray:
        """Depth latents [M, 4, h, w] -> depth [M, H, W] float32: mean of the 3 decoded channels, padding cropped."""
        out = []
        for start in range(0, len(latents), batch):
            chunk = latents[start : start + batch] / self.vae.config.scaling_factor
            image = self.vae.decode(chunk.to(self.vae.dtype)).sample.float().mean(dim=1)
            out.append(image[:, : size[0], : size[1]].cpu().numpy())
        return np.concatenate(out)

    def denoise(self, rgb_latents, depth_latents, timestep, n_frames: int) -> torch.Tensor:
        """One DDIM step of the depth latents of whole snippets ([(B*L), 4, h, w], frames of a snippet consecutive)."""
        unet_in = torch.cat([rgb_latents, depth_latents], dim=1).to(self.unet.dtype)
        context = self.empty_embedding.expand(len(unet_in), -1, -1)
        v_pred = self.unet(
            unet_in, timestep, encoder_hidden_states=context, cross_attention_kwargs={"num_frames": n_frames}
        ).sample
        return self.scheduler.step(v_pred, timestep, depth_latents).prev_sample

    def predict_snippets(self, rgb_latents, noise, indices, batch, vae_batch, size, progress) -> np.ndarray:
        """One-step prediction at t=999 for every snippet of a group: [K, L, H, W] float32 inverse depth."""
        n_snippets, length = indices.shape
        self.scheduler.set_timesteps(1, device=self.device)
        timestep = self.scheduler.timesteps[0]
        out = np.empty((n_snippets, length, *size), dtype=np.float32)
        desc = f"Snippets ({length} frames)"
        for start in tqdm(range(0, n_snippets, batch), desc=desc, disable=not progress, leave=False):
            idx = torch.from_numpy(indices[start : start + batch].reshape(-1))
            latents = self.denoise(rgb_latents[idx], noise.expand(len(idx), -1, -1, -1), timestep, length)
            out[start : start + batch] = self.decode(latents, size, vae_batch).reshape(-1, length, *size)
        return out

    def refine(self, depth, rgb_latents, noise, steps, length, start_dilation, cap, batch, vae_batch, progress):
        """Partial diffusion from t=499 with snippet dilations shrinking to 1; after EVERY step each frame's latent
        is the mean over all snippets that contain it (the official refinement)."""
        n_frames, height, width = depth.shape
        total = int(steps / REFINE_SKIP_RATIO)
        if total > self.scheduler.config.num_train_timesteps:
            raise UserError(f"too many refinement steps: {steps}")
        self.scheduler.set_timesteps(total, device=self.device)
        timesteps = self.scheduler.timesteps[int(total * REFINE_SKIP_RATIO) :]
        schedule = refine_dilations(len(timesteps), start_dilation, n_frames, length, cap=cap)

        image = torch.from_numpy(np.ascontiguousarray(depth)).float()[:, None].expand(-1, 3, -1, -1)
        clean = self.encode(self._pad(image), vae_batch, progress, "Encoding depth")
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
                stepped = self.denoise(rgb_latents[idx], latents[idx], timestep, indices.shape[1])
                total_latents.index_add_(0, idx, stepped.to(latents.dtype))
                counts.index_add_(0, idx, torch.ones(len(idx), dtype=latents.dtype, device=latents.device))
            latents = total_latents / counts[:, None, None, None]
        return self.decode(latents, (height, width), vae_batch)
