"""KFP component: load and validate the data set."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components import config


@dsl.component(base_image=config.IMAGE, install_kfp_package=False)
def load_data(
    dataset: Output[Dataset],
    source: str,
    drop_columns: str,
    s3_endpoint: str,
):
    """Loads the Boston Housing table, validates it and writes it as CSV.

    Args:
        dataset: The validated table (CSV with header).
        source: "bundled" (the CSV shipped in the image), s3://bucket/key, http(s)://… or a local path.
        drop_columns: Comma-separated feature columns to drop, e.g. "B" (see the data card).
        s3_endpoint: S3/MinIO endpoint (host:port) for s3:// sources; empty = MINIO_ENDPOINT from the environment.
    """
    from components.common.runtime import fail_with_one_line, object_store
    from components.load.core import load_table

    with fail_with_one_line("load"):
        def read_s3(uri: str) -> bytes:
            from boston_model.store import parse_s3_uri

            bucket, key = parse_s3_uri(uri)
            return object_store(s3_endpoint).get_bytes(bucket, key)

        table = load_table(source, drop_columns, s3_reader=read_s3)
        table.frame.to_csv(dataset.path, index=False)
        dataset.metadata.update(table.metadata)
        print(f"loaded {len(table.frame)} rows x {table.frame.shape[1]} columns from {table.source} "
              f"(sha256 {table.sha256[:12]}…)")
