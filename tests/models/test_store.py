"""The content-addressed model store: atomic manifests, digests and file names that cannot leave
their folder, reference-counted deletes, split-GGUF links."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from jarvis.errors import Conflict, InvalidInput, ModelNotFound
from jarvis.models.installed import find_installed
from jarvis.models.store import Manifest, ModelStore, normalize_digest, safe_file_name, sha256_file, write_atomic
from tests.support.gguf_files import gguf_bytes


@pytest.fixture
def store(tmp_path) -> ModelStore:
    return ModelStore(tmp_path / "models")


def put_blob(store: ModelStore, data: bytes) -> str:
    digest = f"sha256-{hashlib.sha256(data).hexdigest()}"
    store.blob_path(digest).write_bytes(data)
    return digest


def manifest(name: str, digest: str, *, files: list[dict] | None = None, **extra) -> Manifest:
    return Manifest(name=name, digest=digest, size=1, source="hf", file=f"{name}.gguf", files=files or [], **extra)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- digests and names --------------------------------------------------------------------------------

HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize("digest", [f"sha256-{HEX}", f"sha256:{HEX}"])
def test_both_digest_spellings_name_one_blob(store, digest):
    assert normalize_digest(digest) == f"sha256-{HEX}"
    assert store.blob_path(digest) == store.blobs / f"sha256-{HEX}"


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "../../x",
        f"sha256-../../{HEX[:58]}",
        f"sha256-{HEX[:63]}",
        f"sha256-{HEX}0",
        f"sha256-{HEX.upper()}",
        f"sha256_{HEX}",
        f"sha512-{HEX}",
        HEX,
        f"sha256-{HEX}\n",
        f"sha256-{HEX}/../../x",
        f"/sha256-{HEX}",
    ],
)
def test_anything_but_a_sha256_digest_is_refused_before_it_touches_a_path(store, digest):
    with pytest.raises(InvalidInput):
        normalize_digest(digest)
    with pytest.raises(InvalidInput):
        store.blob_path(digest)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("model-Q4_K_M.gguf", "model-Q4_K_M.gguf"),
        ("Q8_0/model-Q8_0.gguf", "model-Q8_0.gguf"),
        ("../../etc/passwd", "passwd"),
        ("/abs/path/model.gguf", "model.gguf"),
    ],
)
def test_safe_file_names_keep_only_the_last_component(name, safe):
    assert safe_file_name(name) == safe


@pytest.mark.parametrize("name", ["", "..", ".", "dir/", "a/..", "a\\..\\b.gguf", "x\x00.gguf", "x" * 256])
def test_unsafe_file_names_are_refused(name):
    with pytest.raises(InvalidInput):
        safe_file_name(name)


# -- manifests ------------------------------------------------------------------------------------------


def test_write_atomic_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "dir" / "x.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert leftovers(target.parent) == ["x.json"]


def test_save_get_list_round_trip(store):
    digest = put_blob(store, b"GGUF one")
    saved = manifest("hf.co/acme/x:Q4_K_M", digest.replace("-", ":", 1), quantization="Q4_K_M")
    store.save(saved)
    assert saved.digest == digest  # stored in one spelling
    got = store.get("hf.co/acme/x:Q4_K_M")
    assert got == saved
    assert [m.name for m in store.list()] == ["hf.co/acme/x:Q4_K_M"]
    # the name is quoted into one file name: no folders appear
    assert leftovers(store.manifests) == ["hf.co%2Facme%2Fx%3AQ4_K_M.json"]


@pytest.mark.parametrize("name", ["../../escape", "/abs", "..", "a/../../b"])
def test_manifest_names_never_leave_the_manifests_folder(store, name):
    store.save(manifest(name, put_blob(store, b"GGUF")))
    assert [p.parent for p in store.manifests.iterdir()] == [store.manifests]
    assert store.get(name).name == name
    store.delete(name)
    assert leftovers(store.manifests) == []


def test_list_skips_half_written_and_incomplete_manifests(store):
    good = put_blob(store, b"GGUF good")
    store.save(manifest("good", good))
    # a manifest cut short, one of another shape, one whose blob is not (yet) there, and the
    # temporary file of a write in progress
    (store.manifests / "cut.json").write_text(json.dumps(manifest("cut", good).to_dict())[:40])
    (store.manifests / "alien.json").write_text(json.dumps({"name": "alien", "surprise": 1}))
    store.save(manifest("no-blob", f"sha256-{HEX}"))
    (store.manifests / ".writing.json.tmp-123").write_text(json.dumps(manifest("writing", good).to_dict()))
    assert [m.name for m in store.list()] == ["good"]
    assert store.get("cut") is None and store.get("no-blob") is None and store.get("alien") is None


def test_save_refuses_bad_digests_and_file_names(store):
    with pytest.raises(InvalidInput):
        store.save(manifest("bad", "sha256-../../x"))
    files = [{"file": "..", "digest": put_blob(store, b"GGUF"), "size": 4}]
    with pytest.raises(InvalidInput):
        store.save(manifest("bad-file", files[0]["digest"], files=files))
    split = [{"file": "a.gguf", "digest": "../x", "size": 4}]
    with pytest.raises(InvalidInput):
        store.save(manifest("bad-part", files[0]["digest"], files=split))
    assert leftovers(store.manifests) == []


# -- deletes ---------------------------------------------------------------------------------------------


def test_delete_keeps_a_blob_another_manifest_uses(store):
    shared = put_blob(store, b"GGUF shared")
    store.save(manifest("qwen:Q4_K_M", shared))
    store.save(manifest("hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M", shared))
    assert store.delete("qwen:Q4_K_M") == []
    assert store.blob_path(shared).exists()
    assert [m.name for m in store.list()] == ["hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M"]
    assert store.delete("hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M") == [shared]
    assert not store.blob_path(shared).exists() and store.list() == []


def test_delete_keeps_a_split_part_another_manifest_uses(store):
    parts = [put_blob(store, f"GGUF part {i}".encode()) for i in range(3)]
    files = [{"file": f"m-0000{i + 1}-of-00003.gguf", "digest": d, "size": 11} for i, d in enumerate(parts)]
    store.save(manifest("split", parts[0], files=files))
    store.save(manifest("single", parts[1]))
    assert sorted(store.delete("split")) == sorted([parts[0], parts[2]])
    assert store.blob_path(parts[1]).exists() and store.get("single")


def test_delete_unknown_model(store):
    with pytest.raises(ModelNotFound):
        store.delete("nothing:here")


# -- split GGUF ---------------------------------------------------------------------------------------------


def test_split_gguf_is_opened_through_named_links(store):
    parts = [put_blob(store, gguf_bytes(seed=i)) for i in range(3)]
    names = [f"Q8_0/big-Q8_0-0000{i + 1}-of-00003.gguf" for i in range(3)]
    files = [{"file": n, "digest": d, "size": 1} for n, d in zip(names, parts, strict=False)]
    store.save(manifest("hf.co/acme/big:Q8_0", parts[0], files=files))
    first = store.model_path("hf.co/acme/big:Q8_0")
    assert first.name == "big-Q8_0-00001-of-00003.gguf"
    links = sorted(first.parent.iterdir())
    assert [link.name for link in links] == [n.rsplit("/", 1)[1] for n in names]
    assert [link.resolve() for link in links] == [store.blob_path(d).resolve() for d in parts]
    assert sha256_file(first) == parts[0].removeprefix("sha256-")
    # idempotent, and a stale link is repaired
    links[1].unlink()
    links[1].symlink_to(store.blob_path(parts[2]))
    assert store.model_path("hf.co/acme/big:Q8_0") == first
    assert links[1].resolve() == store.blob_path(parts[1]).resolve()
    store.delete("hf.co/acme/big:Q8_0")
    assert not first.parent.exists()


def test_single_file_model_path_is_its_blob(store):
    digest = put_blob(store, b"GGUF single")
    store.save(manifest("one", digest))
    assert store.model_path("one") == store.blob_path(digest)
    assert store.model_path("missing") is None


# -- finding installed models ------------------------------------------------------------------------------


def test_find_installed_by_name_or_key(store):
    shared = put_blob(store, b"GGUF q")
    store.save(manifest("qwen:Q4_K_M", shared))
    store.save(manifest("hf.co/acme/x:Q4_K_M", shared))
    store.save(manifest("hf.co/acme/x:Q8_0", put_blob(store, b"GGUF q8")))
    store.save(manifest("tiny:1b", put_blob(store, b"GGUF tiny")))
    assert find_installed(store, "qwen").name == "qwen:Q4_K_M"
    assert find_installed(store, "qwen:q4_k_m").name == "qwen:Q4_K_M"
    assert find_installed(store, "hf.co/acme/x", "Q8_0").name == "hf.co/acme/x:Q8_0"
    assert find_installed(store, "https://huggingface.co/acme/x:Q8_0").name == "hf.co/acme/x:Q8_0"
    assert find_installed(store, "registry.ollama.ai/library/tiny:1b").name == "tiny:1b"
    with pytest.raises(Conflict) as several:
        find_installed(store, "hf.co/acme/x")
    assert several.value.details["matches"] == ["hf.co/acme/x:Q4_K_M", "hf.co/acme/x:Q8_0"]
    with pytest.raises(ModelNotFound):
        find_installed(store, "mistral")
    with pytest.raises(InvalidInput):
        find_installed(store, "hf.co/../x")
