"""Calls a model shared by another organization with the official OpenAI SDK.

Run by tests/sharing.rs with BASE_URL, API_KEY, MODEL and MODE in the
environment; prints one JSON report on stdout.
- MODE=calls: models, a chat, a streamed chat, a completion; their usage.
- MODE=one: a single chat; its outcome (usage, or the error's class, status, code).
"""

import json
import os

from openai import OpenAI, APIStatusError

client = OpenAI(base_url=os.environ["BASE_URL"], api_key=os.environ["API_KEY"], max_retries=0)
model = os.environ["MODEL"]
report = {"models": [m.id for m in client.models.list().data]}


def usage(u):
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens}


if os.environ["MODE"] == "calls":
    chat = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say something about GPUs."}], max_tokens=12
    )
    report["chat"] = usage(chat.usage)
    stream_usage = None
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Stream a story."}],
        max_tokens=9,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            stream_usage = usage(chunk.usage)
    report["stream"] = stream_usage
    completion = client.completions.create(model=model, prompt="Once upon a time", max_tokens=6)
    report["completion"] = usage(completion.usage)
else:
    try:
        chat = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=4
        )
        report["chat"] = usage(chat.usage)
    except APIStatusError as e:
        report["error"] = {"class": type(e).__name__, "status": e.status_code, "code": e.code}

print(json.dumps(report))
