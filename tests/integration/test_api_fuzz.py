"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis): valid and
invalid requests of every operation against a real ``wa-tasks web`` process, in front of a real
worker and session host, with the API key. No request may be answered with a server error, and
every answer must match the response schema the OpenAPI document gives for its status.

The one 5xx the API gives on purpose, 503 ``host_unavailable`` (a session no host runs yet, e.g.
one the fuzzer just added), is accepted only on the session command routes and only with that
error code in the body.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from support.stack import Stack
from support.web import API_KEY, running_web

pytestmark = pytest.mark.integration

#: Examples per operation and generation mode: enough to find the 5xx classes, bounded so the
#: whole run stays within a few minutes on a busy 2-core machine.
EXAMPLES = 40
#: Routes that ask a session host to act: the only ones where 503 is an answer, not a failure.
#: A valid customer number.
NUMBER = "081234567890"
COMMANDS = r"^/api/whatsapp/sessions/\{session_id\}/(pair|logout|reconnect|probe)$"


@pytest.fixture
def real_ids(stack: Stack) -> dict[str, str]:
    """Something real for the path parameters: a connected session, a template, a sent message,
    a bulk job and a status event (random ids only ever reach the 404s)."""
    stack.add_session("wa-1", priority=1)
    stack.client.create_template("info", "Halo {{ customer_name }}, tagihan {{ amount }}.")
    stack.start()
    stack.wait_connected("wa-1")
    message_id = stack.client.send(
        "081234567890",
        template="info",
        data={"customer_name": "A", "amount": 1},
        callback_url="https://billing.example/wa/status",  # no deliverer runs here: its events wait
    )
    stack.wait_status(message_id, "sent", "delivered", "read")
    job_id = stack.client.send_bulk([{"whatsapp": "081234567891"}], text="Halo")
    event_id = stack.client.webhook_events()[0]["id"]
    return {"session_id": "wa-1", "name": "info", "message_id": message_id, "job_id": job_id, "event_id": event_id}


@pytest.fixture
def api_schema(stack: Stack, real_ids: dict[str, str], tmp_path: Path) -> Iterator[schemathesis.BaseSchema]:
    with running_web(stack.settings, tmp_path / "logs") as base:
        config = schemathesis.Config.from_dict(
            {
                "headers": {"X-API-Key": API_KEY},
                "base-url": base,
                "request-timeout": 30,
                "generation": {"with-security-parameters": False},
            }
        )
        yield schemathesis.openapi.from_url(f"{base}/openapi.json", config=config, headers={"X-API-Key": API_KEY})


def _realistic(body: dict[str, Any]) -> None:
    """Make the fields that random text never gets right name real things (a phone number, the
    session, the template), so the rest of the body is fuzzed past the first check."""
    for field, value in (("to", NUMBER), ("phone", NUMBER), ("sessionId", "wa-1"), ("template", "info")):
        if body.get(field) is not None:
            body[field] = value
    for recipient in body.get("recipients") or []:
        if isinstance(recipient, dict):
            recipient["whatsapp"] = NUMBER
    if body.get("template") is not None:
        # Send the "info" template (text or template, not both) with the variables it needs
        body.pop("text", None)
        shared = "templateData" if "recipients" in body else "data"
        given = body.get(shared) if isinstance(body.get(shared), dict) else {}
        body[shared] = {**given, "customer_name": "Budi", "amount": 150000}


def _realistic_dropin(fields: dict[str, Any]) -> None:
    """The drop-in endpoints' number fields as a real number (they come in the query string too),
    and Fonnte's delay, schedule and country code as values it takes."""
    for field, value in (
        ("number", NUMBER),
        ("target", NUMBER),
        ("delay", "5-10"),
        ("schedule", "0"),
        ("countryCode", "62"),
    ):
        if fields.get(field) is not None:
            fields[field] = value


def _check(case: schemathesis.Case, seen: Counter[tuple[str, int]], real: bool) -> None:
    if real and case.operation.path.startswith("/compat/"):
        for fields in (case.query, case.body):
            if isinstance(fields, dict):
                _realistic_dropin(fields)
    if isinstance(case.body, dict):
        if real:
            _realistic(case.body)
        if case.operation.path == "/api/whatsapp/sessions" and case.body.get("transport") == "neonize":
            # A valid neonize session would make the session host start a real WhatsApp client
            # (a child process dialling out, forever retrying offline) per fuzzed session.
            case.body["transport"] = "simulated"
            case.body.pop("options", None)
    response = case.call()
    seen[(case.operation.label, response.status_code)] += 1
    if response.status_code == 503 and re.match(COMMANDS, case.operation.path):
        assert response.json()["error"] == "host_unavailable", response.text
        return
    # No 5xx, and every answer has the shape the schema promises (its status's model, JSON)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance, content_type_conformance])


def _fuzzer(cases: Any, seen: Counter[tuple[str, int]], real: bool) -> Any:
    @hypothesis.given(case=cases)
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        database=None,
    )
    def fuzz(case: schemathesis.Case) -> None:
        _check(case, seen, real)

    return fuzz


def test_no_request_gets_a_server_error(api_schema: schemathesis.BaseSchema, real_ids: dict[str, str]) -> None:
    # Each operation is fuzzed on its own (valid inputs, then invalid ones), and every failing
    # operation is reported, not only the first. (schemathesis' pytest loader, from_fixture, does
    # not work with pytest 9.2, hence the loop.)
    failures: list[str] = []
    seen: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    # Deleting comes last, so that the other operations still find the real session and template
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        passes = [("positive", GenerationMode.POSITIVE, False), ("negative", GenerationMode.NEGATIVE, False)]
        # The drop-ins take their number in the query string too: only a real one gets past it.
        if names or operation.body or operation.path.startswith("/compat/"):
            passes.append(("real ids", GenerationMode.POSITIVE, True))
        for label, mode, real in passes:
            path_parameters = {n: real_ids[n] for n in names} if real and names else None

            fuzz = _fuzzer(operation.as_strategy(generation_mode=mode, path_parameters=path_parameters), seen, real)
            try:
                fuzz()
            except hypothesis.errors.Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing to make invalid (no parameters)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
                failures.append(f"{operation.label} ({label}): {exc}")
    print(f"{sum(seen.values())} requests:", sorted(seen.items()))
    assert not failures, "\n\n".join(failures)
    # The key was accepted and valid requests were answered on every operation
    for operation in operations:
        answered = {status for (label, status), n in seen.items() if label == operation.label}
        assert 401 not in answered and 400 not in answered, (operation.label, answered)
        assert answered & {200, 201, 202, 409}, (operation.label, answered)
