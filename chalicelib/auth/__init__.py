"""Authentication and access control: htpasswd users, registry tokens, zot's accessControl policy.

It turns an Authorization header into a caller (the model's `access.Caller`) and a refusal into the
right challenge. It may import the model's access vocabulary, config and spec, never the API.
"""
