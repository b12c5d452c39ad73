"""The registry model: the distribution-spec's semantics over the stores, raising the spec's errors.

`registry` is one storage location's registry; `locations` routes repositories to locations by name
prefix (zot's subPaths); `access` is the caller interface that auth implements and the model asks
before a cross-repository link. It knows nothing of HTTP; it may import storage, config and spec.
"""
