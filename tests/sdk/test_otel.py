"""The `otel` callback's default encoding (OTLP/HTTP protobuf), read by OpenTelemetry's own message classes
(`opentelemetry-proto`): every request sent with the official SDKs arrives as one span of the caller's trace with
the GenAI attributes and the usage the SDK saw (issue 16, OpenTelemetry). tests/tests/otel.rs covers propagation
upstream, sampling and failures over OTLP/JSON."""

import http.server
import threading
import time

import anthropic
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from conftest import MASTER_KEY, model_entry, running_tollgate
from helpers import HI

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"


class Collector(http.server.ThreadingHTTPServer):
    """Decodes every POST to /v1/traces as an ExportTraceServiceRequest; keeps (resource, span) pairs."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), CollectorHandler)
        self.spans = []
        self.content_types = []
        self.lock = threading.Lock()


class CollectorHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path != "/v1/traces":
            self.send_response(404)
            self.end_headers()
            return
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)  # raises on a malformed message: the exporter then sees a 500
        with self.server.lock:
            self.server.content_types.append(self.headers.get("content-type"))
            for rs in export.resource_spans:
                for ss in rs.scope_spans:
                    self.server.spans.extend((rs.resource, ss.scope, span) for span in ss.spans)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    server = Collector()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def attributes(span) -> dict:
    out = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        if which == "array_value":
            out[kv.key] = [v.string_value for v in kv.value.array_value.values]
        else:
            out[kv.key] = getattr(kv.value, which)
    return out


def test_each_sdk_request_arrives_as_one_protobuf_span_with_the_genai_attributes(collector, tmp_path):
    config = (
        "model_list:\n"
        + model_entry("echo", {"model": "mock/echo"})
        + "\n"
        + f"general_settings: {{master_key: {MASTER_KEY}}}\n"
        + "litellm_settings: {callbacks: [otel]}\n"
        + "callback_settings: {otel: {flush_interval: 0.2}}\n"
    )
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}",
        "OTEL_SERVICE_NAME": "sdk-gateway",
    }
    with running_tollgate(config, str(tmp_path), "tollgate-otel", env) as url:
        traced = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01"}
        oa = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=10)
        plain = oa.chat.completions.with_raw_response.create(model="echo", messages=HI, extra_headers=traced)
        answer = plain.parse()
        usage = None
        streamed = oa.chat.completions.with_raw_response.create(
            model="echo", messages=HI, stream=True, stream_options={"include_usage": True}
        )
        for chunk in streamed.parse():
            usage = chunk.usage or usage
        an = anthropic.Anthropic(base_url=url, api_key=MASTER_KEY, max_retries=0, timeout=10)
        message = an.messages.with_raw_response.create(
            model="echo", max_tokens=64, messages=HI, extra_headers=traced
        )
        ids = [r.headers["x-tollgate-request-id"] for r in (plain, streamed, message)]

        deadline = time.monotonic() + 10
        while len(collector.spans) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # anything more would arrive now
    with collector.lock:
        spans = {attributes(s)["tollgate.request_id"]: (r, scope, s) for r, scope, s in collector.spans}
        assert len(collector.spans) == 3, [attributes(s) for _, _, s in collector.spans]
        assert set(collector.content_types) == {"application/x-protobuf"}
    assert set(spans) == set(ids)

    resource, scope, span = spans[ids[0]]
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == "sdk-gateway"
    assert scope.name == "tollgate"
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == PARENT_SPAN
    assert len(span.span_id) == 8 and span.span_id.hex() != PARENT_SPAN
    assert span.kind == Span.SPAN_KIND_CLIENT
    assert span.name == "chat echo"
    assert span.status.code == Status.STATUS_CODE_UNSET
    assert 0 < span.start_time_unix_nano <= span.end_time_unix_nano
    a = attributes(span)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "mock"
    assert a["gen_ai.request.model"] == "echo"
    assert a["gen_ai.response.model"] == answer.model
    assert a["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert a["gen_ai.response.finish_reasons"] == [answer.choices[0].finish_reason]
    assert a["tollgate.stream"] is False
    assert a["http.response.status_code"] == 200

    _, _, stream_span = spans[ids[1]]
    assert stream_span.parent_span_id == b"", "a caller without a trace gets a root span"
    assert stream_span.trace_id.hex() != TRACE_ID and len(stream_span.trace_id) == 16
    s = attributes(stream_span)
    assert s["tollgate.stream"] is True
    assert (s["gen_ai.usage.input_tokens"], s["gen_ai.usage.output_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )

    _, _, messages_span = spans[ids[2]]
    assert messages_span.trace_id.hex() == TRACE_ID and messages_span.parent_span_id.hex() == PARENT_SPAN
    m = attributes(messages_span)
    msg = message.parse()
    assert m["http.route"] == "/v1/messages"
    assert (m["gen_ai.usage.input_tokens"], m["gen_ai.usage.output_tokens"]) == (
        msg.usage.input_tokens,
        msg.usage.output_tokens,
    )
