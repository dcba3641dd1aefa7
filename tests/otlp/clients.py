"""Real OpenTelemetry clients against a running ragpulse (tests/api/otlp_clients.rs).

The exporter is configured the zero-code way: OTEL_EXPORTER_OTLP_ENDPOINT and
OTEL_EXPORTER_OTLP_HEADERS come from the environment. Every span is also kept
in memory and printed as one JSON line on stdout, so the Rust test computes
what ragpulse must answer from what the client really recorded.

    python clients.py openinference|openllmetry|openllmetry-streaming|semconv
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# What the local OpenAI-compatible server answers: the model it names and the
# usage it reports per call.
MODEL = "ragpulse-test-model"
PROMPT_TOKENS, COMPLETION_TOKENS = 120, 3
FIRST_CHUNK_DELAY_S = 0.2


class FakeOpenAI(BaseHTTPRequestHandler):
    """/v1/chat/completions, streamed (SSE) or not, with usage."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                 "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            time.sleep(FIRST_CHUNK_DELAY_S)
            for word in ["Open ", "settings ", "then reset."]:
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                         "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.05)
            last = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
            self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
            return
        answer = {"id": "c1", "object": "chat.completion", "created": 1, "model": MODEL, "usage": usage,
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "Open settings then reset."}}]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def fake_openai():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def provider(service):
    memory = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": service}))
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    return tracer_provider, memory


def dump(memory):
    for s in memory.get_finished_spans():
        print(json.dumps({
            "name": s.name,
            "trace_id": format(s.context.trace_id, "032x"),
            "span_id": format(s.context.span_id, "016x"),
            "parent_id": format(s.parent.span_id, "016x") if s.parent else None,
            "start": s.start_time,
            "end": s.end_time,
            "attributes": {k: v for k, v in s.attributes.items() if isinstance(v, (str, int, float, bool))},
            "events": [{"name": e.name, "time": e.timestamp} for e in s.events],
        }))


DOCUMENTS = [
    ("5d1c7e2a-0000-4000-8000-00000000000a", "To reset your password open settings and choose reset."),
    ("5d1c7e2a-0000-4000-8000-00000000000b", "Invoices are sent on the first day of every month."),
]


def llama_index(stream):
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.llms.openai import OpenAI
    Settings.embed_model = MockEmbedding(embed_dim=8)
    Settings.llm = OpenAI(model="gpt-4o-mini", api_base=fake_openai(), api_key="test")
    # The ragpulse document id travels in each node's metadata.
    docs = [Document(text=text, metadata={"document_id": doc_id}) for doc_id, text in DOCUMENTS]
    index = VectorStoreIndex.from_documents(docs)
    return index.as_query_engine(similarity_top_k=2, streaming=stream)


def openinference():
    from openinference.instrumentation import using_attributes
    from openinference.instrumentation.llama_index import LlamaIndexInstrumentor
    tracer_provider, memory = provider("docs-bot")
    LlamaIndexInstrumentor().instrument(tracer_provider=tracer_provider)
    engine = llama_index(stream=True)
    for question, session, user in [
        ("How do I reset my password?", "web-1", "ada@example.com"),
        ("When are invoices sent?", "web-1", "ada@example.com"),
    ]:
        with using_attributes(session_id=session, user_id=user):
            response = engine.query(question)
            for _ in response.response_gen:
                pass
    tracer_provider.force_flush()
    dump(memory)
    tracer_provider.shutdown()


def openllmetry(stream=False):
    from opentelemetry.instrumentation.llamaindex import LlamaIndexInstrumentor
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    tracer_provider, memory = provider("billing-bot")
    LlamaIndexInstrumentor().instrument(tracer_provider=tracer_provider)
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    engine = llama_index(stream=stream)
    response = engine.query("When are invoices sent?")
    if stream:
        # The instrumentation never ends the query and synthesis spans of a
        # streamed query: they are neither exported nor printed.
        for _ in response.response_gen:
            pass
    tracer_provider.force_flush()
    dump(memory)
    tracer_provider.shutdown()


def semconv():
    """GenAI semantic conventions by hand, at exact times; the spans of the
    trace are exported in three requests, children first, and one request
    is sent twice (an exporter's retry)."""
    memory = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "semconv-bot"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tracer_provider.get_tracer("ragpulse-test")
    t0 = time.time_ns() - 120 * 10**9
    at = lambda s: t0 + int(s * 1e9)
    from opentelemetry import trace
    root = tracer.start_span("invoke_workflow rag", start_time=at(0), attributes={
        "gen_ai.operation.name": "invoke_workflow", "gen_ai.conversation.id": "thread-9",
        "user.id": "u-42", "ragpulse.question": "Can I change my plan?"})
    ctx = trace.set_span_in_context(root)
    retrieval = tracer.start_span("retrieval plans", context=ctx, start_time=at(0.2), attributes={
        "gen_ai.operation.name": "retrieval",
        "gen_ai.retrieval.documents": json.dumps([{"id": DOCUMENTS[0][0], "score": 0.7}])})
    retrieval.end(end_time=at(0.45))
    chat = tracer.start_span("chat gpt-4o-mini", context=ctx, start_time=at(0.5), attributes={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": MODEL,
        "gen_ai.usage.input_tokens": 800, "gen_ai.usage.output_tokens": 50,
        "gen_ai.response.time_to_first_chunk": 0.25})
    chat.end(end_time=at(1.75))
    root.end(end_time=at(2.0))
    # An index build: embeddings only, no interaction.
    build = tracer.start_span("embeddings e5", start_time=at(3.0), attributes={
        "gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e5"})
    build.end(end_time=at(3.5))
    spans = memory.get_finished_spans()
    exporter = OTLPSpanExporter()
    by_name = {s.name: s for s in spans}
    for batch in ([by_name["chat gpt-4o-mini"]], [by_name["retrieval plans"]],
                  [by_name["invoke_workflow rag"], by_name["embeddings e5"]],
                  [by_name["retrieval plans"]]):
        result = exporter.export(batch)
        assert result.name == "SUCCESS", result
    dump(memory)


if __name__ == "__main__":
    {"openinference": openinference, "openllmetry": openllmetry,
     "openllmetry-streaming": lambda: openllmetry(stream=True), "semconv": semconv}[sys.argv[1]]()
