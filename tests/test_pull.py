"""``assetlens models pull`` with the real huggingface_hub client against a stand-in Hub on 127.0.0.1.

A tiny CLIP and a tiny SigLIP are exported by our exporter, re-laid-out as each Hub layout lays its files
out (immich's towers renamed to ``image``/``text`` and given int32 tokens with onnx, so its adapter runs
for real), served by tests/hub_stub.py, pulled, and searched against the export of the same weights.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import socket
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")

from helpers import run_main  # noqa: E402
from hub_stub import TOKEN, HubStub  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from assetlens.engine import registry  # noqa: E402
from assetlens.engine.errors import ModelVerificationError  # noqa: E402
from assetlens.engine.hub import onnx_opset, pull, self_check_vectors  # noqa: E402
from assetlens.engine.library import Library  # noqa: E402
from assetlens.engine.models import DEMO_ROOT, ModelManifest, load_facts, model_rows  # noqa: E402
from assetlens.engine.registry import ImageSpec, ModelSpec, Reference, RepoPin, TextSpec  # noqa: E402
from assetlens.engine.sources import check_preprocessing  # noqa: E402
from assetlens.export.onnx_export import export_model, quantize_export, synthetic_images  # noqa: E402

QUERIES = ("a red chair", "a photo of a cat", "blue stripes on a wall")
LAYOUTS = ("immich-clip", "immich-siglip", "onnx-community-clip", "fastembed-siglip")


@pytest.fixture(scope="module")
def checkpoints(request: pytest.FixtureRequest) -> dict[str, Path]:
    """The tiny CLIP and SigLIP checkpoints of test_export and test_siglip, by family."""
    return {family: request.getfixturevalue(f"tiny_{family}") for family in ("clip", "siglip")}


@pytest.fixture(scope="module")
def exports(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Our own fp32 export of each tiny checkpoint."""
    out = tmp_path_factory.mktemp("pull-exports")
    return {family: export_model(checkpoint, out / family) for family, checkpoint in checkpoints.items()}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pull-pictures")
    for index, image in enumerate(synthetic_images(8, seed=5)):
        image.save(folder / f"picture-{index}.png")
    return folder


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A fresh stand-in Hub that the environment points huggingface_hub at; an empty model cache and HF home."""
    with HubStub() as stub:
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        monkeypatch.setenv("ASSETLENS_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        yield stub


# ------------------------------------------------------------------ layouts


def _rename_input(model: onnx.ModelProto, old: str, new: str, elem_type: int) -> None:
    """Make the graph take ``new`` (of ``elem_type``) where it took ``old``: a Cast (or Identity) feeds ``old``."""
    graph = model.graph
    (spec,) = [i for i in graph.input if i.name == old]
    shape = [d.dim_param or d.dim_value for d in spec.type.tensor_type.shape.dim]
    graph.input.remove(spec)
    graph.input.insert(0, helper.make_tensor_value_info(new, elem_type, shape))
    if elem_type == spec.type.tensor_type.elem_type:
        node = helper.make_node("Identity", [new], [old])
    else:
        node = helper.make_node("Cast", [new], [old], to=spec.type.tensor_type.elem_type)
    graph.node.insert(0, node)


def _without_mask(model: onnx.ModelProto, like: str) -> None:
    """Replace the ``attention_mask`` input by ones shaped like ``like`` (a fixed-length graph needs none)."""
    graph = model.graph
    masks = [i for i in graph.input if i.name == "attention_mask"]
    if not masks:
        return
    graph.input.remove(masks[0])
    ones = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    graph.node.insert(0, helper.make_node("ConstantOfShape", ["mask_shape"], ["attention_mask"], value=ones))
    graph.node.insert(0, helper.make_node("Shape", [like], ["mask_shape"]))


def _immich_files(export: Path) -> dict[str, bytes]:
    facts = load_facts(export)
    image = onnx.load(str(export / "image.onnx"))
    _rename_input(image, "pixel_values", "image", TensorProto.FLOAT)
    text = onnx.load(str(export / "text.onnx"))
    _without_mask(text, "text")
    _rename_input(text, "input_ids", "text", TensorProto.INT32)
    onnx.checker.check_model(text)
    preprocess = {
        "size": [facts.image.crop_size, facts.image.crop_size],
        "mode": "RGB",
        "mean": list(facts.image.mean),
        "std": list(facts.image.std),
        "interpolation": facts.image.resample,
        "resize_mode": "shortest" if facts.image.resize == "shortest-edge-crop" else "squash",
        "fill_color": 0,
    }
    config = {"embed_dim": facts.embedding_dim, "text_cfg": {"context_length": facts.text.context_length}}
    return {
        "visual/model.onnx": image.SerializeToString(),
        "textual/model.onnx": text.SerializeToString(),
        "textual/tokenizer.json": (export / "tokenizer.json").read_bytes(),
        "visual/preprocess_cfg.json": json.dumps(preprocess).encode(),
        "config.json": json.dumps(config).encode(),
    }


def _hf_files(export: Path, checkpoint: Path) -> dict[str, bytes]:
    return {
        "onnx/vision_model.onnx": (export / "image.onnx").read_bytes(),
        "onnx/text_model.onnx": (export / "text.onnx").read_bytes(),
        "tokenizer.json": (export / "tokenizer.json").read_bytes(),
        "preprocessor_config.json": (checkpoint / "preprocessor_config.json").read_bytes(),
        "config.json": (checkpoint / "config.json").read_bytes(),
    }


def _pin(hub: HubStub, name: str, files: dict[str, bytes]) -> RepoPin:
    repo = hub.add(name, files)
    return RepoPin(name, repo.commit, tuple((p, hashlib.sha256(d).hexdigest()) for p, d in sorted(files.items())))


def _standin(layout: str, hub: HubStub, exports: dict[str, Path], checkpoints: dict[str, Path]) -> ModelSpec:
    """A registry entry for the tiny model of ``layout``, served by ``hub``, pinned, with its export's
    self-check vectors as the reference."""
    kind, family = layout.rsplit("-", 1)
    export = exports[family]
    facts = load_facts(export)
    image_vectors, text_vectors = self_check_vectors(export)
    reference = Reference(
        tuple(float(v) for v in image_vectors.ravel()),
        tuple(float(v) for v in text_vectors.ravel()),
        "our export of the same weights, measured in the test",
    )
    repo = f"standin/tiny-{family}-{kind}"
    if kind == "immich":
        source = registry.immich(_pin(hub, repo, _immich_files(export)))
    elif kind == "onnx-community":
        source = registry.onnx_community(_pin(hub, repo, _hf_files(export, checkpoints[family])))
    else:
        files = _hf_files(export, checkpoints[family])
        vision = {
            "model.onnx": files["onnx/vision_model.onnx"],
            "preprocessor_config.json": files["preprocessor_config.json"],
        }
        text = {"model.onnx": files["onnx/text_model.onnx"], "tokenizer.json": files["tokenizer.json"]}
        source = registry.fastembed(_pin(hub, f"{repo}-vision", vision), _pin(hub, f"{repo}-text", text))
    image = ImageSpec(
        facts.image.crop_size, facts.image.resize, facts.image.resample, facts.image.mean, facts.image.std
    )
    text_spec = TextSpec(
        facts.text.context_length,
        facts.text.padding,
        facts.text.pad_token_id,
        facts.text.lowercase,
        facts.text.padding_side,
    )
    source = dataclasses.replace(source, normalised=True, reference=reference)
    return ModelSpec(
        f"standin-{layout}",
        repo,
        family,  # type: ignore[arg-type]
        facts.embedding_dim,
        image,
        text_spec,
        "MIT",
        sources=(source,),
    )


@pytest.fixture
def standin(
    request: pytest.FixtureRequest,
    hub: HubStub,
    exports: dict[str, Path],
    checkpoints: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> ModelSpec:
    """The registry with one more entry: the stand-in of the layout the test is parametrised with."""
    spec = _standin(request.param, hub, exports, checkpoints)
    monkeypatch.setattr(registry, "MODELS", (*registry.MODELS, spec))
    return spec


def _ranking(db: Path, model: str | Path, folder: Path) -> list[list[tuple[str, float]]]:
    with Library(db, model=model, device="cpu") as lib:
        lib.index(folder)
        return [[(h.filename, h.score) for h in lib.search(q, k=8, show_duplicates=True)] for q in QUERIES]


def _installed(spec: ModelSpec, precision: str = "fp32") -> Path:
    from assetlens.engine.models import model_root

    return model_root(spec) / precision


# ------------------------------------------------------------------- tests


@pytest.mark.slow
@pytest.mark.store
@pytest.mark.parametrize("standin", LAYOUTS, indirect=True)
def test_pull_per_layout_then_search_ranks_as_our_export(
    standin: ModelSpec,
    hub: HubStub,
    exports: dict[str, Path],
    pictures: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_main(capsys, "models", "pull", standin.name)
    assert code == 0, err
    assert "checksums verified; self-check: matches the registry's reference" in out
    folder = _installed(standin)
    assert sorted(p.name for p in folder.iterdir()) == ["image.onnx", "manifest.json", "text.onnx", "tokenizer.json"]
    assert not (folder.parent / ".pull").exists()
    manifest = ModelManifest.load(folder)
    source = standin.sources[0]
    assert manifest.name == standin.hf_id
    assert manifest.source.startswith(f"hf://{source.repo.repo}@{source.repo.revision}")
    assert manifest.text.token_dtype == source.token_dtype
    assert manifest.parity.image_min_cosine >= 0.9999
    assert manifest.parity.text_min_cosine >= 0.9999
    for file, digest in manifest.files.items():
        assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == digest
    family = standin.family
    pulled = _ranking(tmp_path / "pulled.db", standin.name, pictures)
    ours = _ranking(tmp_path / "ours.db", exports[family], pictures)
    for got, want in zip(pulled, ours, strict=True):
        assert [name for name, _ in got] == [name for name, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("standin", ["onnx-community-clip"], indirect=True)
@pytest.mark.parametrize("wrong", ["onnx/vision_model.onnx", "tokenizer.json"])
def test_checksum_mismatch_is_refused(
    standin: ModelSpec, wrong: str, hub: HubStub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = standin.sources[0]
    bad = tuple((p, "0" * 64 if p == wrong else d) for p, d in source.repo.sha256)
    spec = dataclasses.replace(
        standin, sources=(dataclasses.replace(source, repo=dataclasses.replace(source.repo, sha256=bad)),)
    )
    monkeypatch.setattr(registry, "MODELS", (*registry.MODELS[:-1], spec))
    code, _, err = run_main(capsys, "models", "pull", spec.name)
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    if wrong.endswith(".onnx"):  # the Hub publishes LFS digests: refused before the download
        assert f"the registry pins {'0' * 64}" in err
        assert hub.gets(wrong) == []
    else:
        assert f"not the {'0' * 64} the registry pins; it was deleted" in err
        assert hub.gets(wrong) == [None]
    assert not _installed(spec).exists()


@pytest.mark.slow
@pytest.mark.parametrize("standin", ["immich-siglip"], indirect=True)
def test_interrupted_download_is_resumed_next_time(
    standin: ModelSpec, hub: HubStub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # huggingface_hub writes whole chunks (10 MB); 4 KB ones let a tiny file be cut after five of them.
    monkeypatch.setattr("huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE", 4096)
    hub.cut_once["visual/model.onnx"] = 5 * 4096
    code, _, err = run_main(capsys, "models", "pull", standin.name)
    assert code == 1
    assert "The download was interrupted; run the same command again to resume it" in err
    assert not _installed(standin).exists()
    code, _, err = run_main(capsys, "models", "pull", standin.name)
    assert code == 0, err
    assert hub.gets("visual/model.onnx") == [None, f"bytes={5 * 4096}-"]
    assert load_facts(_installed(standin)).files["image.onnx"] == standin.sources[0].repo.digest("visual/model.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("standin", ["fastembed-siglip"], indirect=True)
def test_offline_mode_and_an_unreachable_hub_each_say_so(
    standin: ModelSpec, hub: HubStub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_main(capsys, "models", "pull", standin.name)
    assert (code, err) == (
        1,
        f"error: Hugging Face's offline mode (HF_HUB_OFFLINE) is on, so {standin.name} cannot be downloaded; "
        "run once with network, or copy the model folder, or export from a local checkpoint.\n",
    )
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    code, _, err = run_main(capsys, "models", "pull", standin.name)
    assert (code, err) == (
        1,
        f"error: Cannot reach the Hub (http://127.0.0.1:{port}); run once with network, or copy the model folder, "
        "or export from a local checkpoint.\n",
    )
    assert hub.log == []
    assert not _installed(standin).parent.exists() or not _installed(standin).exists()


@pytest.mark.slow
@pytest.mark.parametrize("standin", ["onnx-community-clip"], indirect=True)
def test_gated_repository_needs_a_token(
    standin: ModelSpec, hub: HubStub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.gated.add(standin.sources[0].repo.repo)
    code, _, err = run_main(capsys, "models", "pull", standin.name)
    assert code == 1
    assert f"error: {standin.sources[0].repo.repo} is a gated repository (HTTP 401)" in err
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    code, _, err = run_main(capsys, "models", "pull", standin.name)
    assert code == 0, err


@pytest.mark.slow
@pytest.mark.parametrize("standin", ["immich-siglip"], indirect=True)
def test_a_canonicalizing_entry_gets_its_punctuation_rule_in_the_pulled_tokenizer(
    standin: ModelSpec, hub: HubStub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tokenizers import Tokenizer

    from assetlens.engine.encoders import Encoder

    spec = dataclasses.replace(standin, text=dataclasses.replace(standin.text, canonicalize=True))
    monkeypatch.setattr(registry, "MODELS", tuple(spec if m is standin else m for m in registry.MODELS))
    code, out, err = run_main(capsys, "models", "pull", spec.name)
    assert code == 0, err
    assert "self-check: matches the registry's reference" in out  # its captions have nothing to canonicalise
    messy, clean = "A  red chair, (please)!", "a red chair please"
    served = Tokenizer.from_str(hub.repos[standin.sources[0].repo.repo].files["textual/tokenizer.json"].decode())
    assert served.encode(messy.lower()).ids != served.encode(clean).ids
    encoder = Encoder(load_facts(_installed(spec)), device="cpu")
    ids, _ = encoder.tokenize([messy, clean])
    assert ids[0].tolist() == ids[1].tolist()
    vectors = encoder.encode_texts([messy, clean])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


@pytest.mark.slow
@pytest.mark.store
@pytest.mark.parametrize("standin", ["immich-clip"], indirect=True)
def test_index_pulls_a_missing_model_with_progress_unless_told_not_to(
    standin: ModelSpec, hub: HubStub, pictures: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("index", str(pictures), "--model", standin.name, "--device", "cpu")
    code, _, err = run_main(capsys, *args, "--db", str(tmp_path / "off.db"), "--no-download")
    assert code == 1
    assert f"is not here yet; download it with: assetlens models pull {standin.hf_id} --precision fp32" in err
    assert hub.log == []
    code, out, err = run_main(capsys, *args, "--db", str(tmp_path / "on.db"))
    assert code == 0, err
    assert f"{standin.name} is not here yet; downloading it from the Hugging Face Hub (" in err
    assert out.startswith("8 indexed, 0 unchanged")
    assert _installed(standin).is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("standin", ["fastembed-siglip"], indirect=True)
def test_unpinned_entry_is_refused_unless_trusted_and_then_its_pins_are_printed(
    standin: ModelSpec, hub: HubStub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = standin.sources[0]
    bare = dataclasses.replace(
        source,
        repo=RepoPin(source.repo.repo),
        text_repo=RepoPin(source.text_repo.repo),  # type: ignore[union-attr]
    )
    monkeypatch.setattr(registry, "MODELS", (*registry.MODELS[:-1], dataclasses.replace(standin, sources=(bare,))))
    code, _, err = run_main(capsys, "models", "pull", standin.name)
    assert code == 1
    assert "has no recorded pins" in err and "--trust-unpinned" in err
    assert hub.log == []
    code, out, err = run_main(capsys, "models", "pull", standin.name, "--trust-unpinned")
    assert code == 0, err
    for pin in source.repos:
        assert f"  RepoPin({pin.repo!r}, {pin.revision!r}, {pin.sha256!r})" in out
    assert load_facts(_installed(standin)).source.startswith(f"hf://{source.repo.repo}@{source.repo.revision}")


@pytest.mark.slow
@pytest.mark.parametrize("standin", ["immich-clip"], indirect=True)
def test_a_model_that_misses_its_reference_is_not_installed(
    standin: ModelSpec, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = standin.sources[0]
    assert source.reference is not None
    wrong = dataclasses.replace(source.reference, text=tuple(-v for v in source.reference.text))
    spec = dataclasses.replace(standin, sources=(dataclasses.replace(source, reference=wrong),))
    monkeypatch.setattr(registry, "MODELS", (*registry.MODELS[:-1], spec))
    code, _, err = run_main(capsys, "models", "pull", spec.name)
    assert code == 1
    assert "error: The text tower does not reproduce the registry's reference (min cosine -1.0" in err
    assert not _installed(spec).exists()
    assert [p.name for p in _installed(spec).parent.iterdir()] == [".pull"]  # the verified files, kept


@pytest.mark.slow
@pytest.mark.parametrize("standin", ["onnx-community-clip"], indirect=True)
def test_a_revision_the_hub_does_not_have_is_refused(
    standin: ModelSpec, hub: HubStub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = standin.sources[0]
    moved = dataclasses.replace(source, repo=dataclasses.replace(source.repo, revision="f" * 40))
    monkeypatch.setattr(registry, "MODELS", (*registry.MODELS[:-1], dataclasses.replace(standin, sources=(moved,))))
    code, _, err = run_main(capsys, "models", "pull", standin.name)
    assert (code, err) == (
        1,
        f"error: {source.repo.repo} has no commit the registry pins (HTTP 404); nothing was installed.\n",
    )
    assert [method for method, _, _ in hub.log] == ["GET"]  # the revision asked, no file


@pytest.mark.slow
@pytest.mark.parametrize("standin", ["onnx-community-clip"], indirect=True)
def test_a_full_disk_is_one_sentence_and_the_next_pull_resumes(
    standin: ModelSpec, hub: HubStub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from huggingface_hub import file_download

    real_get = file_download.http_get

    files = hub.repos[standin.sources[0].repo.repo].files

    def disk_full(url: str, temp_file, **kwargs: object) -> None:
        """The first 4 KB of the file arrive, then the disk is full."""
        temp_file.write(next(data for path, data in files.items() if url.endswith(path))[:4096])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_download, "http_get", disk_full)
    code, _, err = run_main(capsys, "models", "pull", standin.name)
    assert code == 1
    assert err.startswith("error: The disk holding ") and err.endswith(
        " is full; free some space and run the pull again (it resumes).\n"
    )
    assert not _installed(standin).exists()
    monkeypatch.setattr(file_download, "http_get", real_get)
    code, _, err = run_main(capsys, "models", "pull", standin.name)
    assert code == 0, err
    assert hub.gets("onnx/vision_model.onnx") == ["bytes=4096-"]


@pytest.mark.unit
def test_preprocessing_file_that_disagrees_with_the_registry_is_refused(tmp_path: Path) -> None:
    spec = registry.find_model("siglip2-base-patch16-224")
    assert spec is not None
    source = spec.sources[0]
    cfg = {"size": [224, 224], "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic", "resize_mode": "squash"}
    path = tmp_path / "preprocess_cfg.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ModelVerificationError) as caught:
        check_preprocessing(source, spec, path)
    assert str(caught.value) == (
        "immich-app/ViT-B-16-SigLIP2__webli's visual/preprocess_cfg.json disagrees with the registry's preprocessing "
        "for siglip2-base-patch16-224 (resampling bicubic, registry bilinear); nothing was installed."
    )
    path.write_text(json.dumps({**cfg, "interpolation": "bilinear"}))
    check_preprocessing(source, spec, path)


@pytest.mark.unit
def test_shipped_entries_are_unpinned_and_refused_without_asking_the_hub(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ASSETLENS_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: a request would fail otherwise
    for spec in registry.MODELS:
        for source in spec.sources:
            assert all(pin.revision is None and pin.sha256 == () for pin in source.repos), spec.name
            assert source.reference is None
        if spec.sources:
            with pytest.raises(ModelVerificationError, match="has no recorded pins"):
                pull(spec.name, spec.sources[0].precisions[0])
    listed = {row.spec.name: row.to_dict()["sources"] for row in model_rows()}
    assert listed["clip-vit-base-patch32"][0] == {
        "layout": "immich",
        "repos": ["immich-app/ViT-B-32__openai"],
        "precisions": ["fp32"],
        "pinned": {"fp32": False},
        "reference": False,
    }
    assert listed["demo"] == []


@pytest.mark.unit
def test_opset_is_read_from_the_graph_without_onnx() -> None:
    manifest = ModelManifest.load(DEMO_ROOT / "fp32")
    assert onnx_opset(DEMO_ROOT / "fp32" / "image.onnx") == manifest.opset == 17
    assert (
        onnx_opset(DEMO_ROOT / "fp32" / "text.onnx")
        == onnx.load(str(DEMO_ROOT / "fp32" / "text.onnx")).opset_import[0].version
    )


@pytest.mark.slow
@pytest.mark.parametrize("standin", ["onnx-community-clip"], indirect=True)
def test_int8_is_pulled_from_the_quantised_variant(
    standin: ModelSpec,
    hub: HubStub,
    exports: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    int8 = quantize_export(exports["clip"], tmp_path / "int8")
    source = standin.sources[0]
    files = hub.repos[source.repo.repo].files
    files["onnx/vision_model_quantized.onnx"] = (int8 / "image.onnx").read_bytes()
    files["onnx/text_model_quantized.onnx"] = (int8 / "text.onnx").read_bytes()
    digests = tuple(sorted((p, hashlib.sha256(d).hexdigest()) for p, d in files.items()))
    pin = dataclasses.replace(source.repo, sha256=digests)
    spec = dataclasses.replace(standin, sources=(dataclasses.replace(source, repo=pin),))
    monkeypatch.setattr(registry, "MODELS", (*registry.MODELS[:-1], spec))
    code, out, err = run_main(capsys, "models", "pull", spec.name, "--precision", "int8")
    assert code == 0, err
    assert "self-check: matches the registry's reference" in out
    facts = load_facts(_installed(spec, "int8"))
    assert facts.precision == "int8"
    assert facts.files["image.onnx"] == load_facts(int8).files["image.onnx"]
    assert 0.99 <= facts.parity.image_min_cosine < 1.0
    assert hub.gets("onnx/vision_model.onnx") == []
