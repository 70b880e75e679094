"""OpenTelemetry (the `otel` extra): a span per request, fast path included, and one per
database statement under it; none carries directive text."""

from __future__ import annotations

import json

from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from charter.app import create_app
from charter.observability.tracing import provider_from_env, wanted
from charter.settings import Settings
from tests.support.api import ADMIN_KEY, new_realm_id

MARKER = "zq-TRACE-MARKER-77d2"
PROMPT = "/v1/realms/{realm_id}/agents/{agent_id}/prompt"


def _dump(span: ReadableSpan) -> str:
    return str(span.to_json())


async def test_requests_and_statements_are_spans_without_text(settings: Settings) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(settings, tracer_provider=provider)
    realm = new_realm_id()
    async with AsyncTestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        assert (await client.post("/v1/realms", json={"id": realm})).status_code == 201
        body = {"level": "realm", "title": MARKER, "body": MARKER, "owner_agent_id": "pilot"}
        created = await client.post(f"/v1/realms/{realm}/directives", json=body)
        assert created.status_code == 201, created.text
        url = f"/v1/realms/{realm}/agents/pilot/prompt"
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        for _ in range(2):  # the second is answered before routing
            answer = await client.get(url, headers={"traceparent": parent})
            assert MARKER in answer.text
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    prompt = [s for s in servers if s.attributes and s.attributes.get("http.route") == PROMPT]
    assert len(prompt) == 2, [s.name for s in servers]
    for span in prompt:
        assert span.name == f"GET {PROMPT}"
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == 200
        assert span.parent is not None  # the caller's traceparent
        assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    creates = [s for s in servers if s.name == "POST /v1/realms/{realm_id}/directives"]
    assert len(creates) == 1
    statements = [s for s in spans if s.kind is SpanKind.CLIENT]
    under_create = [
        s for s in statements if s.parent and s.parent.span_id == creates[0].context.span_id
    ]
    assert any(s.attributes and s.attributes["db.operation.name"] == "INSERT" for s in under_create)
    assert all(s.context.trace_id == creates[0].context.trace_id for s in under_create)
    for span in spans:
        assert MARKER not in _dump(span), span.name
    assert MARKER not in json.dumps([s.name for s in spans])


def test_the_standard_variables_switch_it_on() -> None:
    assert not wanted({})
    assert wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"})
    assert not wanted({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"})
    assert Settings.from_env({"OTEL_TRACES_EXPORTER": "console"}).tracing


def test_the_provider_follows_the_exporter_variable() -> None:
    for exporter in ("console", "otlp", "console,otlp"):
        provider = provider_from_env({"OTEL_TRACES_EXPORTER": exporter})
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "charter"
        provider.shutdown()
    named = provider_from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "fleet"})
    assert named is not None
    assert named.resource.attributes["service.name"] == "fleet"
    named.shutdown()
