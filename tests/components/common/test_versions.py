"""boston_model/versions.py against the real embedded S3 store: versions are immutable and verified."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from boston_model.errors import BadInput
from boston_model.store import StoreError
from boston_model.versions import (
    MANIFEST,
    ModelLocation,
    fetch_version,
    new_version,
    push_version,
    read_champion,
    write_champion,
)


def _model_folder(folder: Path, bias: float) -> Path:
    """A model folder's shape (card + SavedModel files); the bytes differ with ``bias``."""
    (folder / "1" / "variables").mkdir(parents=True)
    (folder / "1" / "saved_model.pb").write_bytes(b"graph " + str(bias).encode())
    (folder / "1" / "variables" / "variables.index").write_bytes(b"index")
    (folder / "boston_model.json").write_text(json.dumps({"bias": bias}))
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def location() -> ModelLocation:
    return ModelLocation(f"versions-{uuid.uuid4().hex[:10]}", "boston-housing", "20261201T120000Z-0123abcd")


def test_a_stored_version_comes_back_byte_for_byte(store, location, tmp_path):
    model = _model_folder(tmp_path / "model", bias=22.5)
    manifest = push_version(store, location, model)
    assert sorted(manifest["files"]) == sorted(_files(model))
    fetched = fetch_version(store, location.uri, tmp_path / "fetched")
    assert fetched["version"] == location.version
    assert _files(tmp_path / "fetched") == _files(model)


def test_a_version_cannot_be_overwritten(store, location, tmp_path):
    first = _model_folder(tmp_path / "first", bias=22.5)
    push_version(store, location, first)
    keys_before = store.list_keys(location.bucket, location.prefix)
    with pytest.raises(StoreError, match="already exists; versions are immutable"):
        push_version(store, location, _model_folder(tmp_path / "second", bias=30.0))
    assert store.list_keys(location.bucket, location.prefix) == keys_before
    fetch_version(store, location.uri, tmp_path / "fetched")
    assert _files(tmp_path / "fetched") == _files(first)  # still the first upload, every byte


def test_an_upload_without_its_manifest_is_not_a_version(store, location, tmp_path):
    model = _model_folder(tmp_path / "model", bias=22.5)
    store.ensure_bucket(location.bucket)
    for rel in _files(model):  # every file, but the manifest (written last) never arrived
        store.upload_file(location.bucket, location.prefix + rel, model / rel)
    with pytest.raises(BadInput, match=f"has no {MANIFEST}: the upload is incomplete"):
        fetch_version(store, location.uri, tmp_path / "fetched")


def test_a_changed_file_fails_verification(store, location, tmp_path):
    model = _model_folder(tmp_path / "model", bias=22.5)
    push_version(store, location, model)
    store.put_bytes(location.bucket, location.prefix + "1/saved_model.pb", b"graph 99.9")  # same size, other bytes
    with pytest.raises(BadInput, match="1/saved_model.pb does not match its sha256"):
        fetch_version(store, location.uri, tmp_path / "fetched")


def test_version_ids_sort_by_time_and_name_the_card(tmp_path):
    a = _model_folder(tmp_path / "a", bias=22.5)
    b = _model_folder(tmp_path / "b", bias=30.0)
    earlier, later = new_version(a, now=1_764_590_400), new_version(a, now=1_764_590_401)
    assert earlier < later and earlier.split("-")[1] == later.split("-")[1]
    assert new_version(a, now=1_764_590_400) != new_version(b, now=1_764_590_400)  # content-addressed suffix
    assert earlier.startswith("20251201T")


def test_the_champion_record_points_at_one_version(store, location, tmp_path):
    assert read_champion(store, location.bucket, location.name) is None
    push_version(store, location, _model_folder(tmp_path / "model", bias=22.5))
    written = write_champion(store, location, {"metrics": {"rmse": 4.9}})
    assert read_champion(store, location.bucket, location.name) == written
    assert (written["version"], written["uri"]) == (location.version, location.uri)
