"""ONNX exports cached by content: the same weights and graph code export once per cache directory.

`genfast tune` builds the same candidate in several worker processes (screening, thread variants,
the final); each would export the same graph again without this.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import torch

from genfast.runtime.decoder import FastDecoder

_GRAPH_CODE = ("onnx_export.py", "decoder.py")  # a change to how the graph is written invalidates the cache


def content_key(decoder: FastDecoder) -> str:
    """A hash of every tensor of ``decoder`` (names, shapes, dtypes, bytes), its shape settings and the
    exporter's code."""
    h = hashlib.sha256()
    for name in _GRAPH_CODE:
        h.update((Path(__file__).parent / name).read_bytes())
    # what the graph computes beyond its tensors: activation, norm kind, window and which layers use it
    h.update(repr((decoder.shape, [block.windowed for block in decoder.blocks])).encode())
    for name, t in sorted({**dict(decoder.named_parameters()), **dict(decoder.named_buffers())}.items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:20]


def cached_export(decoder: FastDecoder, cache_dir: Path) -> Path:
    """The directory holding ``model.onnx`` for ``decoder`` under ``cache_dir``, exported if not there yet."""
    from genfast.runtime.onnx_export import export_onnx

    done = Path(cache_dir) / f"onnx-{content_key(decoder)}"
    if (done / "model.onnx").is_file():
        return done
    work = done.with_name(done.name + ".work")
    shutil.rmtree(work, ignore_errors=True)
    export_onnx(decoder, work / "model.onnx")
    shutil.rmtree(done, ignore_errors=True)
    work.rename(done)  # complete or absent: an interrupted export leaves only the .work directory
    return done
