"""zotless core: an OCI registry on S3 and DynamoDB, free of any web framework."""
