"""The spec's vocabulary: names, tags and digests, manifests, the error codes and the HTTP messages.

Everything here is pure: no AWS, no configuration, no I/O beyond hashing bytes it is handed. Every
other package may import it; it imports nothing else from chalicelib.
"""
