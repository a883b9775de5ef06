"""The model registry: its invariants, name resolution through it, ``assetlens models`` and the README table."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from assetlens.cli import main
from assetlens.engine.errors import ExportError, ModelNotFoundError
from assetlens.engine.library import model_ref
from assetlens.engine.manifest import ModelManifest
from assetlens.engine.models import (
    DEMO_ROOT,
    default_model_name,
    export_dir_for,
    exported_precisions,
    model_root,
    resolve_model_dir,
)
from assetlens.engine.registry import (
    DEFAULT_MODEL,
    HALF,
    MODELS,
    OPENAI_MEAN,
    OPENAI_STD,
    PRECISIONS,
    RECOMMENDATIONS,
    find_model,
)

pytestmark = [pytest.mark.unit]

README = Path(__file__).resolve().parent.parent / "README.md"
BASE = "clip-vit-base-patch32"
# (HF id, dim, image size, ImageNet-1k top-1, COCO text->image R@1, licence) as published.
PUBLISHED = {
    ("openai/clip-vit-base-patch32", 512, 224, 63.3, 30.4, "MIT"),
    ("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", 512, 224, 66.6, 39.3, "MIT"),
    ("openai/clip-vit-large-patch14", 768, 224, 75.5, 36.5, "MIT"),
    ("google/siglip-base-patch16-224", 768, 224, 76.0, 47.8, "Apache-2.0"),
    ("google/siglip2-base-patch32-256", 768, 256, 74.0, 47.2, "Apache-2.0"),
    ("google/siglip2-base-patch16-224", 768, 224, 78.2, 52.1, "Apache-2.0"),
    ("google/siglip2-so400m-patch14-384", 1152, 384, 84.1, 55.8, "Apache-2.0"),
}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache holding, as if exported, the default model at int8 (a copy of the demo's files)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("ASSETLENS_CACHE", str(root))
    monkeypatch.delenv("ASSETLENS_MODEL", raising=False)
    shutil.copytree(DEMO_ROOT / "int8", export_dir_for(DEFAULT_MODEL, "int8"))
    return root


def bytes_under(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


# ------------------------------------------------------------------ invariants


def test_names_and_ids_are_unique() -> None:
    names = [m.name.lower() for m in MODELS]
    ids = [m.hf_id.lower() for m in MODELS if m.hf_id]
    assert len(set(names)) == len(names) == len(MODELS)
    assert len(set(ids)) == len(ids) == len(MODELS) - 2  # the two demos have no Hugging Face id
    assert not set(names) & set(ids)
    assert [m.name for m in MODELS if m.default] == [BASE]


def test_sizes_are_positive_and_precisions_known() -> None:
    for m in MODELS:
        assert m.dim > 0 and m.image.size > 0 and m.text.context_length > 0, m.name
        assert m.precisions and set(m.precisions) <= set(PRECISIONS), m.name
        assert m.prompt.count("{}") == 1, m.name


def test_family_rules_are_consistent() -> None:
    families = {m.family for m in MODELS}
    assert families == {"clip", "siglip"}
    for m in MODELS:
        if m.family == "siglip":
            assert (m.image.resize, m.image.mean, m.image.std) == ("squash", HALF, HALF), m.name
            # 64 tokens for the published models; the SigLIP demo's captions need 32
            assert (m.text.padding, m.text.context_length) == ("max-length", 64 if m.hf_id else 32), m.name
        else:
            assert (m.image.resize, m.image.mean, m.image.std) == ("shortest-edge-crop", OPENAI_MEAN, OPENAI_STD)
            assert (m.text.padding, m.text.context_length, m.text.pad_token_id) == ("longest", 77, 49407), m.name
        assert m.text.lowercase, m.name
    # SigLIP's T5 tokenizer pads with </s> (1), SigLIP 2's Gemma tokenizer with <pad> (0).
    assert {m.hf_id: m.text.pad_token_id for m in MODELS if m.family == "siglip" and m.hf_id} == {
        "google/siglip-base-patch16-224": 1,
        "google/siglip2-base-patch32-256": 0,
        "google/siglip2-base-patch16-224": 0,
        "google/siglip2-so400m-patch14-384": 0,
    }


def test_published_entries() -> None:
    found = {
        (m.hf_id, m.dim, m.image.size, m.quality.imagenet_top1, m.quality.coco_text_to_image_r1, m.licence)
        for m in MODELS
        if m.quality is not None
    }
    assert found == PUBLISHED
    assert all(m.quality.source for m in MODELS if m.quality is not None)


def test_demo_entry_is_its_shipped_manifests() -> None:
    demo = find_model("demo")
    assert demo is not None and demo.shipped and demo.hf_id is None and demo.licence == "MIT"
    assert model_root(demo) == DEMO_ROOT
    assert list(exported_precisions(demo)) == list(demo.precisions) == ["fp32", "int8"]
    for precision in demo.precisions:
        manifest = ModelManifest.load(DEMO_ROOT / precision)
        assert manifest.embedding_dim == demo.dim == 64
        assert manifest.image.resize_shortest_edge == manifest.image.crop_size == demo.image.size
        assert (manifest.image.mean, manifest.image.std, manifest.image.resample) == (
            demo.image.mean,
            demo.image.std,
            demo.image.resample,
        )
        assert (manifest.text.context_length, manifest.text.pad_token_id) == (
            demo.text.context_length,
            demo.text.pad_token_id,
        )


def test_recommendations_name_known_models_at_their_precisions() -> None:
    for rec in RECOMMENDATIONS:
        spec = find_model(rec.model)
        assert spec is not None and spec.name == rec.model
        assert rec.precision in spec.precisions


# ------------------------------------------------------------------ resolution


def test_demo_resolves_to_the_package_data(cache: Path) -> None:
    assert resolve_model_dir("demo") == DEMO_ROOT / "fp32"
    assert resolve_model_dir("demo", "int8") == DEMO_ROOT / "int8"
    with pytest.raises(ModelNotFoundError, match=r"^The demo model ships in fp32, int8 precision\(s\), not fp16\.$"):
        resolve_model_dir("demo", "fp16")


@pytest.mark.parametrize("name", [BASE, DEFAULT_MODEL, "OpenAI/CLIP-ViT-Base-Patch32"])
def test_short_name_and_hf_id_find_the_same_export(cache: Path, name: str) -> None:
    expected = cache / "models" / "openai--clip-vit-base-patch32" / "int8"
    assert resolve_model_dir(name, "int8") == expected


def test_unexported_short_name_says_how_to_export(cache: Path) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model_dir("siglip2-base-patch32-256")
    assert "is not here yet; download it with: assetlens models pull siglip2-base-patch32-256" in str(caught.value)
    assert "assetlens export --model siglip2-base-patch32-256 --precision fp32" in str(caught.value)


def test_local_folder_and_unregistered_export_still_resolve(cache: Path, tmp_path: Path) -> None:
    local = tmp_path / "my-model"
    shutil.copytree(DEMO_ROOT / "fp32", local / "fp32")
    assert resolve_model_dir(local) == local / "fp32"
    shutil.copytree(DEMO_ROOT / "fp32", export_dir_for("org/custom-clip", "fp32"))
    assert resolve_model_dir("org/custom-clip") == cache / "models" / "org--custom-clip" / "fp32"


def test_unknown_name_lists_close_matches(cache: Path) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model_dir("siglip2-base")
    message = str(caught.value)
    assert "Unknown model 'siglip2-base'" in message
    assert "siglip2-base-patch32-256, siglip2-base-patch16-224" in message
    assert "assetlens models" in message and "\n" not in message
    with pytest.raises(ModelNotFoundError, match="close matches: clip-vit-large-patch14"):
        resolve_model_dir("clip-vit-large-patch16")


def test_a_short_name_is_recorded_as_its_hf_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert model_ref(BASE) == model_ref(DEFAULT_MODEL) == DEFAULT_MODEL
    assert model_ref("demo") == "demo"
    assert model_ref("org/custom-clip") == "org/custom-clip"
    monkeypatch.setenv("ASSETLENS_MODEL", "siglip2-base-patch16-224")
    assert default_model_name() == "google/siglip2-base-patch16-224"


# ------------------------------------------------------------------ export


def test_export_resolves_a_short_name_to_its_hf_id(cache: Path) -> None:
    onnx_export = pytest.importorskip("assetlens.export.onnx_export")
    said: list[str] = []

    def stop_before_loading(message: str) -> None:
        said.append(message)
        raise ExportError("stop before loading")

    with pytest.raises(ExportError, match="stop before loading"):
        onnx_export.export_model(BASE, precision="fp16", progress=stop_before_loading)
    assert said == [f"Loading {DEFAULT_MODEL}"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("demo", "The demo model ships with AssetLens and has no checkpoint to export"),
    ],
)
def test_export_refuses_what_it_cannot_build(
    capsys: pytest.CaptureFixture[str], cache: Path, name: str, message: str
) -> None:
    pytest.importorskip("assetlens.export.onnx_export")
    assert main(["export", "--model", name]) == 1
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["openai--clip-vit-base-patch32"]


# ------------------------------------------------------------------ assetlens models


def test_models_json_lists_what_is_exported_with_sizes(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in listing["models"]}
    assert list(rows) == [m.name for m in MODELS]
    demo = rows["demo"]
    assert demo["shipped"] and demo["folder"] == str(DEMO_ROOT)
    assert demo["exported"] == {"fp32": bytes_under(DEMO_ROOT / "fp32"), "int8": bytes_under(DEMO_ROOT / "int8")}
    assert demo["size_bytes"] == sum(demo["exported"].values()) > 1_000_000
    base = rows[BASE]
    assert base["default"] and base["hf_id"] == DEFAULT_MODEL and base["dim"] == 512
    assert base["exported"] == {"int8": bytes_under(DEMO_ROOT / "int8")}
    assert base["folder"] == str(cache / "models" / "openai--clip-vit-base-patch32")
    assert (base["imagenet_top1"], base["coco_text_to_image_r1"]) == (63.3, 30.4)
    assert all(row["exported"] == {} for row in rows.values() if not row["shipped"] and row["name"] != BASE)
    assert [r["model"] for r in listing["recommendations"]] == [r.model for r in RECOMMENDATIONS]


def test_models_table(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_name = {line.split()[0]: line for line in lines[1 : len(MODELS) + 1]}
    assert list(by_name) == [m.name for m in MODELS]
    demo_mb = (bytes_under(DEMO_ROOT / "fp32") + bytes_under(DEMO_ROOT / "int8")) / 1e6
    assert by_name["demo"].split()[-4:] == ["fp32,", "int8", f"{demo_mb:.1f}", "MB"]
    int8_mb = f"{bytes_under(DEMO_ROOT / 'int8') / 1e6:.1f}"
    assert by_name[BASE].split()[1:] == ["(default)", "512", "224", "px", "MIT", "63.3", "30.4", "int8", int8_mb, "MB"]
    assert by_name["siglip2-so400m-patch14-384"].split()[-2:] == ["-", "-"]
    for rec in RECOMMENDATIONS:
        assert f"for {rec.machine}: {rec.model} {rec.precision} ({rec.why})" in lines


# ------------------------------------------------------------------ README


def test_readme_table_matches_the_registry() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Choosing a model", 1)[1].split("\n### ", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()]
    table = [row for row in rows if len(row) == 7 and not set(row[0]) <= {"-"}][1:]  # header and rule dropped
    assert [re.sub(r"`([^`]+)`.*", r"\1", row[0]) for row in table] == [m.name for m in MODELS]
    for row, spec in zip(table, MODELS, strict=True):
        assert row[0].endswith("(default)") == spec.default
        assert row[1] == (spec.hf_id or f"(shipped, {' and '.join(spec.precisions)})")
        assert (int(row[2]), int(row[3]), row[4]) == (spec.dim, spec.image.size, spec.licence)
        quality = spec.quality
        expected = [f"{quality.imagenet_top1:.1f}", f"{quality.coco_text_to_image_r1:.1f}"] if quality else ["-", "-"]
        assert row[5:] == expected
    for rec in RECOMMENDATIONS:
        assert f"- {rec.machine}: `{rec.model}` at {rec.precision}" in section
