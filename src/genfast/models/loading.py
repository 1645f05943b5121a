"""Load a Hugging Face causal LM (local directory, the bundled demo, or a hub id) into a handle."""

from __future__ import annotations

import json
import re
import socket
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch

from genfast import envs
from genfast.compress.api import set_recipe
from genfast.compress.restore import needs_restore, restore
from genfast.devices import precision_warning, resolve_device, resolve_dtype
from genfast.errors import GenfastError, ModelLoadError
from genfast.models.handle import ModelHandle
from genfast.output_dir import INCOMPLETE

DEMO = "demo"
DEMO_STUDENT = "demo-student"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DEMO_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def demo_path(name: str = DEMO) -> Path:
    """The bundled demo model's (or its distilled student's) directory, checked to be complete."""
    path = envs.demo_model_dir() if name == DEMO else envs.demo_student_dir()
    for file in _DEMO_FILES:
        if not (path / file).is_file():
            raise ModelLoadError(
                f"The bundled {name} model is incomplete: {path / file} is missing.",
                "Reinstall genfast, or rebuild it with `genfast train-demo`"
                + ("." if name == DEMO else " and benchmarks/distill_student.sh."),
            )
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _causal_lm_class_names() -> set[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    names: set[str] = set()
    for value in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        names.update([value] if isinstance(value, str) else value)
    return names


def _check_causal_lm_dir(path: Path) -> None:
    """Reject directories that hold no model, or a model that does not generate text left to right."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(
            f"{path} is not a Hugging Face model directory (no config.json).",
            "Point --model at a directory saved with save_pretrained(), or use `demo`.",
        )
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{config_file} is not valid JSON ({exc.msg}).") from None
    model_type, architectures = config.get("model_type"), config.get("architectures") or []
    # Encoder-only families (BERT, RoBERTa) have an LM-head class in the causal mapping, but
    # only a checkpoint saved as a decoder really generates.
    encoder_only = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not config.get("is_decoder")
    is_causal = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not encoder_only
    if architectures:
        is_causal = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and bool(
            set(architectures) & _causal_lm_class_names())
    if not is_causal:
        what = architectures[0] if architectures else f"{model_type!r} model"
        raise ModelLoadError(
            f"{path} holds a {what}, which is not a causal language model.",
            "genfast profiles causal LMs (GPT-2, Llama, Qwen2, Mistral, ...); "
            "for other modules use genfast.profile_module().",
        )


def _hub_reachable() -> bool:
    import os

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=envs.hub_connect_timeout_s()):
            return True
    except OSError:
        return False


def _resolve_hub_id(source: str) -> str:
    """A hub id as a local snapshot directory: from the cache, else downloaded if the hub answers."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(source, local_files_only=True)
    except Exception:  # noqa: BLE001 - any cache miss means "not cached"
        pass
    if not _hub_reachable():
        raise ModelLoadError(
            f"{source!r} is not a local directory and the model hub cannot be reached.",
            "Download the model on a connected machine and pass its directory, or use `--model demo`.",
        )
    try:
        return snapshot_download(source)
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types
        raise ModelLoadError(f"Could not download {source!r}: {_first_line(exc)}") from None


def resolve_model_path(source: str) -> Path:
    """Where the files of ``source`` (``demo``, a directory, or a hub id) are on disk."""
    if source in (DEMO, DEMO_STUDENT):
        return demo_path(source)
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{path} is a file, not a model directory.")
        return path
    if path.is_absolute() or source.startswith(".") or not _HUB_ID.match(source):
        raise ModelLoadError(f"No model directory at {source}.", "Check the path, or use `--model demo`.")
    return Path(_resolve_hub_id(source))


def read_recipe(path: Path) -> dict:
    """The artifact's recipe.json ({} for a plain model directory), its fields checked."""
    recipe_file = path / "recipe.json"
    if not recipe_file.is_file():
        return {}
    hint = "Restore it from the artifact's report.json, or re-create the artifact."
    try:
        recipe = json.loads(recipe_file.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{recipe_file} is not valid JSON ({exc.msg}).", hint) from None
    steps = recipe.get("steps", []) if isinstance(recipe, dict) else None
    if not isinstance(steps, list) or not all(isinstance(s, dict) and "technique" in s for s in steps):
        raise ModelLoadError(f"{recipe_file}: steps must be a list of mappings with a technique.", hint)
    for name in ("threads", "max_running"):
        value = recipe.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ModelLoadError(f"{recipe_file}: {name} must be a whole number >= 1 or null, got {value!r}.", hint)
    return recipe


def _load_failure(exc: BaseException) -> str:
    """The useful part of a loading error: torch's state-dict errors put it on the line after a colon."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] + (" " + lines[1] if lines[0].endswith(":") and len(lines) > 1 else "")


def load(source: str = DEMO, device: str = "cpu", dtype: str = "fp32") -> ModelHandle:
    """Load a causal LM with its tokenizer and generation config, ready for inference."""
    from transformers import AutoTokenizer, GenerationConfig

    target, torch_dtype = resolve_device(device), resolve_dtype(dtype)
    warning = precision_warning(target, torch_dtype)
    if warning:
        warnings.warn(warning, stacklevel=2)
    path = resolve_model_path(source)
    if (path / INCOMPLETE).exists():
        raise ModelLoadError(f"{path} is a genfast output that was never finished (it holds {INCOMPLETE}).",
                             "Rerun the command that writes it; it resumes where it stopped.")
    _check_causal_lm_dir(path)
    recipe = read_recipe(path)
    model = load_weights(path, recipe, torch_dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"No usable tokenizer in {path}: {_first_line(exc)}",
            "Save the tokenizer beside the weights with tokenizer.save_pretrained(dir).",
        ) from None
    try:
        generation_config = GenerationConfig.from_pretrained(path)
    except OSError:
        generation_config = GenerationConfig.from_model_config(model.config)
    model.to(target).eval()
    set_recipe(model, recipe.get("steps", []))  # what was done to it, carried on if compressed further
    return ModelHandle(model=model, tokenizer=tokenizer, generation_config=generation_config,
                       source=source, path=str(path), recipe=recipe)


def load_weights(path: Path, recipe: dict, dtype: torch.dtype) -> torch.nn.Module:
    """The model in ``path`` (an artifact through its recipe), without tokenizer or checks of the directory."""
    from transformers import AutoModelForCausalLM

    try:
        if needs_restore(recipe):
            return restore(path, recipe, dtype)
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except GenfastError:
        raise
    except Exception as exc:  # noqa: BLE001 - transformers raises OSError/ValueError/RuntimeError
        hint = ("Its weights do not match its recipe.json: re-create the artifact rather than editing recipe.json."
                if recipe else None)
        raise ModelLoadError(f"Could not load the model in {path}: {_load_failure(exc)[:400]}", hint) from None


def from_model(model: torch.nn.Module, tokenizer, source: str = "in-memory") -> ModelHandle:
    """Wrap an already-built causal LM and tokenizer (e.g. built in a test) in a handle."""
    from transformers import GenerationConfig

    return ModelHandle(model=model.eval(), tokenizer=tokenizer,
                       generation_config=GenerationConfig.from_model_config(model.config), source=source)


def recipe_runtime_options(source: str) -> dict:
    """The runtime options an artifact's recipe records (``threads``, ``max_running``; None where unset).

    `genfast tune` picks them; `serve` and `profile` use them unless told otherwise."""
    from genfast.images.source import is_image_model

    path = Path(source).expanduser()
    if is_image_model(source):  # an image pipeline's recipe (genfast.images) records neither
        return {"threads": None, "max_running": None}
    recipe = read_recipe(path) if source not in (DEMO, DEMO_STUDENT) and path.is_dir() else {}
    return {"threads": recipe.get("threads"), "max_running": recipe.get("max_running")}
