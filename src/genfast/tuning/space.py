"""The search space: built from what the backends declare and what this machine runs natively.

Nothing here is a fixed list of combinations: each backend's capabilities (precisions, devices,
whether it runs genfast's PyTorch-quantized layers) and the hardware facts (instruction sets, GPU,
cores) decide the candidates, and every axis left out is kept with its reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from genfast.compress.recipe import Recipe, parse_prune, parse_quantize

# genfast's PyTorch-side quantizations, tried on every backend that runs their layers
LAYER_QUANTIZATIONS = [("int8-weight", None), ("int4-weight", 32), ("int4-weight", 128), ("int8-dynamic", None)]
CASTS = {"bf16": torch.bfloat16, "fp16": torch.float16}
# what an expensive step costs to try, so cheap candidates come first and a time budget cuts the dear ones
_BUILD_COST = {"torch": 0, "onnxruntime": 1, "openvino": 1, "tensorrt": 2, "torch-compile": 2}
_PRECISION_BYTES = {"int4": 0.5, "int8": 1, "fp16": 2, "bf16": 2, "fp32": 4}


@dataclass
class Candidate:
    """One point of the space: a recipe, or the transformers ``generate()`` baseline."""

    recipe: Recipe
    baseline: bool = False
    parent: str | None = None
    """For a thread / max_running variant: the key of the trial whose quality it shares."""

    @property
    def label(self) -> str:
        if self.baseline:
            return "transformers generate() (fp32, the original)"
        r = self.recipe
        parts = [_step_label(s) for s in r.steps]
        text = " + ".join(parts + [f"{r.backend} {r.precision}" if r.precision != "fp32" or not parts else r.backend])
        extras = [f"{r.threads} thread{'s' if r.threads != 1 else ''}" if r.threads else "",
                  f"max_running {r.max_running}" if r.max_running else ""]
        return ", ".join([text, *filter(None, extras)])

    @property
    def simplicity(self) -> tuple:
        """Smaller is simpler: fewer steps, then an engine with fewer moving parts."""
        return (len(self.recipe.steps), _BUILD_COST.get(self.recipe.backend, 3), self.recipe.backend,
                self.recipe.precision, self.recipe.threads or torch.get_num_threads())

    @property
    def prior(self) -> tuple:
        """Order of trial: cheap builds first, then the fewer bytes a step reads."""
        pruned = any(s["technique"].startswith("Prune") for s in self.recipe.steps)
        quant = next((s for s in self.recipe.steps if s["technique"] in ("Int8WeightOnly", "Int4WeightOnly",
                                                                         "DynamicInt8", "CastPrecision")), None)
        precision = self.recipe.precision
        if quant:
            precision = {"Int8WeightOnly": "int8", "Int4WeightOnly": "int4", "DynamicInt8": "int8"}.get(
                quant["technique"], quant.get("dtype", "fp32"))
        return (pruned, _BUILD_COST.get(self.recipe.backend, 3), _PRECISION_BYTES.get(precision, 4), self.label)


def _step_label(step: dict) -> str:
    t = step["technique"]
    if t == "PruneFFN":
        return f"prune ffn {step['fraction']:.0%}"
    if t == "PruneHeads":
        return f"prune heads {step['fraction']:.0%}"
    if t == "Int4WeightOnly":
        return f"int4-weight g{step.get('group_size', 128)}"
    if t == "CastPrecision":
        return step["dtype"]
    return {"Int8WeightOnly": "int8-weight", "DynamicInt8": "int8-dynamic", "Distill": "healed"}.get(t, t)


@dataclass
class SpaceOptions:
    """Which axes to search."""

    backends: list[str] | None = None
    """Restrict to these backends (None: every backend this machine runs)."""
    prune: list[str] = field(default_factory=lambda: ["ffn=0.25", "heads=0.25"])
    """Structured pruning levels (``--prune`` spellings), each healed by distillation."""
    heal_steps: int = 100
    """Distillation steps that heal each pruned model."""
    heal_minutes: float = 1.0
    """Time cap of each healing run."""
    threads: list[int] | None = None
    """Thread counts to try on the leaders (None: 1, powers of two, and every core)."""
    device: str = "cpu"
    """Where the model runs (``cpu``, ``cuda``...): one device per search."""


    def validate(self) -> None:
        """Every option checked before any work, naming the bad value and the fix."""
        from genfast.backends.registry import backend_names
        from genfast.compress.distill import Distill
        from genfast.compress.recipe import step_config
        from genfast.errors import ConfigError

        for name in self.backends or []:
            if name == "hf":
                raise ConfigError("The hf backend is the baseline tune measures every candidate against.",
                                  "Leave it out of --backend.")
            if name not in backend_names():
                raise ConfigError(f"Unknown backend {name!r}.", f"Use one of: {', '.join(backend_names())}.")
        for n in self.threads or []:
            if n < 1:
                raise ConfigError(f"--threads must be at least 1, got {n}.")
        for spec in self.prune:
            step_config(parse_prune(spec))  # a fraction outside [0, 1) fails here, not as a skipped trial
        if self.prune:
            Distill(steps=self.heal_steps, max_minutes=self.heal_minutes).validate()
            if self.heal_minutes <= 0:
                raise ConfigError(f"--heal-minutes must be positive, got {self.heal_minutes}.")


@dataclass
class Space:
    candidates: list[Candidate]
    left_out: list[dict]
    """``{"axis": ..., "reason": ...}`` for everything this machine or these options leave out."""


def thread_counts(requested: list[int] | None = None) -> list[int]:
    """1, the powers of two below the core count, and the core count."""
    if requested:
        return sorted(set(requested))
    cores = os.cpu_count() or 1
    return sorted({1, cores} | {2**i for i in range(1, cores.bit_length()) if 2**i < cores})


def _backend_axes(options: SpaceOptions, left_out: list[dict]) -> list:
    from genfast.backends.registry import backend_names, get_backend
    from genfast.errors import GenfastError

    backends = []
    for name in backend_names():
        if name == "hf":
            left_out.append({"axis": "backend hf", "reason": "transformers' own forward: its generate() is the "
                             "baseline every candidate is timed against"})
            continue
        if options.backends is not None and name not in options.backends:
            left_out.append({"axis": f"backend {name}", "reason": "not among --backend"})
            continue
        try:
            backend = get_backend(name)
        except GenfastError as exc:
            left_out.append({"axis": f"backend {name}", "reason": f"{exc.message} {exc.hint}"})
            continue
        device = torch.device(options.device).type
        if device not in backend.capabilities.devices:
            left_out.append({"axis": f"backend {name}", "reason": f"runs on {', '.join(backend.capabilities.devices)}"
                             f", not {device}"})
            continue
        backends.append(backend)
    return backends


def _native_casts(device: str, left_out: list[dict]) -> list[str]:
    from genfast.devices import precision_warning

    native = []
    for name, dtype in CASTS.items():
        warning = precision_warning(torch.device(device), dtype)
        if warning:
            left_out.append({"axis": f"precision {name}", "reason": warning})
        else:
            native.append(name)
    return native


def build_space(model: torch.nn.Module, options: SpaceOptions | None = None) -> Space:
    """Every candidate the backends available here can run for ``model``, cheapest first."""
    from genfast.backends.registry import check_recipe
    from genfast.compress.recipe import step_config
    from genfast.errors import ConfigError

    options = options or SpaceOptions()
    left_out: list[dict] = []
    if not torch.cuda.is_available():
        left_out.append({"axis": "device cuda", "reason": "no NVIDIA GPU visible to torch"})
    elif torch.device(options.device).type != "cuda":
        left_out.append({"axis": "device cuda", "reason": "a GPU is here: search it with --device cuda"})
    backends = _backend_axes(options, left_out)
    casts = _native_casts(options.device, left_out)
    recipes: list[Recipe] = []
    for backend in backends:
        for precision in backend.capabilities.precisions:
            if precision in CASTS and precision not in casts:
                continue  # a 16-bit precision this CPU does not compute natively (listed in left_out)
            recipes.append(Recipe(backend=backend.name, precision=precision))
        if backend.capabilities.quantized_layers:
            steps = [parse_quantize(kind, group) for kind, group in LAYER_QUANTIZATIONS]
            steps += [parse_quantize(name) for name in casts if name in backend.capabilities.dtypes]
            recipes += [Recipe(steps=[step], backend=backend.name) for step in steps]
    torch_names = [b.name for b in backends if b.name == "torch"]
    for spec in options.prune if torch_names else []:
        healed = [parse_prune(spec), {"technique": "Distill", "steps": options.heal_steps,
                                      "max_minutes": options.heal_minutes}]
        recipes.append(Recipe(steps=healed, backend="torch"))
        recipes.append(Recipe(steps=healed + [parse_quantize("int8-weight")], backend="torch"))
    if options.prune and not torch_names:
        left_out.append({"axis": "structured pruning", "reason": "pruned models are tried on the torch backend, "
                         "which is not among --backend"})

    candidates = []
    backend_of = {b.name: b for b in backends}
    for recipe in recipes:
        try:
            check_recipe(backend_of[recipe.backend], [step_config(s) for s in recipe.steps], model, recipe.precision)
        except ConfigError as exc:  # a combination this model cannot take (e.g. int4 on odd widths)
            left_out.append({"axis": Candidate(recipe).label, "reason": exc.message})
            continue
        candidates.append(Candidate(recipe))
    candidates.sort(key=lambda c: c.prior)
    return Space(candidates=candidates, left_out=left_out)


def variants(candidate: Candidate, key: str, objective: str, threads: list[int], concurrency: int) -> list[Candidate]:
    """The runtime-option variants of a leader: other thread counts, and for throughput other
    ``max_running`` values; they share the leader's quality (the same weights and kernels)."""
    out = []
    base = candidate.recipe
    current = base.threads or torch.get_num_threads()
    for n in threads:
        if n != current:
            out.append(Candidate(Recipe(steps=base.steps, backend=base.backend, precision=base.precision, threads=n,
                                        max_running=base.max_running), parent=key))
    if objective == "throughput":
        for running in sorted({max(1, concurrency // 4), max(1, concurrency // 2)} - {base.max_running}):
            out.append(Candidate(Recipe(steps=base.steps, backend=base.backend, precision=base.precision,
                                        threads=base.threads, max_running=running), parent=key))
    return out
