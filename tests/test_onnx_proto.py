"""The engine's reader of serialised ONNX protobuf (``engine.onnx_proto``) and the int8 identity check built on it
(``models.quantised_from``), against graphs the onnx package writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from assetlens.engine import onnx_proto
from assetlens.engine.hub import onnx_opset
from assetlens.engine.models import quantised_from

pytestmark = [pytest.mark.unit]

WEIGHT = np.arange(12, dtype=np.float32).reshape(3, 4)


def write_graph(path: Path, opsets: list[tuple[str, int]], weight: np.ndarray = WEIGHT) -> Path:
    """A two-node graph (``y = x @ weight + bias``) importing ``opsets`` (domain, version), in that order."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weight"], ["xw"]), helper.make_node("Add", ["xw", "bias"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, weight.shape[1]])],
        initializer=[
            numpy_helper.from_array(weight, "weight"),
            numpy_helper.from_array(np.ones(weight.shape[1], np.float32), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets])
    onnx.save(model, str(path))
    return path


def test_the_default_domain_opset_is_read_after_the_graph(tmp_path: Path) -> None:
    assert onnx_opset(write_graph(tmp_path / "a.onnx", [("com.microsoft", 1), ("", 13)])) == 13
    assert onnx_opset(write_graph(tmp_path / "b.onnx", [("ai.onnx", 17)])) == 17
    assert onnx_opset(write_graph(tmp_path / "c.onnx", [("com.microsoft", 1)])) == 0


def test_initializers_are_the_tensors_fields_by_name(tmp_path: Path) -> None:
    path = write_graph(tmp_path / "m.onnx", [("", 17)])
    found = onnx_proto.initializers(onnx_proto.mapped(path))
    assert found.keys() == {"weight", "bias"}
    fields = dict(found["weight"])
    raw = fields[9]  # TensorProto.raw_data
    assert isinstance(raw, memoryview) and bytes(raw) == WEIGHT.tobytes()
    assert fields[2] == TensorProto.FLOAT  # data_type; dims (field 1) are repeated
    assert [value for number, value in found["weight"] if number == 1] == [3, 4]


@pytest.mark.parametrize("keep", [0, 1, 30, -1])
def test_a_truncated_or_empty_file_is_refused(tmp_path: Path, keep: int) -> None:
    whole = write_graph(tmp_path / "m.onnx", [("", 17)]).read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(whole[:keep])
    with pytest.raises(ValueError):
        onnx_opset(cut)
    with pytest.raises(ValueError):
        onnx_proto.initializers(onnx_proto.mapped(cut))


def test_a_tensor_stored_in_another_file_is_refused(tmp_path: Path) -> None:
    path = write_graph(tmp_path / "m.onnx", [("", 17)])
    model = onnx.load(str(path))
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, size_threshold=0)
    with pytest.raises(ValueError, match="another file"):
        onnx_proto.initializers(onnx_proto.mapped(path))


def test_graphs_sharing_a_tensor_that_differs_past_its_first_block_are_told_apart(tmp_path: Path) -> None:
    weight = np.random.default_rng(0).standard_normal((3000, 256), dtype=np.float32)  # 3 MB: compared in blocks
    changed = weight.copy()
    changed[-1, -1] += 1
    fp32 = write_graph(tmp_path / "fp32.onnx", [("", 17)], weight)
    assert quantised_from(fp32, write_graph(tmp_path / "same.onnx", [("", 13)], weight.copy()))
    assert not quantised_from(fp32, write_graph(tmp_path / "changed.onnx", [("", 17)], changed))
