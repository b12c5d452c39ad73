"""The HTTP API: routes with their declared actions, the spec's status codes and headers, Lambda's limits.

`endpoints.Api.handle(Request) -> Response` is the one entry both adapters call; `router` matches
names with slashes; `service` wires a config into stores, registries and the API. It may import
auth, the model, storage, config and spec.
"""
