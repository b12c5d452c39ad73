"""The `zotless` command: serve, gc, scrub, rebuild-index and init-aws.

The top of the import graph: it may import any package, and none imports it.
"""
