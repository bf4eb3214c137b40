#!/usr/bin/env bash
# Refreshes worker/src/model_prices.json, the price and context-window table
# embedded in the worker (README "Model prices"), from LiteLLM's
# model_prices_and_context_window.json (MIT licence). The table ships inside
# LiteLLM's wheel on PyPI, so this needs no more network than `pip download`:
# the wheel (no dependencies) goes to a temporary folder, the JSON is read out
# of it (a wheel is a zip) and trimmed to what Arvis uses — per-token input,
# output, cache-read and cache-write prices and max_input_tokens of the chat
# models of the providers Arvis speaks (Anthropic, OpenAI, Gemini API, Ollama).
#
# Usage: scripts/refresh-model-prices.sh [litellm version]   (default: latest)
set -euo pipefail
cd "$(dirname "$0")/.."

version="${1:-}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
spec="litellm${version:+==$version}"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$spec"
wheel="$(ls "$tmp"/litellm-*.whl)"

python3 - "$wheel" worker/src/model_prices.json <<'PY'
import datetime, json, re, sys, zipfile

wheel, out = sys.argv[1], sys.argv[2]
version = re.search(r"litellm-([^-]+)-", wheel).group(1)
with zipfile.ZipFile(wheel) as z:
    table = json.loads(z.read("litellm/model_prices_and_context_window_backup.json"))

# litellm_provider -> keep the entry? (Gemini API entries are the `gemini/…` keys.)
PROVIDERS = {"anthropic", "openai", "gemini", "ollama"}
FIELDS = ["input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
          "cache_creation_input_token_cost", "max_input_tokens", "litellm_provider"]
kept = {}
for name, entry in table.items():
    if not isinstance(entry, dict) or entry.get("mode") != "chat":
        continue
    if entry.get("litellm_provider") not in PROVIDERS or name.startswith("ft:"):
        continue
    if "input_cost_per_token" not in entry and "max_input_tokens" not in entry:
        continue
    kept[name] = {k: entry[k] for k in FIELDS if k in entry}

doc = {"_snapshot": {
    "source": "LiteLLM model_prices_and_context_window.json (MIT), https://github.com/BerriAI/litellm",
    "litellm_version": version,
    "taken": datetime.date.today().isoformat(),
    "made_by": "scripts/refresh-model-prices.sh",
}}
doc.update(sorted(kept.items()))
with open(out, "w") as f:
    f.write("{\n")
    items = list(doc.items())
    for i, (k, v) in enumerate(items):
        f.write(f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}{',' if i + 1 < len(items) else ''}\n")
    f.write("}\n")
print(f"{out}: {len(kept)} models from LiteLLM {version}")
PY
