"""Checkpoints: exact weight round trip through the real loading path, atomic saving, clear UserErrors for broken
folders and unreachable hub ids (never touching the network), and the byte-level tokenizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi
from huggingface_hub import constants as hub_constants

from rolldepth.model import checkpoint as ck
from rolldepth.model.checkpoint import (
    TINY_TEXT,
    TINY_UNET,
    TINY_VAE,
    build_components,
    byte_level_tokenizer,
    encode_empty_prompt,
    load_components,
    resolve_checkpoint,
    save_components,
    write_tiny_checkpoint,
)
from rolldepth.model.layout import MODEL_PARTS, missing_files, validate_checkpoint
from rolldepth.errors import UserError


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", seed=3)


def copy_of(ckpt: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(ckpt, target)
    return target


def state_dicts_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key], sb[key]), key


def test_round_trip_is_exact(ckpt):
    expected = build_components(TINY_UNET, TINY_VAE, TINY_TEXT, seed=3)
    assert resolve_checkpoint(ckpt) == ckpt
    loaded = load_components(ckpt)
    for part in MODEL_PARTS:
        state_dicts_equal(loaded[part], expected[part])
        assert not loaded[part].training
        assert not any(p.requires_grad for p in loaded[part].parameters())
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded["scheduler"].config) == public(expected["scheduler"].config)
    assert loaded["scheduler"].config.prediction_type == "v_prediction"
    assert loaded["tokenizer"].get_vocab() == expected["tokenizer"].get_vocab()
    index = json.loads((ckpt / "model_index.json").read_text())
    assert index["_class_name"] == ck.PIPELINE_CLASS
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    # A different seed gives different weights, so the equality above is not vacuous.
    other = build_components(TINY_UNET, TINY_VAE, TINY_TEXT, seed=4)["unet"].state_dict()
    assert any(not torch.equal(v, other[k]) for k, v in expected["unet"].state_dict().items())


def test_pipeline_from_pretrained_loads_same_weights(ckpt):
    from rolldepth.model.pipeline import RollingDepthPipeline

    pipe = RollingDepthPipeline.from_pretrained(str(ckpt))
    expected = build_components(TINY_UNET, TINY_VAE, TINY_TEXT, seed=3)
    state_dicts_equal(pipe.unet, expected["unet"])
    state_dicts_equal(pipe.vae, expected["vae"])


def test_build_components_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    build_components(TINY_UNET, TINY_VAE, TINY_TEXT, seed=0)
    assert torch.equal(torch.get_rng_state(), before)


def test_save_replaces_existing_checkpoint_only_on_success(ckpt, tmp_path):
    target = copy_of(ckpt, tmp_path)
    before = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    components = build_components(TINY_UNET, TINY_VAE, TINY_TEXT, seed=9)

    class Boom(RuntimeError):
        pass

    def fail(*args, **kwargs):
        raise Boom("disk full")

    components["text_encoder"].save_pretrained = fail  # fails after unet and vae were written
    with pytest.raises(Boom):
        save_components(components, target)
    after = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no temporary folder left behind

    del components["text_encoder"].save_pretrained
    save_components(components, target, extra_json={"rolldepth.json": {"processing_res": 64}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]
    assert json.loads((target / "rolldepth.json").read_text()) == {"processing_res": 64}
    state_dicts_equal(load_components(target)["unet"], components["unet"])


def test_save_refuses_to_overwrite_a_non_checkpoint(tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    components = build_components(TINY_UNET, TINY_VAE, TINY_TEXT, seed=0)
    with pytest.raises(UserError, match="refusing to overwrite"):
        save_components(components, target)
    assert (target / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="tokenizer"):
        save_components({k: v for k, v in components.items() if k != "tokenizer"}, tmp_path / "x")


def test_missing_unet_is_named(ckpt, tmp_path):
    folder = copy_of(ckpt, tmp_path)
    shutil.rmtree(folder / "unet")
    assert missing_files(folder) == ["unet/"]
    with pytest.raises(UserError) as info:
        validate_checkpoint(folder)
    assert "unet/" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError, match="unet/"):
        load_components(folder)


def test_missing_pieces_are_all_named(ckpt, tmp_path):
    folder = copy_of(ckpt, tmp_path)
    (folder / "vae" / "config.json").unlink()
    for weights in (folder / "text_encoder").glob("*.safetensors"):
        weights.unlink()
    (folder / "scheduler" / "scheduler_config.json").unlink()
    missing = missing_files(folder)
    assert missing == [
        "vae/config.json",
        "scheduler/scheduler_config.json",
        "text_encoder/ weights (*.safetensors or *.bin)",
    ]
    message = str(pytest.raises(UserError, validate_checkpoint, folder).value)
    for piece in missing:
        assert piece in message
    assert missing_files(tmp_path / "nowhere") == ["the folder itself"]
    assert missing_files(ckpt) == []
    assert "fp16" in missing_files(ckpt, variant="fp16")[0]


def test_corrupted_config_is_named(ckpt, tmp_path):
    folder = copy_of(ckpt, tmp_path)
    (folder / "unet" / "config.json").write_text("{not json")
    with pytest.raises(UserError) as info:
        validate_checkpoint(folder)
    assert str(folder / "unet" / "config.json") in str(info.value)
    (folder / "unet" / "config.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not a JSON object"):
        validate_checkpoint(folder)


def test_wrong_unet_kind_is_named(ckpt, tmp_path):
    folder = copy_of(ckpt, tmp_path)
    config = json.loads((folder / "unet" / "config.json").read_text())
    (folder / "unet" / "config.json").write_text(json.dumps(dict(config, in_channels=4)))
    with pytest.raises(UserError, match="in_channels=4"):
        validate_checkpoint(folder)
    (folder / "unet" / "config.json").write_text(json.dumps(dict(config, _class_name="UNet2DModel")))
    with pytest.raises(UserError, match="UNet2DModel"):
        validate_checkpoint(folder)


def test_corrupted_weights_give_user_error(ckpt, tmp_path):
    folder = copy_of(ckpt, tmp_path)
    (weights,) = (folder / "unet").glob("*.safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    validate_checkpoint(folder)  # the layout is fine; reading the weights is what fails
    with pytest.raises(UserError) as info:
        load_components(folder)
    message = str(info.value)
    assert str(folder / "unet") in message and "\n" not in message


def test_file_and_bad_names(tmp_path):
    file = tmp_path / "model.bin"
    file.write_bytes(b"x")
    with pytest.raises(UserError, match="a file, not a checkpoint folder"):
        resolve_checkpoint(file)
    with pytest.raises(UserError, match="not a hub id"):
        resolve_checkpoint(str(tmp_path / "no" / "such" / "folder"))


def test_hub_id_offline_without_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was contacted in offline mode")

    monkeypatch.setattr(HfApi, "list_repo_files", no_network)
    monkeypatch.chdir(tmp_path)  # so the id is not a relative folder by accident
    repo = "someone/some-depth-model"
    for call in (lambda: resolve_checkpoint(repo), lambda: load_components(repo)):
        with pytest.raises(UserError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message
        assert "someone/some-depth-model" in message
        assert "offline" in message


def test_hub_id_without_network_fails_at_once_in_one_line(tmp_path, monkeypatch):
    """An unreachable hub used to cost 5 retries (23 s) and 22 logged lines (11 messages, each twice) first."""
    import time

    from rolldepth.model.checkpoint import hub_unreachable

    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "ENDPOINT", "http://127.0.0.1:1")  # nothing listens on port 1
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    def no_request(*args, **kwargs):
        raise AssertionError("the hub's API was asked although the probe found it unreachable")

    monkeypatch.setattr(HfApi, "list_repo_files", no_request)
    monkeypatch.chdir(tmp_path)
    tic = time.perf_counter()
    with pytest.raises(UserError) as info:
        resolve_checkpoint("someone/some-depth-model")
    message = str(info.value)
    assert time.perf_counter() - tic < 5 and "\n" not in message
    assert "cannot connect to 127.0.0.1:1" in message and "pass a checkpoint folder" in message
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")  # the direct route says nothing behind a proxy
    assert hub_unreachable() is None


def test_empty_prompt_is_deterministic(ckpt):
    tok_a, tok_b = byte_level_tokenizer(), byte_level_tokenizer()
    vocab = ck.byte_level_vocab()
    assert len(vocab) == 2 * 256 + 2
    expected = [vocab[ck.BOS], vocab[ck.EOS]]
    assert tok_a("").input_ids == expected == tok_b("").input_ids
    assert tok_a.model_max_length == ck.PROMPT_LENGTH
    # Text tokenizes byte by byte with the last byte word-final.
    assert tok_a("ab").input_ids == [vocab[ck.BOS], vocab["a"], vocab["b</w>"], vocab[ck.EOS]]
    loaded = load_components(ckpt)
    assert loaded["tokenizer"]("").input_ids == expected
    e1 = encode_empty_prompt(loaded["tokenizer"], loaded["text_encoder"])
    e2 = encode_empty_prompt(tok_a, loaded["text_encoder"])
    assert e1.shape == (1, 2, TINY_TEXT["hidden_size"])
    assert torch.equal(e1, e2)
