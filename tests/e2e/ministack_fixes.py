"""ministack (a local AWS emulator that runs Python Lambdas without Docker) with the fixes `chalice deploy` needs.

Run as `python tests/e2e/ministack_fixes.py` in a venv that has ministack (it pins its own botocore,
so not the project's venv). Two gaps in ministack 1.5.33's API Gateway v1, patched at start-up:
ImportRestApi (POST /restapis?mode=import, how Chalice creates its REST API) was not routed, so the
API had no resources; and Chalice's `replace /minimumCompressionSize ''` was stored as a string that
botocore cannot read back as the integer the API model says it is.
"""

from __future__ import annotations

import json
from typing import Any

from ministack.services import apigateway_v1 as gateway

_original = gateway.handle_request


async def handle_request(method: str, path: str, headers: Any, body: bytes, query_params: Any) -> Any:
    """Route ImportRestApi to ministack's own OpenAPI importer; everything else as before."""
    parts = [p for p in path.strip("/").split("/") if p]
    if parts == ["restapis"] and method == "POST" and gateway._qp(query_params, "mode") == "import":
        spec = json.loads(body)
        api_id = gateway._import_rest_api(spec, {"binaryMediaTypes": spec.get("x-amazon-apigateway-binary-media-types", [])})
        return gateway._get_rest_api(api_id)
    answer = await _original(method, path, headers, body, query_params)
    if len(parts) == 2 and parts[0] == "restapis" and method == "PATCH":
        api = gateway._rest_apis.get(parts[1])
        size = api.get("minimumCompressionSize") if api else None
        if isinstance(size, str):  # '' turns compression off (null); digits are a number
            api["minimumCompressionSize"] = int(size) if size.strip() else None
            return gateway._get_rest_api(parts[1])
    return answer


gateway.handle_request = handle_request

if __name__ == "__main__":
    from ministack.app import main

    main()
