"""The model format: what the steps write, the store keeps and the predictor serves.

The folded affine map and its card (`card`), an immutable version with its manifest and the champion record
(`versions`), the S3 client that moves them (`store`), and the project's few error types (`errors`). The predictor
image installs this package and `boston_predictor`, nothing else of the project.
"""
