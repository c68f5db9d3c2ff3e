"""Project-wide defaults: the steps' own (re-exported from `components.config`) and the pipeline's.

Constants only, no I/O at import. The CLI, the pipeline and the notebook read them from here; the step library reads
`components.config`, never this module.
"""

from __future__ import annotations

from components.config import (  # noqa: F401 - re-exported: one name space for the CLI, pipeline and notebook
    BATCH_SIZE,
    BUCKET,
    BUNDLED_SOURCE,
    CANARY_TRAFFIC_PERCENT,
    CHAMPION_TOLERANCE,
    CPU_LIMIT,
    CPU_REQUEST,
    DEPLOY_TARGET,
    EPOCHS,
    FEATURES,
    GRPC,
    IMAGE,
    ISTIO_SIDECAR,
    KSERVE_NAMESPACE,
    LEARNING_RATE,
    LOCAL_HOST,
    LOCAL_PORT,
    MAX_REPLICAS,
    MAX_RMSE,
    MAX_TRAINING_DRIFT,
    MEMORY_LIMIT,
    MEMORY_REQUEST,
    MIN_REPLICAS,
    MODEL_NAME,
    PATIENCE,
    PREDICTOR_IMAGE,
    READY_TIMEOUT_S,
    SEED,
    SERVICE_ACCOUNT,
    SERVING_RUNTIME,
    TARGET,
    TEST_SIZE,
    TF_SERVING_VERSION,
    VALIDATION_SPLIT,
)

PIPELINE_NAME = "boston-housing"

# object store on a cluster: Kubeflow Pipelines >= 2.16 ships SeaweedFS as its S3 store (MinIO before that).
# The compiled pipeline defaults to it; `boston-pipeline run` passes "" so steps read MINIO_ENDPOINT instead.
CLUSTER_S3_ENDPOINT = "seaweedfs.kubeflow:9000"
# The Secret (kserve/s3-secret.yaml) holding the S3 keys; the data keys are the ones KServe's storage initializer
# reads, mapped onto the names our steps read. Only names live here, never values.
S3_SECRET_NAME = "boston-housing-s3"
S3_SECRET_KEY_TO_ENV = {"AWS_ACCESS_KEY_ID": "MINIO_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY": "MINIO_SECRET_KEY"}

# step retries for the steps that read over the network (load from s3/http, evaluate's champion lookup)
NETWORK_RETRIES = 2
RETRY_BACKOFF = "10s"

# Kubeflow UI run: a whole run may take at most this long; train's pod resources.
PIPELINE_TIMEOUT_S = 3600
TRAIN_CPU_REQUEST, TRAIN_CPU_LIMIT = "1", "2"
TRAIN_MEMORY_REQUEST, TRAIN_MEMORY_LIMIT = "1Gi", "2Gi"
