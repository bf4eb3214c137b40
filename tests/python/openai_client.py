"""The official `openai` SDK against a running Arvis gateway (tests/tests/openai_sdk.rs).

Usage: openai_client.py BASE_URL API_KEY MODEL
Prints one line per check ("ok <name>") and exits non-zero on the first failure.
"""

import sys

import openai

base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok {name}", flush=True)


models = client.models.list()
ids = [m.id for m in models.data]
check("models.list", model in ids, ids)
check("models.retrieve", client.models.retrieve(model).owned_by == "arvis")

plain = client.chat.completions.create(
    model=model,
    messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "hello"}],
)
check("plain.object", plain.object == "chat.completion", plain)
check("plain.content", plain.choices[0].message.content == "Hello there friend", plain.choices[0].message)
check("plain.finish_reason", plain.choices[0].finish_reason == "stop", plain.choices[0])
check("plain.usage", plain.usage.prompt_tokens == 12 and plain.usage.completion_tokens == 7
      and plain.usage.total_tokens == 19, plain.usage)

stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "stream it"}],
    stream=True,
    stream_options={"include_usage": True},
)
text, roles, finish, usage, pieces = "", [], None, None, 0
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.role:
            roles.append(choice.delta.role)
        if choice.delta.content:
            text += choice.delta.content
            pieces += 1
        if choice.finish_reason:
            finish = choice.finish_reason
check("stream.role", roles[:1] == ["assistant"], roles)
check("stream.content", text == "Hello there friend", text)
check("stream.pieces", pieces >= 2, pieces)
check("stream.finish_reason", finish == "stop", finish)
check("stream.usage", usage is not None and usage.total_tokens == 19, usage)

try:
    client.chat.completions.create(model="no-such-agent", messages=[{"role": "user", "content": "hi"}])
    check("unknown_model", False, "no error")
except openai.NotFoundError as e:
    check("unknown_model", e.code == "model_not_found", e.body)

try:
    openai.OpenAI(base_url=f"{base}/v1", api_key="arvis_sk_" + "0" * 64, max_retries=0).models.list()
    check("bad_key", False, "no error")
except openai.AuthenticationError as e:
    check("bad_key", e.code == "invalid_api_key", e.body)

print("all ok", flush=True)
