"""Quantization: dynamic int8, weight-only int8 / int4 with fast CPU kernels, fp16 / bf16 casting."""

from genfast.compress.quantize.cast import CastPrecision
from genfast.compress.quantize.dynamic_int8 import DynamicInt8
from genfast.compress.quantize.int4_weight import Int4WeightOnly
from genfast.compress.quantize.int8_weight import Int8WeightOnly
from genfast.compress.quantize.layers import QuantizedLinear, sqnr_db

LAYER_QUANTIZERS = (DynamicInt8, Int4WeightOnly, Int8WeightOnly)
"""Configs that replace layers with QuantizedLinear ones (backends must declare quantized_layers)."""

__all__ = ["LAYER_QUANTIZERS", "CastPrecision", "DynamicInt8", "Int4WeightOnly", "Int8WeightOnly", "QuantizedLinear",
           "sqnr_db"]
