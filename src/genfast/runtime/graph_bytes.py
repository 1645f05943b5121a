"""Bytes of weights one decode step reads from an exported graph.

Every constant counts except tables that are only gathered from (a token-embedding table: a
step reads one row of it per token), also through dequantisation and reshape chains.
"""

from __future__ import annotations

from pathlib import Path

# Ops that read only a tensor's shape, never its data.
_SHAPE_ONLY = {"ShapeOf", "Shape"}
# Ops that only reshape or dequantise a weight on its way to the op that really reads it.
_PASS_THROUGH = {"Convert", "Subtract", "Multiply", "Reshape", "Unsqueeze", "Squeeze", "Transpose",
                 "DequantizeLinear", "Cast", "Identity"}


def onnx_weight_bytes_per_step(path: Path) -> int:
    import onnx
    import onnx.numpy_helper

    graph = onnx.load(str(path), load_external_data=True).graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_gathered(name: str, depth: int = 0) -> bool:
        users = consumers.get(name, [])
        if not users or depth > 6:
            return False
        return all(n.op_type == "Gather" and n.input[0] == name or n.op_type in _SHAPE_ONLY
                   or n.op_type in _PASS_THROUGH and all(only_gathered(o, depth + 1) for o in n.output)
                   for n in users)

    return sum(onnx.numpy_helper.to_array(t).nbytes for t in graph.initializer if not only_gathered(t.name))


def openvino_weight_bytes_per_step(model) -> int:
    def only_gathered(node, depth: int = 0) -> bool:
        users = [t.get_node() for out in node.outputs() for t in out.get_target_inputs()]
        if not users or depth > 6:
            return False
        return all(u.get_type_name() in ("Gather", *_SHAPE_ONLY)
                   or u.get_type_name() in _PASS_THROUGH and only_gathered(u, depth + 1) for u in users)

    return sum(int(op.get_byte_size()) for op in model.get_ops()
               if op.get_type_name() == "Constant" and not only_gathered(op))
