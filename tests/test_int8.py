"""int8 that computes the same on every CPU: the graphs' weights cannot saturate the int16 pair sums of
x86 kernels without VNNI, shown structurally and by emulating those kernels on a real layer; and a
warning when an older int8 export is loaded on such a CPU. Nothing here depends on the CPU it runs on."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from assetlens.catalogue import Item
from assetlens.engine.cpu import CpuInfo, this_cpu
from assetlens.engine.encoders import Encoder
from assetlens.engine.manifest import ModelManifest
from assetlens.engine.models import DEMO_ROOT, load_facts
from assetlens.engine.preprocess import model_batch

onnx = pytest.importorskip("onnx")

from assetlens.export.quantize import (  # noqa: E402
    INT16_MAX,
    choose_recipe,
    int16_pair_sum,
    integer_matmul_weights,
    prepare_int8,
)

pytestmark = [pytest.mark.unit]

INT8_DIR = DEMO_ROOT / "int8"
AVX2 = CpuInfo("x86_64", ("avx2",))
AVX512_NO_VNNI = CpuInfo("x86_64", ("avx2", "avx512f", "avx512bw"))
VNNI = CpuInfo("x86_64", ("avx2", "avx512f", "avx512bw", "avx512_vnni"))
ARM = CpuInfo("aarch64", None)


def avx2_u8s8(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """u8 (M, K) x s8 (K, N) as vpmaddubsw + vpmaddwd compute it: each two adjacent products along K
    are added into a saturating int16, then widened and summed in int32. Returns the product and how
    many pair sums saturated."""
    a32, b32 = a.astype(np.int32), b.astype(np.int32)
    if a32.shape[1] % 2:
        a32, b32 = np.pad(a32, ((0, 0), (0, 1))), np.pad(b32, ((0, 1), (0, 0)))
    pairs = a32[:, 0::2, None] * b32[None, 0::2, :] + a32[:, 1::2, None] * b32[None, 1::2, :]
    clipped = np.clip(pairs, -32768, 32767)
    return clipped.sum(axis=1), int(np.count_nonzero(clipped != pairs))


def test_emulation_matches_int32_when_nothing_saturates() -> None:
    a = np.array([[255, 255, 3, 0]], dtype=np.uint8)
    b = np.array([[127], [127], [1], [0]], dtype=np.int8)
    got, saturated = avx2_u8s8(a, b)
    assert saturated == 1 and got[0, 0] == 32767 + 3  # 255*127*2 = 64770 is clipped to 32767
    got, saturated = avx2_u8s8(a, b // 2)
    assert saturated == 0 and got[0, 0] == 255 * 63 * 2 == int((a.astype(np.int32) @ (b // 2).astype(np.int32))[0, 0])


@pytest.mark.parametrize("tower", ["image", "text"])
def test_shipped_int8_weights_cannot_saturate(tower: str) -> None:
    model = onnx.load(str(INT8_DIR / f"{tower}.onnx"))
    weights = integer_matmul_weights(model)
    integer_nodes = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert len(weights) == len(integer_nodes) == 25  # 4 blocks x 6 MatMuls + the projection
    recipe = ModelManifest.load(INT8_DIR).parity.int8_recipes[tower]
    for name, w in weights.items():
        if recipe.weight_type == "QInt8":
            assert w.dtype == np.int8, name
            assert int(w.min()) >= -64 and int(w.max()) <= 64, name
            assert 2 * 255 * int(np.abs(w.astype(np.int32)).max()) <= 32767, name
        else:
            assert w.dtype == np.uint8, name  # u8 x u8 kernels widen to int32 before adding
    assert int16_pair_sum(INT8_DIR / f"{tower}.onnx") <= INT16_MAX


def test_shipped_int8_manifest_records_cpu_and_safety() -> None:
    parity = ModelManifest.load(INT8_DIR).parity
    assert parity.int8_saturation_safe is True
    assert parity.cpu is not None and parity.cpu.machine
    assert parity.reference == "onnx fp32" and parity.image_min_cosine >= 0.99 and parity.text_min_cosine >= 0.99
    for recipe in parity.int8_recipes.values():
        assert recipe.weight_type == "QUInt8" or recipe.reduce_range


def _layer_inputs(graph: onnx.ModelProto, pixels: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, u8 activations, s8 weights) of every MatMulInteger, run on ``pixels`` with the graph as written."""
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.graph.initializer}
    nodes = [n for n in graph.graph.node if n.op_type == "MatMulInteger"]
    names = [n.input[0] for n in nodes]
    for name in names:
        graph.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UINT8, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    outputs = session.run(names, {"pixel_values": pixels})
    return [(n.input[1], a.reshape(-1, a.shape[-1]), inits[n.input[1]]) for n, a in zip(nodes, outputs, strict=True)]


@pytest.mark.parity
def test_avx2_emulation_old_recipe_saturates_new_does_not(catalogue: list[tuple[Path, Item]], tmp_path: Path) -> None:
    """The image tower on product shots: s8 weights at full range (the recipe before 7-bit weights)
    saturate AVX2's pair sums and change the results; the shipped graph is exact under emulation."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    facts = load_facts(DEMO_ROOT / "fp32")
    pixels = model_batch([Image.open(path).convert("RGB") for path, _ in catalogue[:6]], facts.image)
    prepared, full_range = tmp_path / "prepared.onnx", tmp_path / "full-range.onnx"
    prepare_int8(facts.path(facts.image.file), prepared)
    quantize_dynamic(
        str(prepared), str(full_range), op_types_to_quantize=["MatMul", "Gemm"], per_channel=True,
        weight_type=QuantType.QInt8,
    )  # fmt: skip
    assert int16_pair_sum(full_range) == 2 * 255 * 127 > INT16_MAX

    old = _layer_inputs(onnx.load(str(full_range)), pixels)
    saturated = {name: avx2_u8s8(a, w)[1] for name, a, w in old}
    worst = max(saturated, key=saturated.__getitem__)
    assert saturated[worst] > 0
    a, w = next((a, w) for name, a, w in old if name == worst)
    emulated, _ = avx2_u8s8(a, w)
    exact = a.astype(np.int32) @ w.astype(np.int32)
    assert np.abs(emulated - exact).max() > 1000  # whole units of 255*127 lost

    new = _layer_inputs(onnx.load(str(INT8_DIR / "image.onnx")), pixels)
    assert [name for name, _, _ in new] == [name for name, _, _ in old]
    for name, a, w in new:
        emulated, count = avx2_u8s8(a, w)
        assert count == 0, name
        np.testing.assert_array_equal(emulated, a.astype(np.int32) @ w.astype(np.int32))


@pytest.fixture
def unmarked_int8(tmp_path: Path) -> Path:
    """The shipped int8 as an older export records it: without the saturation-safe mark."""
    folder = tmp_path / "old-int8"
    shutil.copytree(INT8_DIR, folder)
    manifest = ModelManifest.load(folder)
    dataclasses.replace(
        manifest, name="old-clip", parity=dataclasses.replace(manifest.parity, int8_saturation_safe=False)
    ).save(folder)
    return folder


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "int8" in r.getMessage()]


@pytest.mark.parametrize("cpu", [AVX2, AVX512_NO_VNNI])
def test_unmarked_int8_warns_once_on_saturating_cpu(
    unmarked_int8: Path, caplog: pytest.LogCaptureFixture, cpu: CpuInfo
) -> None:
    facts = load_facts(unmarked_int8)
    Encoder(facts, device="cpu", cpu=cpu)
    Encoder(facts, device="cpu", cpu=cpu)
    messages = _warnings(caplog)
    assert len(messages) == 1
    assert "'old-clip'" in messages[0] and "without VNNI" in messages[0] and "--precision fp32" in messages[0]
    assert "\n" not in messages[0] and messages[0].endswith(".")


@pytest.mark.parametrize("cpu", [VNNI, ARM, CpuInfo("x86_64", None), CpuInfo("x86_64", ("avx2", "avx_vnni"))])
def test_unmarked_int8_is_quiet_where_it_computes_exactly_or_cannot_tell(
    unmarked_int8: Path, caplog: pytest.LogCaptureFixture, cpu: CpuInfo
) -> None:
    Encoder(load_facts(unmarked_int8), device="cpu", cpu=cpu)
    assert _warnings(caplog) == []


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_shipped_demo_is_quiet_on_avx2(caplog: pytest.LogCaptureFixture, precision: str) -> None:
    Encoder(load_facts(DEMO_ROOT / precision), device="cpu", cpu=AVX2)
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    ("flags_line", "expected", "saturates"),
    [
        ("flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw", ("avx2", "avx512f", "avx512bw"), True),
        ("flags\t\t: fpu avx2 avx512f avx512bw avx512_vnni", ("avx2", "avx512f", "avx512bw", "avx512_vnni"), False),
        ("flags\t\t: fpu avx2 avx_vnni", ("avx2", "avx_vnni"), False),
    ],
)
def test_cpu_flags_from_cpuinfo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags_line: str, expected: tuple[str, ...], saturates: bool
) -> None:
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\n{flags_line}\n\nprocessor\t: 1\n{flags_line}\n")
    cpu = this_cpu(cpuinfo)
    assert cpu == CpuInfo("x86_64", expected)
    assert cpu.u8s8_saturates is saturates
    assert this_cpu(tmp_path / "absent").flags is None


@pytest.mark.parametrize(
    ("cosines", "kept"),
    [
        ((0.99975, 0.99960, 0.99987), 0),  # the fast 7-bit s8 recipe is good enough: kept over the slower u8
        ((0.99850, 0.99800, 0.99990), 2),  # the s8 recipes fall short of the floor: u8
        ((0.99000, 0.99005, 0.98000), 0),  # none reaches the floor: the first within the tolerance of the best
    ],
)
def test_the_fastest_recipe_that_is_good_enough_is_kept(cosines: tuple[float, ...], kept: int) -> None:
    assert choose_recipe(list(cosines)) == kept
