"""The `zotless` client: zli's commands (config, image, cve, repo, search, status) and push, pull, copy.

It speaks HTTP to any registry, so it imports no server package: only the standard library,
click, requests, rich and yaml (tests/unit/test_client_units.py checks this).
"""
