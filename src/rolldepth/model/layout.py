"""What a checkpoint folder must hold, checked from its files alone: no model library is imported here, so a wrong
``--model`` is answered at once, before torch and diffusers load (seconds).

The layout is diffusers' (``prs-eth/rollingdepth-v1-0``'s): ``unet/ vae/ scheduler/ text_encoder/ tokenizer/``, each
part with its config and one set of weights. Loading and saving are in :mod:`.checkpoint`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import UserError, first_line

MODEL_PARTS = ("unet", "vae", "text_encoder")
PARTS = ("unet", "vae", "scheduler", "text_encoder", "tokenizer")
EXPECTED_CLASSES = {"unet": "UNet2DConditionModel", "vae": "AutoencoderKL"}

# Weight files of one model folder, as diffusers and transformers name them: plain, variant (``.fp16``), sharded,
# and the shard index in both the transformers (``x.fp16.safetensors.index.json``) and diffusers
# (``x.safetensors.index.fp16.json``) spellings.
WEIGHT_FILE = re.compile(
    r"^(?:diffusion_pytorch_model|model|pytorch_model)"
    r"(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-\d+-of-\d+)?\.(?P<format>safetensors|bin)"
    r"(?:\.index(?:\.(?P<index_variant>[A-Za-z0-9_]+))?\.json)?$"
)


def select_weights(names: list[str], variant: str | None = None) -> list[str]:
    """One weight set among a model folder's files: the requested variant, safetensors over pickle (``.bin``).

    A sharded set comes with its index; the names are relative to the model folder.
    """
    by_format: dict[str, list[str]] = {"safetensors": [], "bin": []}
    for name in names:
        match = WEIGHT_FILE.match(name)
        if match and (match["variant"] or match["index_variant"]) == variant:
            by_format[match["format"]].append(name)
    return sorted(by_format["safetensors"] or by_format["bin"])


def validate_checkpoint(folder: Path, name: str | None = None, variant: str | None = None) -> dict[str, dict]:
    """Check that ``folder`` holds a depth checkpoint the pipeline can run, before any weights are read.

    Checks the layout (every part with its config and weights), that the configs are JSON objects, that the
    classes are the SD ones, and that the UNet is depth-conditioned: ``in_channels`` = 2 x the VAE's latent
    channels (RGB latent ++ noisy depth latent; 8 for SD2), ``out_channels`` = latent channels, and its
    cross-attention width equals the text encoder's.

    Returns
    -------
    dict
        The parsed ``config.json`` of ``unet``, ``vae`` and ``text_encoder``.

    Raises
    ------
    UserError
        Naming every missing file, or the one config that is unreadable or wrong.
    """
    name = name or str(folder)
    missing = missing_files(folder, variant)
    if missing:
        raise UserError(f"'{name}' is not a RollingDepth/Marigold checkpoint: missing {', '.join(missing)}")
    configs = {part: read_json(folder / part / "config.json") for part in MODEL_PARTS}
    read_json(folder / "scheduler" / "scheduler_config.json")
    for part, expected in EXPECTED_CLASSES.items():
        found = configs[part].get("_class_name", expected)
        if found != expected:
            raise UserError(f"{folder / part} holds a {found}, not the {expected} of a RollingDepth/Marigold "
                            "checkpoint")

    unet, latent = configs["unet"], configs["vae"].get("latent_channels", 4)
    if unet.get("in_channels") != 2 * latent or unet.get("out_channels", latent) != latent:
        raise UserError(
            f"{folder / 'unet'} has in_channels={unet.get('in_channels')}, out_channels={unet.get('out_channels')}: "
            f"not a depth-conditioned UNet (RollingDepth/Marigold take {2 * latent} channels, RGB latent ++ noisy "
            f"depth latent, and predict {latent}; a plain Stable Diffusion UNet takes {latent})"
        )
    width = configs["text_encoder"].get("hidden_size")
    if isinstance(unet.get("cross_attention_dim"), int) and width is not None and unet["cross_attention_dim"] != width:
        raise UserError(
            f"{folder}: unet cross_attention_dim {unet['cross_attention_dim']} does not match the text encoder's "
            f"hidden_size {width}"
        )
    return configs


def missing_files(folder: Path, variant: str | None = None) -> list[str]:
    """Every required piece absent from ``folder``, as relative names ("vae/", "unet/config.json", ...)."""
    if not folder.is_dir():
        return ["the folder itself"]
    missing = []
    for part in PARTS:
        if not (folder / part).is_dir():
            missing.append(f"{part}/")
        elif part in MODEL_PARTS:
            if not (folder / part / "config.json").is_file():
                missing.append(f"{part}/config.json")
            if not select_weights([p.name for p in (folder / part).iterdir()], variant):
                kind = f"{variant} " if variant else ""
                missing.append(f"{part}/ {kind}weights (*.safetensors or *.bin)")
        elif part == "scheduler" and not (folder / part / "scheduler_config.json").is_file():
            missing.append("scheduler/scheduler_config.json")
        elif part == "tokenizer" and not (
            (folder / part / "tokenizer.json").is_file()
            or all((folder / part / f).is_file() for f in ("vocab.json", "merges.txt"))
        ):
            missing.append("tokenizer/vocab.json + merges.txt (or tokenizer.json)")
    return missing


def read_json(path: Path) -> dict:
    """A JSON object from ``path``, or a UserError naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path} is not valid JSON: {first_line(exc)}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} is not a JSON object")
    return value


def check_model_name(name_or_path: str | Path) -> Path | None:
    """A checkpoint folder, validated (see :func:`validate_checkpoint`), or None for a hub id, which only the hub
    can check.

    Raises
    ------
    UserError
        For a folder that is no checkpoint, a file, or a name that is neither a folder nor a hub id (owner/name).
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    path = Path(name_or_path).expanduser()
    name = str(name_or_path)
    if path.is_dir():
        validate_checkpoint(path, name)
        return path
    if path.exists():
        raise UserError(f"could not load model '{name}': it is a file, not a checkpoint folder")
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise UserError(f"could not load model '{name}': no such folder, and not a hub id (owner/name)") from None
    return None
