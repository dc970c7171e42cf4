"""Checkpoints in the diffusers layout: find, load, save, and build tiny ones for tests.

A RollingDepth (or Marigold) checkpoint is a folder with ``unet/ vae/ scheduler/ text_encoder/ tokenizer/`` and a
``model_index.json``, each part readable by the stock ``from_pretrained`` of its class. Nothing here is specific to
the official weights: the same functions load ``prs-eth/rollingdepth-v1-0``, the small embedded model and the tiny
random-init checkpoints the tests write, so every test runs the real loading path.

Loading is validated up front (:mod:`.layout`): a wrong folder fails with one line naming what is missing or wrong,
instead of a deep traceback from diffusers or transformers half-way through reading gigabytes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import diffusers
import httpx2
import torch
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from huggingface_hub import HfApi, get_cached_repo_tree, snapshot_download
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import (
    CachedRepoTreeNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from tokenizers import pre_tokenizers
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ..errors import UserError, connect_error, first_line
from .layout import MODEL_PARTS, PARTS, check_model_name, select_weights, validate_checkpoint

log = logging.getLogger(__name__)

PIPELINE_CLASS = "RollingDepthPipeline"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
PROMPT_LENGTH = 77  # CLIP's context length, kept by the tiny tokenizer so it behaves like the real one

# The noise schedule of Marigold / RollingDepth (SD2 betas, v-prediction, trailing timesteps, zero terminal SNR).
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="v_prediction",
    timestep_spacing="trailing",
    rescale_betas_zero_snr=True,
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
)



# ------------------------------------------------------------------------------------------------------------------
# Finding a checkpoint
# ------------------------------------------------------------------------------------------------------------------
def resolve_checkpoint(name_or_path: str | Path, local_files_only: bool = False, variant: str | None = None) -> Path:
    """The local folder of a checkpoint: a folder as given, or a hub snapshot fetched (or found in the hub cache).

    Only the files the pipeline reads are fetched: configs, the tokenizer, ``model_index.json`` and one set of
    weights per model, safetensors when the repo has them and full precision unless ``variant`` asks otherwise.

    Parameters
    ----------
    name_or_path : str or Path
        A checkpoint folder, or a hub id such as ``prs-eth/rollingdepth-v1-0``.
    local_files_only : bool
        Never touch the network, only the hub cache (also implied by ``HF_HUB_OFFLINE=1``).
    variant : str, optional
        Weight variant to fetch instead of the full-precision files, e.g. ``"fp16"``.

    Raises
    ------
    UserError
        If the name is neither a folder nor a hub id that can be fetched or found in the cache.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    check_model_name(name_or_path)  # a file, or no hub id
    name = str(name_or_path)
    offline = local_files_only or hub_offline()
    files, unreachable = list_hub_files(name, offline)
    allow = select_hub_files(name, files, variant) if files is not None else None
    try:
        folder = snapshot_download(name, allow_patterns=allow, local_files_only=unreachable is not None)
    except RepositoryNotFoundError:
        raise UserError(f"could not load model '{name}': no such model on the hub (or it is private)") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, httpx2.HTTPError) as exc:
        reason = unreachable or first_line(exc)
        raise UserError(
            f"could not load model '{name}': not a local folder and the hub could not be reached ({reason}); "
            "pass a checkpoint folder, or fetch it once with network access"
        ) from None
    return Path(folder)


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now: huggingface_hub reads it once at import, a later ``export`` must count too."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return hub_constants.HF_HUB_OFFLINE or value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def list_hub_files(repo_id: str, offline: bool) -> tuple[list[str] | None, str | None]:
    """The repo's file list and, when the hub was not asked or did not answer, why.

    Without the hub the list comes from the hub cache's record of an earlier download (``None`` if there is none),
    so a cached snapshot is still used with the same file selection.
    """
    reason = "offline mode (HF_HUB_OFFLINE or local_files_only)" if offline else hub_unreachable()
    if reason is None:
        try:
            return HfApi().list_repo_files(repo_id), None
        except (RepositoryNotFoundError, RevisionNotFoundError):
            raise UserError(f"could not load model '{repo_id}': no such model on the hub (or it is private)") from None
        except (HfHubHTTPError, OSError, httpx2.HTTPError) as exc:
            reason = first_line(exc)
    try:
        return [f.path for f in get_cached_repo_tree(repo_id)], reason
    except (CachedRepoTreeNotFoundError, OSError, ValueError):
        return None, reason


def hub_unreachable(timeout: float = 5.0) -> str | None:
    """Why the hub cannot be reached, found within ``timeout`` seconds, or None when it may be.

    huggingface_hub retries a connection that fails for about 25 s, logging each try; a machine without network
    should hear at once, in one line, and go to the cache. Behind a proxy (``HTTPS_PROXY``, ``ALL_PROXY``) the
    direct route says nothing about the hub, so nothing is probed there.
    """
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(hub_constants.ENDPOINT)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    reason = connect_error(host, port, timeout)
    return None if reason is None else f"cannot connect to {host}:{port}: {reason}"


def select_hub_files(repo_id: str, files: list[str], variant: str | None = None) -> list[str]:
    """The files of a hub repo that loading needs: configs, tokenizer, scheduler, index and one weight set per model.

    Raises
    ------
    UserError
        If the repo lacks a part, naming every missing piece (before any large download starts).
    """
    chosen = [f for f in files if f == "model_index.json" or f.startswith(("scheduler/", "tokenizer/"))]
    missing = [f"{part}/" for part in ("scheduler", "tokenizer") if not any(f.startswith(f"{part}/") for f in files)]
    for part in MODEL_PARTS:
        config = f"{part}/config.json"
        weights = select_weights([f[len(part) + 1 :] for f in files if f.startswith(f"{part}/")], variant)
        if config in files:
            chosen.append(config)
        else:
            missing.append(config)
        if weights:
            chosen += [f"{part}/{w}" for w in weights]
        else:
            missing.append(f"{part}/ weights" + (f" (variant {variant})" if variant else ""))
    if missing:
        raise UserError(f"'{repo_id}' is not a RollingDepth/Marigold checkpoint: missing {', '.join(missing)}")
    return chosen


# ------------------------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------------------------
def quiet_weight_loading() -> None:
    """Silence diffusers' and transformers' weight-loading bars, which ignore ``TQDM_DISABLE``."""
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def load_components(
    name_or_path: str | Path,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    local_files_only: bool = False,
    variant: str | None = None,
) -> dict[str, Any]:
    """Load the five parts of a checkpoint with the stock ``from_pretrained`` of each class.

    The folder is validated first (see :func:`validate_checkpoint`). Models come back in eval mode with gradients
    off: inference never trains, and training code turns on what it needs explicitly.

    Returns
    -------
    dict
        ``unet`` (UNet2DConditionModel), ``vae`` (AutoencoderKL), ``scheduler`` (DDIMScheduler, the checkpoint's
        own config as is), ``text_encoder`` (CLIPTextModel), ``tokenizer`` (CLIPTokenizer).
    """
    folder = resolve_checkpoint(name_or_path, local_files_only=local_files_only, variant=variant)
    validate_checkpoint(folder, str(name_or_path), variant)
    if os.environ.get("TQDM_DISABLE"):  # -q: the libraries' weight-loading bars ignore it
        quiet_weight_loading()
    loaders = {
        "unet": lambda p: UNet2DConditionModel.from_pretrained(p, dtype=dtype, variant=variant),
        "vae": lambda p: AutoencoderKL.from_pretrained(p, dtype=dtype, variant=variant),
        "scheduler": DDIMScheduler.from_pretrained,
        "text_encoder": lambda p: CLIPTextModel.from_pretrained(p, dtype=dtype, variant=variant),
        "tokenizer": CLIPTokenizer.from_pretrained,
    }
    components = {}
    for part, load in loaders.items():
        try:
            components[part] = load(folder / part)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise UserError(f"could not load {folder / part}: {first_line(exc)}") from None
    for part in MODEL_PARTS:
        components[part] = components[part].to(device).eval().requires_grad_(False)
    return components


@torch.no_grad()
def encode_empty_prompt(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel) -> torch.Tensor:
    """The conditioning of every RollingDepth/Marigold call: the CLIP embedding of the empty prompt, unpadded.

    ``""`` tokenizes to ``[BOS, EOS]`` without padding, so the result is ``[1, 2, D]`` (D = 1024 for SD2).
    """
    ids = tokenizer(
        "", padding="do_not_pad", truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt"
    ).input_ids
    return text_encoder(ids.to(text_encoder.device))[0]


# ------------------------------------------------------------------------------------------------------------------
# Saving and building
# ------------------------------------------------------------------------------------------------------------------
def save_components(components: dict[str, Any], path: str | Path, extra_json: dict[str, dict] | None = None) -> Path:
    """Write a checkpoint in the diffusers layout, atomically.

    Every part goes through its own ``save_pretrained`` (safetensors) into a temporary folder next to ``path``,
    which then replaces ``path`` in one rename, so a crash never leaves a half-written checkpoint behind. An
    existing ``path`` is only replaced if it is empty or a checkpoint (has ``model_index.json``).

    Parameters
    ----------
    components : dict
        ``unet``, ``vae``, ``scheduler``, ``text_encoder``, ``tokenizer``.
    path : str or Path
        The checkpoint folder to write.
    extra_json : dict, optional
        More JSON files to write at the top level, ``{filename: content}`` (e.g. ``rolldepth.json`` defaults).

    Returns
    -------
    Path
        ``path``.
    """
    target = Path(path)
    missing = [part for part in PARTS if part not in components]
    if missing:
        raise ValueError(f"components lack {', '.join(missing)}")
    is_checkpoint_or_empty = target.is_dir() and (not any(target.iterdir()) or (target / "model_index.json").exists())
    if target.exists() and not is_checkpoint_or_empty:
        raise UserError(f"refusing to overwrite {target}: it exists and is not a checkpoint folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        for part in PARTS:
            if part in MODEL_PARTS:
                components[part].save_pretrained(tmp / part, safe_serialization=True)
            else:
                components[part].save_pretrained(tmp / part)
        index = {"_class_name": PIPELINE_CLASS, "_diffusers_version": diffusers.__version__}
        index.update({part: library_and_class(components[part]) for part in PARTS})
        write_json(tmp / "model_index.json", index)
        for filename, content in (extra_json or {}).items():
            write_json(tmp / filename, content)
        match_file_modes(tmp, reference=tmp / "model_index.json")
        replace_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def library_and_class(component: Any) -> list[str]:
    """``["diffusers", "UNet2DConditionModel"]``: how ``model_index.json`` names a part."""
    return [type(component).__module__.split(".")[0], type(component).__name__]


def write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def match_file_modes(folder: Path, reference: Path) -> None:
    """Give every file under ``folder`` the permissions of ``reference`` (a file written with the user's umask).

    Some ``save_pretrained`` write weights through private temporary files (mode 0600), which would leave a
    checkpoint other users, or a packaged copy, cannot read.
    """
    mode = reference.stat().st_mode & 0o777
    for file in folder.rglob("*"):
        if file.is_file():
            file.chmod(mode)


def replace_folder(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; an old ``target`` is moved aside first and deleted only after the swap."""
    if not target.exists():
        new.rename(target)
        return
    old = new.with_suffix(".old")
    target.rename(old)
    new.rename(target)
    shutil.rmtree(old)


def build_components(
    unet_config: dict, vae_config: dict, text_config: dict, seed: int = 0, tokenizer: CLIPTokenizer | None = None
) -> dict[str, Any]:
    """Random-init parts of the real classes from configs, plus the RollingDepth DDIM scheduler and a tokenizer.

    The global torch RNG is left untouched: initialisation draws from a forked RNG seeded with ``seed``, so the
    same call gives the same weights.

    Parameters
    ----------
    unet_config, vae_config : dict
        Keyword arguments of ``UNet2DConditionModel`` / ``AutoencoderKL`` (a saved ``config.json`` works too).
    text_config : dict
        ``CLIPTextConfig`` fields. ``vocab_size``, ``max_position_embeddings`` and the special token ids default
        to the tokenizer's.
    seed : int
        Seed of the initialisation.
    tokenizer : CLIPTokenizer, optional
        Defaults to :func:`byte_level_tokenizer` (enough for the empty prompt, needs no download).
    """
    tokenizer = tokenizer or byte_level_tokenizer()
    text_fields = {
        "vocab_size": len(tokenizer),
        "max_position_embeddings": tokenizer.model_max_length,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **text_config,
    }
    if text_fields["vocab_size"] < len(tokenizer):
        raise ValueError(f"text vocab_size {text_fields['vocab_size']} < tokenizer size {len(tokenizer)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(unet_config)
        vae = AutoencoderKL.from_config(vae_config)
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_fields))
    return {
        "unet": unet.eval().requires_grad_(False),
        "vae": vae.eval().requires_grad_(False),
        "scheduler": DDIMScheduler(**SCHEDULER_CONFIG),
        "text_encoder": text_encoder.eval().requires_grad_(False),
        "tokenizer": tokenizer,
    }


def byte_level_vocab() -> dict[str, int]:
    """A CLIP-style vocabulary with no merges: the 256 byte symbols, their word-final ``</w>`` forms, BOS, EOS.

    Any text tokenizes (byte by byte) and ``""`` gives ``[BOS, EOS]``, like the real 49408-token vocabulary, in
    a few kB and without a download.
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    vocab.update({symbol + "</w>": len(alphabet) + i for i, symbol in enumerate(alphabet)})
    vocab.update({BOS: 2 * len(alphabet), EOS: 2 * len(alphabet) + 1})
    return vocab


def byte_level_tokenizer() -> CLIPTokenizer:
    """A CLIPTokenizer over :func:`byte_level_vocab` with CLIP's 77-token context."""
    return CLIPTokenizer(vocab=byte_level_vocab(), merges=[], model_max_length=PROMPT_LENGTH)


TINY_UNET = dict(
    sample_size=16,
    in_channels=8,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(16, 32),
    layers_per_block=1,
    norm_num_groups=8,
    cross_attention_dim=32,
    attention_head_dim=2,  # diffusers' legacy name: the number of heads (8 and 16 channels each here)
    use_linear_projection=True,  # as in SD2
)
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    block_out_channels=(16, 32),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=32,
    scaling_factor=0.18215,
)
TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)


def write_tiny_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny random-init checkpoint with the layout and classes of the real one (< 1 MB), for tests.

    The UNet has cross-attention blocks (so every ``attn1``/``attn2`` path runs) and 8 input channels; the VAE
    downsamples by 2 (``2 ** (len(block_out_channels) - 1)``) into 4 latent channels; the text encoder is 32 wide,
    which gives a ``[1, 2, 32]`` empty-prompt embedding.
    """
    return save_components(build_components(TINY_UNET, TINY_VAE, TINY_TEXT, seed=seed), path)
