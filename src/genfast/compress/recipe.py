"""A recipe: ordered compression steps + the backend and precision that run the result.

Written as ``recipe.json`` beside every artifact, so a model is known by what was done to it.
From the CLI: ``--prune ffn=0.25 --prune heads=0.25 --distill 300 --quantize int8-weight``, or
``--backend onnxruntime --precision int8``, or a JSON file with the same fields.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genfast.errors import ConfigError

PRUNE_KINDS = ("unstructured", "ffn", "heads", "layers")


@dataclass
class Recipe:
    steps: list[dict] = field(default_factory=list)
    """Each step: ``{"technique": "PruneFFN", "fraction": 0.25}`` and so on, applied in order."""
    backend: str = "torch"
    precision: str = "fp32"
    threads: int | None = None
    """CPU threads the runtime uses (None: the process default); `genfast tune` records its pick."""
    max_running: int | None = None
    """Sequences a server decodes together (None: the server's default); tune's throughput pick."""
    version: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_file(cls, path: Path) -> Recipe:
        import yaml

        path = Path(path)
        try:
            text = path.read_text()
        except (FileNotFoundError, IsADirectoryError):
            raise ConfigError(f"No recipe file at {path}.") from None
        try:
            data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}).") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} does not hold a recipe (a mapping with steps, backend, precision).")
        steps = data.get("steps", [])
        if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
            raise ConfigError(f"The steps in {path} must be a list of mappings, got {steps!r}.",
                              "Write each step as {technique: PruneFFN, fraction: 0.25}.")
        unknown = set(data) - {"steps", "backend", "precision", "threads", "max_running", "version"}
        if unknown:
            raise ConfigError(f"Unknown recipe fields: {', '.join(sorted(unknown))}.",
                              "A recipe has steps, backend, precision, threads, max_running and version.")
        return cls(**data)


def parse_prune(spec: str) -> dict:
    """``ffn=0.25`` -> a step dict; the kind and amount are checked here."""
    kind, _, amount = spec.partition("=")
    if kind not in PRUNE_KINDS or not amount:
        raise ConfigError(f"Cannot read --prune {spec!r}.",
                          f"Use KIND=AMOUNT with KIND one of {', '.join(PRUNE_KINDS)}, e.g. --prune ffn=0.25.")
    try:
        value = int(amount) if kind == "layers" else float(amount)
    except ValueError:
        raise ConfigError(f"--prune {kind} needs a number, got {amount!r}.") from None
    if kind == "layers":
        return {"technique": "PruneLayers", "count": value}
    field_name = "amount" if kind == "unstructured" else "fraction"
    return {"technique": {"unstructured": "PruneUnstructured", "ffn": "PruneFFN", "heads": "PruneHeads"}[kind],
            field_name: value}


QUANTIZE_KINDS = {"int8-weight": "Int8WeightOnly", "int4-weight": "Int4WeightOnly",
                  "int8-dynamic": "DynamicInt8", "fp16": "CastPrecision", "bf16": "CastPrecision"}


def parse_quantize(kind: str, group_size: int | None = None) -> dict:
    """``int4-weight`` -> a step dict (PyTorch-side quantization, run by the torch backends)."""
    technique = QUANTIZE_KINDS.get(kind)
    if technique is None:
        raise ConfigError(f"Unknown --quantize {kind!r}.", f"Use one of: {', '.join(QUANTIZE_KINDS)}.")
    if group_size is not None and technique != "Int4WeightOnly":
        raise ConfigError("--group-size applies to --quantize int4-weight only.")
    if technique == "CastPrecision":
        return {"technique": technique, "dtype": kind}
    if technique == "Int4WeightOnly" and group_size is not None:
        return {"technique": technique, "group_size": group_size}
    return {"technique": technique}


def step_config(step: dict) -> Any:
    """The config object a step dict describes (validated): any registered technique, or Distill."""
    from genfast.compress.api import registered_configs
    from genfast.compress.distill import Distill

    classes = {cls.__name__: cls for cls in registered_configs()} | {"Distill": Distill}
    args = {k: v for k, v in step.items() if k != "technique"}
    cls = classes.get(step.get("technique"))
    if cls is None:
        raise ConfigError(f"Unknown technique {step.get('technique')!r} in the recipe.",
                          f"Use one of: {', '.join(sorted(classes))}.")
    try:
        config = cls(**args)
    except TypeError as exc:
        raise ConfigError(f"Bad settings for {cls.__name__}: {exc}.") from None
    _check_numbers(config)
    config.validate()
    return config


def _check_numbers(config: Any) -> None:
    """A field whose default is a number takes a number (``fraction: abc`` is refused by name)."""
    import dataclasses

    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        numeric = isinstance(f.default, (int, float)) and not isinstance(f.default, bool)
        if numeric and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{type(config).__name__}.{f.name} must be a number, got {value!r}.",
                              f"Give {f.name} a number, e.g. {f.default}.")
