"""The configuration: zot's config file shape as pydantic models, durations, environment overrides.

It may import only the spec (the name grammar, for sub-path prefixes); everything else reads its
settings from here.
"""
