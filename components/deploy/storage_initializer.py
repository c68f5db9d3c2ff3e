"""KServe's storage-initializer, as its image runs it: ``python3 -m components.deploy.storage_initializer SRC DEST``.

The copying is kserve-storage's own code (``kserve_storage.Storage``, what KServe's ``storage-initializer`` image
runs), configured only by KServe's environment names: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``S3_USE_HTTPS``, ``S3_VERIFY_SSL``. Like KServe's entrypoint it
takes pairs of source URI and destination folder.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Copies each ``SRC`` into its ``DEST`` folder; one line on stderr and exit 1 if a copy fails."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or len(args) % 2:
        print("usage: storage_initializer SRC_URI DEST_PATH [SRC_URI DEST_PATH ...]", file=sys.stderr)
        return 2
    from kserve_storage import Storage

    try:
        Storage.download_files(args[0::2], args[1::2])
    except Exception as exc:  # noqa: BLE001 - kserve-storage raises bare Exception; the deploy step reads this line
        print(f"storage-initializer: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
