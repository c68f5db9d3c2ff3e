"""The embedded local object store (SeaweedFS ``weed mini``) that `boston-pipeline run` starts when no MinIO is set.

`server` starts, reuses and stops it; `ports` picks its ports; `records` keeps its files under ``<state>/s3/``.
"""

from pipeline.embedded_s3.server import (
    ServerRecord,
    ensure_running,
    is_weed_process,
    read_server,
    settings_for_run,
    stop,
    volumes_on_disk,
    volumes_pending,
    weed_binary,
)

__all__ = [
    "ServerRecord", "ensure_running", "is_weed_process", "read_server", "settings_for_run", "stop",
    "volumes_on_disk", "volumes_pending", "weed_binary",
]
