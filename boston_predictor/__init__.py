"""The Boston Housing predictor: a small `kserve.Model` run by `kserve.ModelServer`, strict and fast.

Run it as ``boston-predictor`` (or ``python -m boston_predictor``); ``--help`` lists KServe's flags and ours.

What it adds to KServe's Python server, and why:

* Predictions go through `LinearModel.predict`, the path evaluate uses; the folded affine map is proven equal to the
  SavedModel's outputs when the model is saved, again at load (the card's probe rows), and once more through the
  full request path (self-check) before the model reports ready. TensorFlow is never imported here: it would add
  about 2 s of start-up and 500 MB of memory to run a 13-weight dot product.
* V1 ``:predict`` and V2 ``/infer`` are answered by a thin ASGI front placed before KServe's FastAPI app; everything
  else (health, readiness, metadata, ``/metrics``) is KServe's own app with its usual semantics.
* Every bad request is a 4xx with ``{"error": "..."}`` naming the problem; bodies are capped (413 before the body
  is read), batches are capped, non-finite numbers never go in or come out.
* The REST server binds ``--bind`` (default 127.0.0.1), not the 0.0.0.0 KServe 0.21 hard-codes; V2 over gRPC
  (``--enable_grpc true``: on in the InferenceService, off locally) binds the same address, not KServe's ``[::]``.
* Every 200 is true to the V2 spec (absent optional keys are left out, not ``null``), whichever path answers.
* KServe's model repository extension (unauthenticated load/unload) is off unless ``--enable_model_repository``.
* No log line per request unless ``--log_requests``; KServe's Prometheus histograms are still observed.

Modules, by concern (each imports only those above it):

* `errors`: `RequestError` (a refused request) and `BadInput`.
* `spec`: `ModelSpec` (what the request path knows about the model), limits, metrics.
* `rows`: JSON values to float64 rows, the shared checks, the guarded `predict_rows`.
* `protocol`: V1 and V2 request bodies to rows.
* `loading`: `ModelSource`, the model folder checks, the S3 fetch.
* `model`: `BostonHousingModel`, the `kserve.Model`.
* `front`: `PredictFront`, the ASGI fast path and the body limit.
* `grpc_v2`: the V2 gRPC service on the same request path.
* `kserve_adapter`: the only module touching KServe's private names.
* `server`: the error handlers and `build_server`.
* `cli`: the ``boston-predictor`` command.
"""
