"""Lower-precision variants of an exported fp32 tower graph.

fp16 targets CUDA: weights and activations become float16 while the graph
inputs and outputs stay float32, so the runtime feeds the same arrays for
every precision. int8 targets CPUs: dynamic quantisation of the weight
MatMuls. Which int8 recipe is best differs between checkpoints, so the
exporter measures each of ``INT8_RECIPES`` against PyTorch and keeps the
fastest one that is about as close as the closest. ``STATIC_INT8`` (QDQ,
activation ranges calibrated on sample images) is what the benchmarks compare
against: on the 2-core reference machine, idle, it ran the ViT-B/32 image
tower at 0.86-0.96x the speed of dynamic int8 and a little less accurately, so the
exporter does not use it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

# Only the weight MatMuls (attention projections, MLPs, the final projection):
# they hold almost all of the compute. The patch-embedding Conv stays float
# (ConvInteger is slow in ORT and the first layer is usually the most
# sensitive); so does the token-embedding Gather, which costs no time.
QUANTIZED_OPS = ("MatMul", "Gemm")


@dataclass(frozen=True)
class Int8Recipe:
    """Arguments of ``onnxruntime.quantization.quantize_dynamic`` (or ``quantize_static``) worth comparing."""

    weight_type: str  # a QuantType name: "QInt8" (U8S8 kernels) or "QUInt8" (U8U8)
    per_channel: bool
    static: bool = False  # QDQ with u8 activations whose ranges are calibrated (MinMax) on sample inputs

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "op_types": list(QUANTIZED_OPS)}


# In order of preference (speed). s8 weights use ORT's fast U8S8 kernels; u8
# weights (U8U8) were ~1.5x slower on ViT-B/32 here but avoid the 16-bit
# saturation U8S8 can hit on x86 CPUs without VNNI, so they win only when
# clearly more accurate.
INT8_RECIPES = (
    Int8Recipe("QInt8", per_channel=True),
    Int8Recipe("QInt8", per_channel=False),
    Int8Recipe("QUInt8", per_channel=True),
)
# A later recipe must beat an earlier one's min cosine by more than this.
INT8_TOLERANCE = 1e-4
STATIC_INT8 = Int8Recipe("QInt8", per_channel=True, static=True)


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
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=recipe.per_channel,
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
        activation_type=QuantType.QUInt8,
        weight_type=QuantType[recipe.weight_type],
        op_types_to_quantize=list(QUANTIZED_OPS),
    )
