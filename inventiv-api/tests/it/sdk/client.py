"""Drives /v1 with the official OpenAI SDK; prints one JSON report on stdout.

Run by tests/openai_sdk.rs with BASE_URL and API_KEY in the environment.
With MODE=broken_stream it instead starts a long stream, prints `streaming`
once the first token is in (the test then kills the engine), and reports
how the SDK saw the stream end.
"""

import json
import os
import sys
import time

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["BASE_URL"], api_key=os.environ["API_KEY"], max_retries=0, timeout=60)


def broken_stream():
    stream = client.chat.completions.create(
        model="mock/model",
        messages=[{"role": "user", "content": "Never stop talking."}],
        max_tokens=2000,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    announced = False
    try:
        for chunk in stream:
            if not announced and chunk.choices and chunk.choices[0].delta.content:
                print("streaming", flush=True)
                announced = True
        outcome = {"error": None}
    except openai.APIError as e:
        outcome = {"error": type(e).__name__, "message": e.message}
    print(json.dumps(outcome), flush=True)


if os.environ.get("MODE") == "broken_stream":
    broken_stream()
    sys.exit(0)

report = {}

report["models"] = [m.id for m in client.models.list().data]

chat = client.chat.completions.create(
    model="mock/model",
    messages=[{"role": "user", "content": "Say something about GPUs."}],
    max_tokens=12,
)
report["chat"] = {
    "content": chat.choices[0].message.content,
    "prompt_tokens": chat.usage.prompt_tokens,
    "completion_tokens": chat.usage.completion_tokens,
}

started = time.monotonic()
first_chunk_at = None
words = 0
usage = None
stream = client.chat.completions.create(
    model="mock/model",
    messages=[{"role": "user", "content": "Stream a story."}],
    max_tokens=20,
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        if first_chunk_at is None:
            first_chunk_at = time.monotonic() - started
        words += len(chunk.choices[0].delta.content.split())
    if chunk.usage is not None:
        usage = {"prompt_tokens": chunk.usage.prompt_tokens, "completion_tokens": chunk.usage.completion_tokens}
report["stream"] = {
    "first_chunk_s": first_chunk_at,
    "total_s": time.monotonic() - started,
    "words": words,
    "usage": usage,
}

completion = client.completions.create(model="mock/model", prompt="Once upon a time", max_tokens=6)
report["completion"] = {
    "text": completion.choices[0].text,
    "prompt_tokens": completion.usage.prompt_tokens,
    "completion_tokens": completion.usage.completion_tokens,
}

embeddings = client.embeddings.create(model="mock/model", input=["first text", "second one here"])
report["embeddings"] = {
    "count": len(embeddings.data),
    "dimension": len(embeddings.data[0].embedding),
    "prompt_tokens": embeddings.usage.prompt_tokens,
}

try:
    OpenAI(base_url=os.environ["BASE_URL"], api_key="inv_wrong", max_retries=0).models.list()
    report["bad_key"] = "accepted"
except Exception as e:  # noqa: BLE001 - the SDK's exception class is what we report
    report["bad_key"] = type(e).__name__

print(json.dumps(report))
