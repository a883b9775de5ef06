"""Lower-precision variants of an exported fp32 tower graph.

fp16 targets CUDA: weights and activations become float16 while the graph
inputs and outputs stay float32, so the runtime feeds the same arrays for
every precision. int8 targets CPUs: dynamic quantisation of the weight
MatMuls. Which int8 recipe is best differs between checkpoints, so the
exporter measures each of ``INT8_RECIPES`` against PyTorch and keeps the
fastest one that is close enough (``choose_recipe``). ``STATIC_INT8`` (QDQ,
activation ranges calibrated on sample images) is what the benchmarks compare
against: on the 2-core reference machine, idle, it ran the ViT-B/32 image
tower at 0.86-0.96x the speed of dynamic int8 and a little less accurately, so the
exporter does not use it.

Every recipe is saturation-safe (see ``engine.cpu``): s8 weights are
quantised to 7 bits (``reduce_range``), so a pair of u8*s8 products fits in
int16 and x86 CPUs without VNNI compute exactly what VNNI, AMX and ARM
compute; u8 weights run on kernels that widen to int32 first. A cosine
measured on one CPU then holds on all of them. ``int16_pair_sum`` checks a
written graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from assetlens.engine.manifest import Int8Recipe

# In order of preference (speed). s8 weights use ORT's fast U8S8 kernels (VNNI where
# the CPU has it), at 7 bits so that they cannot saturate; u8 weights (U8U8, all 8
# bits) run on a kernel without VNNI, about half the speed on a VNNI CPU
# (benchmarks/results), so they win only when the faster recipes fall short.
INT8_RECIPES = (
    Int8Recipe("QInt8", per_channel=True, reduce_range=True),
    Int8Recipe("QInt8", per_channel=False, reduce_range=True),
    Int8Recipe("QUInt8", per_channel=True),
)
# The first recipe whose min cosine against the reference reaches INT8_GOOD_COSINE is kept;
# when none does, the first within INT8_TOLERANCE of the best.
INT8_GOOD_COSINE = 0.999
INT8_TOLERANCE = 1e-4


def choose_recipe(cosines: Sequence[float]) -> int:
    """Index into ``INT8_RECIPES`` of the recipe to keep, given each one's measured min cosine."""
    best = max(cosines)
    good_enough = min(best - INT8_TOLERANCE, INT8_GOOD_COSINE)
    return next(i for i, cosine in enumerate(cosines) if cosine >= good_enough)


STATIC_INT8 = Int8Recipe("QInt8", per_channel=True, static=True, reduce_range=True)
INT16_MAX = 32767
U8_MAX = 255
# Ops that run on integer GEMM kernels, and the input index of their weight.
_INTEGER_MATMULS = {"MatMulInteger": 1, "DynamicQuantizeMatMul": 1, "MatMulIntegerToFloat": 1, "QLinearMatMul": 3}


def convert_fp16(src: Path, dst: Path) -> None:
    """Write ``src`` with float16 weights and compute, float32 inputs/outputs."""
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    # The attention-mask branch casts int64 -> float. The converter turns the
    # Cast's output to float16 but leaves its ``to`` attribute at float, which
    # ORT rejects; keeping those nodes in float32 (the converter inserts a
    # Cast to float16 after them) avoids that.
    float_casts = [
        node.name
        for node in model.graph.node
        if node.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in node.attribute)
    ]
    with warnings.catch_warnings():
        # Warns for every constant it clamps into float16 range, such as the
        # float32-min attention-mask fill value; clamping is what we want.
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=float_casts)
    onnx.save(converted, str(dst))


def prepare_int8(src: Path, dst: Path) -> None:
    """ONNX Runtime's recommended pre-processing (shape inference) before quantising.

    ``src`` is already graph-optimised, so that pass is skipped. ORT's symbolic
    shape inference gives up on the text graph (the attention mask is built
    from the dynamic sequence length), so only ONNX shape inference runs;
    dynamic quantisation of weight MatMuls needs no more than that.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(src), str(dst), skip_optimization=True, skip_symbolic_shape=True)


def quantize_int8(src: Path, dst: Path, recipe: Int8Recipe, calibration: Sequence[dict[str, np.ndarray]] = ()) -> None:
    """Quantise the weight MatMuls of a prepared graph; a static recipe calibrates on ``calibration`` feeds."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if not recipe.static:
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=list(recipe.op_types),
            per_channel=recipe.per_channel,
            reduce_range=recipe.reduce_range,
            weight_type=QuantType[recipe.weight_type],
        )
        return
    if not calibration:
        raise ValueError("static int8 needs calibration inputs")

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    quantize_static(
        str(src),
        str(dst),
        Feeds(),
        quant_format=QuantFormat.QDQ,
        per_channel=recipe.per_channel,
        reduce_range=recipe.reduce_range,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType[recipe.weight_type],
        op_types_to_quantize=list(recipe.op_types),
    )


def integer_matmul_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The integer weights of a graph's MatMuls, by node: those of integer ops (dynamic int8), and
    the quantised initializers a float MatMul or Gemm dequantises (QDQ, fused into integer ops at load)."""
    initializers = {init.name: init for init in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    weights: dict[str, np.ndarray] = {}
    for index, node in enumerate(model.graph.node):
        if node.op_type in _INTEGER_MATMULS:
            names = [node.input[_INTEGER_MATMULS[node.op_type]]]
        elif node.op_type in ("MatMul", "Gemm"):
            dequantized = [producers.get(name) for name in node.input[:2]]
            names = [dq.input[0] for dq in dequantized if dq is not None and dq.op_type == "DequantizeLinear"]
        else:
            continue
        for name in names:
            if name in initializers:
                weights[f"{node.name or node.op_type + str(index)}:{name}"] = numpy_helper.to_array(initializers[name])
    return weights


def int16_pair_sum(graph: Path) -> int:
    """The largest ``|a1*w1 + a2*w2|`` over u8 activations and the graph's s8 weights: what x86 kernels
    without VNNI hold in int16 (saturation-safe when at most ``INT16_MAX``). u8 weights count 0: their
    kernels widen to int32 before adding."""
    weights = integer_matmul_weights(onnx.load(str(graph)))
    signed = [int(np.abs(w.astype(np.int32)).max()) for w in weights.values() if w.dtype == np.int8 and w.size]
    return 2 * U8_MAX * max(signed, default=0)
