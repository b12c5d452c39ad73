#!/usr/bin/env bash
# LocalStack runs this once its services are ready: the bucket and tables `zotless init-aws` creates,
# named as in examples/config-s3.json unless the ZOTLESS_* variables say otherwise. Safe to rerun.
# Outside the container: AWS_ENDPOINT_URL=http://localhost:4566 localstack/init/ready.d/init-zotless.sh
set -euo pipefail

BUCKET="${ZOTLESS_BUCKET:-zotless-images}"
PREFIX="${ZOTLESS_ROOTDIRECTORY:-registry/}"
BLOB_TABLE="${ZOTLESS_BLOB_TABLE:-ZotlessBlobTable}"
META_TABLE="${ZOTLESS_META_TABLE:-ZotlessRepoMetaTable}"
UPLOADS_TABLE="${ZOTLESS_UPLOADS_TABLE:-ZotlessUploadsTable}"
REGION="${AWS_DEFAULT_REGION:-us-east-1}"
ABORT_DAYS=7  # chalicelib.deploy.provision.abort_incomplete_days for the default 24h upload TTL

# awslocal inside the LocalStack container; the plain AWS CLI at an explicit endpoint elsewhere.
awscli() {
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
    aws --endpoint-url "$AWS_ENDPOINT_URL" --region "$REGION" "$@"
  else
    awslocal --region "$REGION" "$@"
  fi
}

if ! awscli s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
  if [ "$REGION" = us-east-1 ]; then
    awscli s3api create-bucket --bucket "$BUCKET" >/dev/null
  else
    awscli s3api create-bucket --bucket "$BUCKET" --create-bucket-configuration "LocationConstraint=$REGION" >/dev/null
  fi
  echo "created bucket $BUCKET"
fi
awscli s3api put-public-access-block --bucket "$BUCKET" \
  --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
awscli s3api put-bucket-encryption --bucket "$BUCKET" \
  --server-side-encryption-configuration '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
awscli s3api put-bucket-ownership-controls --bucket "$BUCKET" \
  --ownership-controls 'Rules=[{ObjectOwnership=BucketOwnerEnforced}]'
awscli s3api put-bucket-lifecycle-configuration --bucket "$BUCKET" --lifecycle-configuration \
  "{\"Rules\":[{\"ID\":\"zotless-abort-incomplete-multipart-uploads\",\"Status\":\"Enabled\",\"Filter\":{\"Prefix\":\"$PREFIX\"},\"AbortIncompleteMultipartUpload\":{\"DaysAfterInitiation\":$ABORT_DAYS}}]}"

# table NAME CREATE-TABLE-ARGS...: on-demand billing, created only when missing.
table() {
  local name="$1"
  shift
  if awscli dynamodb describe-table --table-name "$name" >/dev/null 2>&1; then
    return
  fi
  awscli dynamodb create-table --table-name "$name" --billing-mode PAY_PER_REQUEST "$@" >/dev/null
  awscli dynamodb wait table-exists --table-name "$name"
  echo "created table $name"
}

table "$BLOB_TABLE" \
  --key-schema AttributeName=digest,KeyType=HASH AttributeName=holder,KeyType=RANGE \
  --attribute-definitions AttributeName=digest,AttributeType=S AttributeName=holder,AttributeType=S \
  AttributeName=gc_shard,AttributeType=S AttributeName=orphan,AttributeType=N \
  --global-secondary-indexes '[{"IndexName":"orphans","KeySchema":[{"AttributeName":"gc_shard","KeyType":"HASH"},{"AttributeName":"orphan","KeyType":"RANGE"}],"Projection":{"ProjectionType":"ALL"}}]'
table "$META_TABLE" \
  --key-schema AttributeName=repo,KeyType=HASH AttributeName=key,KeyType=RANGE \
  --attribute-definitions AttributeName=repo,AttributeType=S AttributeName=key,AttributeType=S
table "$UPLOADS_TABLE" \
  --key-schema AttributeName=id,KeyType=HASH \
  --attribute-definitions AttributeName=id,AttributeType=S

if ! awscli dynamodb describe-time-to-live --table-name "$UPLOADS_TABLE" | grep -q '"TimeToLiveStatus": "ENABL'; then
  awscli dynamodb update-time-to-live --table-name "$UPLOADS_TABLE" \
    --time-to-live-specification Enabled=true,AttributeName=expires >/dev/null
  echo "enabled TTL on $UPLOADS_TABLE.expires"
fi
echo "zotless: bucket $BUCKET and tables $BLOB_TABLE, $META_TABLE, $UPLOADS_TABLE are ready"
