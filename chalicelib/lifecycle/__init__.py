"""The storage lifecycle: garbage collection, retention, scrub, and the index rebuilt from S3.

Each runs on a schedule or from the command line against a wired service, using only conditional
writes so it is safe while pushes run. It may import the API's service wiring and everything below.
"""
