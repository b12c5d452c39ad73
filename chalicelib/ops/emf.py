"""The same measures on Lambda, as CloudWatch embedded metric format (EMF) lines: metrics from logs, no API call.

A dozen lines of JSON formatting instead of aws-embedded-metrics or Powertools keeps the bundle and
the cold start as they are. Namespace "zotless"; the metric names are the Prometheus ones, so one
name means one thing in both places. Dimensions stay low-cardinality except {repo} on the upload
and download counts, as zot labels them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from chalicelib.ops.measures import RequestMeasure

NAMESPACE = "zotless"


def emf_document(measure: RequestMeasure, now: float | None = None) -> dict[str, Any]:
    """One request's EMF document: requests by method and code, latency by method and route, and image counts."""
    directives: list[dict[str, Any]] = [
        {"Namespace": NAMESPACE, "Dimensions": [["method", "code"]], "Metrics": [{"Name": "zot_http_requests_total", "Unit": "Count"}]},
        {"Namespace": NAMESPACE, "Dimensions": [["method"], ["method", "route"]],
         "Metrics": [{"Name": "zot_http_method_latency_seconds", "Unit": "Seconds"}]},
    ]
    values: dict[str, Any] = {"zot_http_requests_total": 1, "zot_http_method_latency_seconds": round(measure.seconds, 6)}
    for flag, name in ((measure.upload, "zot_repo_uploads_total"), (measure.download, "zot_repo_downloads_total")):
        if flag:
            directives.append({"Namespace": NAMESPACE, "Dimensions": [["repo"]], "Metrics": [{"Name": name, "Unit": "Count"}]})
            values[name] = 1
    timestamp = int((now if now is not None else time.time()) * 1000)
    labels = {"method": measure.method, "code": str(measure.status), "route": measure.route, "repo": measure.repo}
    return {"_aws": {"Timestamp": timestamp, "CloudWatchMetrics": directives}, **labels, **values}


def emit(measure: RequestMeasure) -> None:
    """One line on stdout inside Lambda (CloudWatch Logs extracts the metrics); on stderr elsewhere (`serve --lambda`)."""
    stream = sys.stdout if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else sys.stderr
    stream.write(json.dumps(emf_document(measure), separators=(",", ":")) + "\n")
    stream.flush()
