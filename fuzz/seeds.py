#!/usr/bin/env python3
"""Writes the committed seed corpora: every event type of docs/ingest.md and
every rejection case, in each format (JSON, NDJSON, gzip), and the query
parameters of every analytics endpoint with their error cases. Run from the
repository root or fuzz/: `python3 fuzz/seeds.py`. The first byte of an
ingest seed is the target's mode: bit 0 NDJSON, bits 1-2: 1 = the body is
gzip as sent, 2 = the target gzips it first."""
import gzip
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
A = "5d1c7e2a-0000-4000-8000-000000000001"
U = "5d1c7e2a-0000-4000-8000-000000000002"
C = "5d1c7e2a-0000-4000-8000-000000000003"
D = "5d1c7e2a-0000-4000-8000-000000000004"
TS = "2026-11-28T09:15:02.120Z"

INTERACTION = {
    "type": "interaction", "id": "8f0e2b1c-0000-4000-8000-000000000002", "timestamp": TS,
    "assistant_id": A, "session_id": "web-7f3a", "user_id": U,
    "question": "How do I reset my password?", "question_embedding": [0.012, -0.2, 0.5],
    "topic": None, "model": "gpt-4o-mini", "provider": "openai",
    "ttft_s": 0.84, "total_duration_s": 3.2, "cache_hit": False,
    "input_tokens": 1830, "output_tokens": 212, "cached_input_tokens": 0, "cost_usd": None,
    "steps": [{"name": "retrieval", "duration_s": 0.31},
              {"name": "reranking", "duration_s": 0.12},
              {"name": "synthesis", "duration_s": 2.6, "input_tokens": 1830, "output_tokens": 212}],
    "retrieved_document_ids": [D, D],
    "rerank": {"score_before": 0.41, "score_after": 0.67, "position_change": 2.5},
}
VALID = {
    "assistant": {"type": "assistant", "id": A, "name": "Support bot", "model": "gpt-4o-mini"},
    "user": {"type": "user", "id": U, "email": "ada@example.com", "full_name": "Ada Lovelace"},
    "connector": {"type": "connector", "id": C, "name": "Confluence"},
    "document": {"type": "document", "id": D, "connector_id": C, "file_name": "handbook.pdf",
                 "updated_at": "2026-11-01T10:00:00Z", "deleted": False},
    "connector_sync": {"type": "connector_sync", "id": "5d1c7e2a-0000-4000-8000-000000000005",
                       "connector_id": C, "status": "success", "started_at": "2026-11-28T09:00:00Z",
                       "duration_s": 12.5, "documents_synced": 40, "error": None},
    "interaction": INTERACTION,
    "interaction_minimal": {"type": "interaction", "id": "8f0e2b1c-0000-4000-8000-000000000003",
                            "timestamp": "2026-11-28T10:15:02+02:00", "assistant_id": A,
                            "session_id": "s"},
    "interaction_labelled": dict(INTERACTION, topic="Passwords", question_embedding=None),
    "user_nulls": {"type": "user", "id": U, "email": None},
    "tokens_zero_fraction": dict(INTERACTION, input_tokens=1830.0),
}


def bad(**changes):
    event = dict(INTERACTION)
    for key, value in changes.items():
        if value is KeyError:
            event.pop(key, None)
        else:
            event[key] = value
    return event


REJECTED = {
    "not_an_object": [1, 2],
    "type_missing": {"id": A},
    "type_not_a_string": {"type": 7},
    "type_unknown": {"type": "payment", "id": A},
    "id_missing": bad(id=KeyError),
    "id_not_a_uuid": bad(id="not-a-uuid"),
    "timestamp_naive": bad(timestamp="2026-11-28T09:15:02"),
    "timestamp_future": bad(timestamp="2099-01-01T00:00:00Z"),
    "timestamp_garbage": bad(timestamp="yesterday"),
    "session_missing": bad(session_id=KeyError),
    "session_empty": bad(session_id=""),
    "session_too_long": bad(session_id="s" * 201),
    "duration_negative": bad(total_duration_s=-1),
    "ttft_over_total": bad(ttft_s=5.0, total_duration_s=1.0),
    "ttft_string": bad(ttft_s="fast"),
    "tokens_fraction": bad(input_tokens=1830.5),
    "tokens_negative": bad(output_tokens=-3),
    "tokens_huge": bad(input_tokens=1e300),
    "cached_over_input": bad(cached_input_tokens=5000),
    "step_name_bad": bad(steps=[{"name": "Retrieval!", "duration_s": 0.1}]),
    "step_name_long": bad(steps=[{"name": "a" * 65, "duration_s": 0.1}]),
    "step_not_object": bad(steps=["retrieval"]),
    "steps_too_many": bad(steps=[{"name": "s", "duration_s": 0.0}] * 257),
    "documents_too_many": bad(retrieved_document_ids=[D] * 1025),
    "document_id_bad": bad(retrieved_document_ids=["nope"]),
    "embedding_too_long": bad(question_embedding=[0.0] * 4097),
    "embedding_not_numbers": bad(question_embedding=["a"]),
    "question_too_long": bad(question="q" * 8193),
    "rerank_not_object": bad(rerank=3),
    "cost_negative": bad(cost_usd=-1),
    "sync_status_unknown": dict(VALID["connector_sync"], status="done"),
    "sync_started_missing": {k: v for k, v in VALID["connector_sync"].items() if k != "started_at"},
    "document_deleted_string": dict(VALID["document"], deleted="yes"),
    "assistant_name_too_long": dict(VALID["assistant"], name="n" * 8193),
    "too_many_values": {"type": "user", "id": U, "x": [0] * 16385},
}


def write(directory, name, data):
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def ingest_corpus(directory):
    def json_body(events):
        return json.dumps({"events": events}).encode()

    def ndjson_body(events):
        return b"".join(json.dumps(e).encode() + b"\n" for e in events)

    everything = list(VALID.values())
    write(directory, "json_every_type", b"\x00" + json_body(everything))
    write(directory, "ndjson_every_type", b"\x01" + ndjson_body(everything))
    write(directory, "json_every_type_gzip", b"\x02" + gzip.compress(json_body(everything)))
    write(directory, "ndjson_every_type_gzip", b"\x03" + gzip.compress(ndjson_body(everything)))
    write(directory, "json_every_type_gzip_by_target", b"\x04" + json_body(everything))
    for name, event in VALID.items():
        write(directory, f"valid_{name}", b"\x00" + json_body([event]))
    for name, event in REJECTED.items():
        write(directory, f"rejected_{name}", b"\x00" + json_body([VALID["assistant"], event]))
        write(directory, f"rejected_{name}_ndjson", b"\x01" + ndjson_body([event]))
    # Body-level refusals and NDJSON edge cases.
    write(directory, "body_not_json", b"\x00{nope")
    write(directory, "body_not_object", b"\x00[]")
    write(directory, "body_events_not_array", b'\x00{"events": 3}')
    write(directory, "body_events_twice", b'\x00{"events": [], "events": []}')
    write(directory, "body_trailing", b'\x00{"events": []} x')
    write(directory, "body_empty_events", b'\x00{"events": []}')
    write(directory, "body_too_many_events", b"\x00" + json_body([{}] * 65))
    write(directory, "ndjson_too_many_lines", b"\x01" + b"{}\n" * 65)
    write(directory, "ndjson_blank_and_bad_lines",
          b"\x01" + json.dumps(VALID["user"]).encode() + b"\n\n  \n[1]\nnot json\r\n{}\n")
    write(directory, "ndjson_crlf", b"\x01" + ndjson_body(everything).replace(b"\n", b"\r\n"))
    write(directory, "gzip_garbage", b"\x02garbage, not gzip")
    write(directory, "gzip_truncated", b"\x02" + gzip.compress(json_body(everything))[:40])
    write(directory, "gzip_bomb", b"\x02" + gzip.compress(b" " * (2 << 20)))
    write(directory, "deep_nesting", b"\x00" + b'{"events":' + b"[" * 200 + b"]" * 200 + b"}")


QUERIES = [
    "", "assistant_id=5d1c7e2a-0000-4000-8000-000000000001",
    "ttft_hours=168&step_days=90&cache_hours=1&cost_hours=24&trending_limit=50",
    "ttft_hours=169", "ttft_hours=0", "ttft_hours=abc", "ttft_hours=24.0", "ttft_hours=24.5",
    "ttft_hours=1_000", "ttft_hours=+7", "ttft_hours=-3", "ttft_hours=%2024%20",
    "ttft_hours=99999999999999999999999999999999999999999",
    "assistant_id=nope", "assistant_id=5D1C7E2A-0000-4000-8000-000000000001",
    "days=3&days=500&limit=7", "status=hot", "status=frozen", "status=HOT",
    "phrasings=true", "phrasings=maybe", "phrasings=0", "hours=1&assistant_id=",
    "limit=x&days=&status=&assistant_id=%zz", "a=b=c&&=&%", "days=1e3", "days=0x10",
]


def query_corpus(directory):
    for i, query in enumerate(QUERIES):
        write(directory, f"query_{i:02}", query.encode())


# OTLP trace exports (the otlp_decode target; its first byte: bit 0 JSON,
# bits 1-2: 1 = gzip as sent, 2 = the target gzips it, 3 = zlib as sent).
def varint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def fixed64(number, value):
    return varint(number << 3 | 1) + value.to_bytes(8, "little")


def any_value(value):
    if isinstance(value, bool):
        return varint(2 << 3) + varint(int(value))
    if isinstance(value, int):
        return varint(3 << 3) + varint(value)
    if isinstance(value, float):
        import struct
        return varint(4 << 3 | 1) + struct.pack("<d", value)
    return field(1, value.encode())


def key_value(key, value):
    return field(1, key.encode()) + field(2, any_value(value))


T0 = 1_795_860_000_000_000_000


def span(trace, span_id, parent, name, start, end, attrs, events=()):
    body = field(1, trace) + field(2, span_id)
    if parent:
        body += field(4, parent)
    body += field(5, name.encode()) + fixed64(7, T0 + start) + fixed64(8, T0 + end)
    for key, value in attrs.items():
        body += field(9, key_value(key, value))
    for event_name, at in events:
        body += field(11, fixed64(1, T0 + at) + field(2, event_name.encode()))
    return body


def export(spans, service="bot"):
    resource = field(1, field(1, key_value("service.name", service)))
    scope = field(2, b"".join(field(2, s) for s in spans))
    return field(1, resource + scope)


TR = bytes(range(1, 17))
S = [bytes([0, 0, 0, 0, 0, 0, 1, n]) for n in range(10)]
OI = [
    span(TR, S[1], None, "RetrieverQueryEngine.query", 0, 3_000_000_000,
         {"openinference.span.kind": "CHAIN", "input.value": "How do I reset my password?",
          "session.id": "web-1", "user.id": "ada"}),
    span(TR, S[2], S[1], "VectorIndexRetriever.retrieve", 1_000_000, 90_000_000,
         {"openinference.span.kind": "RETRIEVER",
          "retrieval.documents.0.document.id": "9b0c4a2e-0000-4000-8000-000000000001",
          "retrieval.documents.0.document.score": 0.8,
          "retrieval.documents.0.document.metadata": '{"document_id": "' + D + '"}'}),
    span(TR, S[3], S[2], "OpenAIEmbedding.get_query_embedding", 2_000_000, 30_000_000,
         {"openinference.span.kind": "EMBEDDING"}),
    span(TR, S[4], S[1], "SentenceTransformerRerank._postprocess_nodes", 91_000_000, 120_000_000,
         {"openinference.span.kind": "RERANKER", "reranker.query": "reset password",
          "reranker.input_documents.0.document.id": "a", "reranker.input_documents.0.document.score": 0.5,
          "reranker.input_documents.1.document.id": "b", "reranker.input_documents.1.document.score": 0.4,
          "reranker.output_documents.0.document.id": "b", "reranker.output_documents.0.document.score": 0.9}),
    span(TR, S[5], S[1], "OpenAI.chat", 130_000_000, 2_900_000_000,
         {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
          "llm.token_count.prompt": 1830, "llm.token_count.completion": 212,
          "llm.prompt_template.variables": '{"query_str": "How do I reset my password?"}'},
         [("First Token Stream Event", 700_000_000)]),
]
SEMCONV = [
    span(TR, S[1], None, "invoke_workflow rag", 0, 2_000_000_000,
         {"gen_ai.operation.name": "invoke_workflow", "gen_ai.conversation.id": "c",
          "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "q?"}]}]',
          "ragpulse.assistant_id": A, "ragpulse.cache_hit": False, "ragpulse.step": "answer"}),
    span(TR, S[2], S[1], "chat m", 100, 1_900_000_000,
         {"gen_ai.operation.name": "chat", "gen_ai.response.model": "m",
          "gen_ai.usage.input_tokens": 10, "gen_ai.usage.cache_read.input_tokens": 20,
          "gen_ai.response.time_to_first_chunk": 0.25,
          "gen_ai.retrieval.documents": '[{"id": "' + D + '", "score": 1}]'}),
]


def otlp_corpus(directory):
    write(directory, "oi_protobuf", b"\x00" + export(OI))
    write(directory, "oi_protobuf_gzip", b"\x02" + gzip.compress(export(OI)))
    write(directory, "oi_reversed", b"\x00" + export(OI[::-1]))
    write(directory, "semconv_protobuf", b"\x00" + export(SEMCONV))
    write(directory, "no_ids", b"\x00" + export([span(b"", b"", None, "x", 0, 1, {})]))
    write(directory, "empty", b"\x00")
    write(directory, "garbage", b"\x00\xff\xff\xff\x0f")
    otlp_json = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "bot"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": TR.hex(), "spanId": S[1].hex(), "name": "chat",
             "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 5), "kind": 3,
             "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}],
             "events": [{"timeUnixNano": str(T0 + 1), "name": "gen_ai.content.completion.chunk"}]},
            {"traceId": TR.hex().upper(), "spanId": S[2].hex(), "parentSpanId": S[1].hex(),
             "startTimeUnixNano": T0, "endTimeUnixNano": T0 + 2,
             "attributes": [{"key": "ragpulse.assistant_id", "value": {"stringValue": "nope"}}]},
        ]}]}]}
    write(directory, "json", b"\x01" + json.dumps(otlp_json).encode())
    write(directory, "json_logs", b"\x01" + b'{"resourceLogs": []}')
    write(directory, "json_bad_hex", b"\x01" + b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}')
    write(directory, "zlib", b"\x06" + __import__("zlib").compress(export(SEMCONV)))


for target, make in [("ingest_decode", ingest_corpus), ("query_params", query_corpus),
                     ("otlp_decode", otlp_corpus)]:
    directory = os.path.join(HERE, "seeds", target)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    make(directory)
    print(f"{target}: {len(os.listdir(directory))} seeds in {os.path.relpath(directory)}")
