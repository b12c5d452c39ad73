"""Storage: the S3 driver, DynamoDB helpers, and the three stores built on them.

`objectstore` and `dynamo` are the only modules that speak boto3; `blobs` (which repository holds
which digest, dedupe), `uploads` (sessions staged as S3 multipart uploads) and `index` (catalog,
tags, manifests, referrers) use their verbs; `aws` makes the clients and tables. It may import the
spec and the config, never the model, the API or anything above them.
"""
