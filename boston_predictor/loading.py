"""Where a model comes from and how its folder is checked: a local folder (KServe's storage initializer's
/mnt/models) or an S3 version fetched and verified by its manifest. No TensorFlow: the card holds the folded map."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boston_model.card import LinearModel, linear_model_from_card, read_card
from boston_model.errors import BadInput

# `boston_model.versions.MANIFEST` (a test checks they agree). That module imports the S3 client (minio, about
# 0.2 s of start-up), which a local folder needs only to verify a manifest it holds: it is imported then.
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from: a local folder (KServe's storage initializer: /mnt/models) or an S3 version."""

    model_dir: Path | None = None
    storage_uri: str | None = None



def load_folder(folder: Path) -> tuple[dict[str, Any], LinearModel]:
    """Checks a model folder (manifest, no empty or missing files) and loads the folded model from its card."""
    if not folder.is_dir():
        raise BadInput("the model folder does not exist or is not a folder")
    manifest_path = folder / MANIFEST
    try:
        if manifest_path.is_file():
            # KServe's storage initializer copies the whole version prefix, manifest included: verify it here too.
            from boston_model.versions import verify_manifest

            try:
                verify_manifest(folder, json.loads(manifest_path.read_text()))
            except BadInput as exc:
                raise BadInput(str(exc)) from None
        empty = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
                       and p.stat().st_size == 0)
        if empty:
            raise BadInput(f"the model folder has empty file(s): {', '.join(empty[:5])}")
        saved_model = folder / "1" / "saved_model.pb"
        if not saved_model.is_file():
            raise BadInput("the model folder has no 1/saved_model.pb (an incomplete copy?)")
        card = read_card(folder)
        return card, linear_model_from_card(card)
    except BadInput as exc:
        raise BadInput(str(exc)) from None
    except json.JSONDecodeError:
        raise BadInput(f"{MANIFEST} is not valid JSON") from None
    except OSError as exc:
        raise BadInput(f"cannot read the model folder ({exc.strerror or type(exc).__name__})") from None


def manifest_version(folder: Path) -> str | None:
    try:
        version = json.loads((folder / MANIFEST).read_text()).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return str(version) if version else None


def name_from_uri(uri: str | None) -> str | None:
    """``s3://bucket/<name>/<version>/`` -> ``<name>``."""
    if not uri:
        return None
    parts = [p for p in uri.partition("://")[2].split("/") if p]
    return parts[1] if len(parts) >= 3 else None


def fetch_from_s3(uri: str, dest: Path) -> str | None:
    """Downloads and verifies a version by its manifest; returns the version id."""
    from boston_model.store import ObjectStore, S3Settings, StoreError
    from boston_model.versions import fetch_version

    try:
        settings = S3Settings.from_env()
        if settings is None:
            raise BadInput("--storage_uri needs MINIO_ENDPOINT, MINIO_ACCESS_KEY and MINIO_SECRET_KEY to be set")
        manifest = fetch_version(ObjectStore(settings), uri, dest)
    except (StoreError, BadInput, ValueError) as exc:
        raise BadInput(str(exc)) from None
    version = manifest.get("version")
    return str(version) if version else None
