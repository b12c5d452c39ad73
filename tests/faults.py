"""Fault injection at the AWS client: the answers DynamoDB and S3 give under contention, which moto never gives.

Faults are raw HTTP responses handed to botocore before a request is sent, so botocore parses them,
and its retry logic applies, exactly as it would to the real services' answers. botocore calls
every before-send handler and takes the first answer; ours runs first and sends a faulted request
nowhere, so moto's stub (or a server) never applies it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def response(status: int, body: bytes, content_type: str) -> AWSResponse:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), "x-amzn-RequestId": "fault", "x-amz-request-id": "fault"}
    return AWSResponse("https://fault.invalid/", status, headers, _Raw(body))


def dynamo_error(code: str, message: str = "injected", **extra: Any) -> AWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message, **extra}).encode()
    return response(400, body, "application/x-amz-json-1.0")


def cancelled(*reasons: str) -> AWSResponse:
    """TransactionCanceledException with one reason per item ("None" for the items that were fine)."""
    codes = [{"Code": r} for r in reasons]
    message = f"Transaction cancelled, please refer cancellation reasons for specific reasons {list(reasons)}"
    return dynamo_error("TransactionCanceledException", message, CancellationReasons=codes)


def s3_error(status: int, code: str) -> AWSResponse:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
    return response(status, body, "application/xml")


@dataclass
class Rule:
    operation: str
    answer: Callable[[dict[str, Any]], AWSResponse]
    times: int
    when: Callable[[dict[str, Any]], bool]
    fired: int = 0


@dataclass
class Faults:
    """Rules per client; each answers a matching request up to `times` times, then lets requests through."""

    rules: list[Rule] = field(default_factory=list)
    retried_after_success: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    _after: list[Callable[..., None]] = field(default_factory=list)

    def attach(self, *clients: Any) -> Faults:
        for client in clients:
            client.meta.events.register_first("before-send", self._before_send)
            client.meta.events.register_first("needs-retry", self._needs_retry)
            client.meta.events.register("after-call", self._after_call)
        return self

    def _after_call(self, **kwargs: Any) -> None:
        for handler in list(self._after):
            handler(**kwargs)

    def add(
        self,
        operation: str,
        answer: AWSResponse | Callable[[dict[str, Any]], AWSResponse],
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Rule:
        rule = Rule(operation, answer if callable(answer) else (lambda _body, a=answer: a), times, when or (lambda _body: True))
        self.rules.append(rule)
        return rule

    def after(self, operation: str, action: Callable[[dict[str, Any]], bool]) -> None:
        """Run action(parsed answer) once a call has been answered, to interleave another client's request exactly there.

        The action returns True when it acted; it then stays quiet for the rest of the test.
        """
        state = {"done": False, "acting": False}

        def handler(parsed: dict[str, Any], event_name: str, **_: Any) -> None:
            if state["done"] or state["acting"] or event_name.rsplit(".", 1)[-1] != operation:
                return
            state["acting"] = True  # the action's own calls must not trigger it again
            try:
                state["done"] = bool(action(parsed))
            finally:
                state["acting"] = False

        self._after.append(handler)

    def lose_answer(self, operation: str, times: int = 1) -> None:
        """The write succeeds but its answer is lost (a timeout), so botocore sends it again."""
        self.retried_after_success[operation] = times

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        self.sent[operation] = self.sent.get(operation, 0) + 1
        body = _json_body(request)
        for rule in self.rules:
            if rule.operation == operation and rule.fired < rule.times and rule.when(body):
                rule.fired += 1
                request.url = "https://fault.invalid/"  # no stub matches it, and our answer is taken first
                return rule.answer(body)
        return None

    def _needs_retry(self, response: Any, attempts: int, caught_exception: Any, operation: Any, **_: Any) -> float | None:
        remaining = self.retried_after_success.get(operation.name, 0)
        if remaining and caught_exception is None and response is not None and response[0].status_code == 200:
            self.retried_after_success[operation.name] = remaining - 1
            return 0.0
        return None


def _json_body(request: Any) -> dict[str, Any]:
    try:
        return json.loads(request.body or b"{}")
    except (ValueError, TypeError):
        return {}
