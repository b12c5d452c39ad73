"""Deployment to AWS: `zotless init-aws` provisioning, and the CloudFormation templates and IAM policies.

It may import storage's table definitions, the API's limits and the config; nothing imports it but the CLI.
"""
