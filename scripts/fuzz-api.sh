#!/usr/bin/env bash
# Schemathesis against the live OpenAPI document (RELIABILITY.md, "Hostile input").
# Installs a pinned schemathesis into a venv under target/, starts the debug
# `arvis` launcher on free ports with DASHBOARD_API_KEY set, and fuzzes every
# operation twice: with the key and without it, with every check schemathesis
# has (responses conform to the document, never a 5xx, schema-valid requests are
# accepted and schema-invalid ones refused, …) — except, by operation name, the
# semantic rules a schema cannot state (scripts/schemathesis.toml, listed in
# RELIABILITY.md). Then every protected operation must answer 401 without it.
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION="${ST_VERSION:-4.32.5}"
EXAMPLES="${EXAMPLES:-25}"
SEED="${SEED:-1}"
VENV=target/fuzz-venv
if [ ! -x "$VENV/bin/st" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi
[ -x target/debug/arvis ] || cargo build --bin arvis

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
WS_PORT=$(free_port)
LLM_PORT=$(free_port)
DATA=$(mktemp -d)
# A loopback OpenAI-compatible provider, so a chat gets an answer (without one
# every chat is a documented 502 "no LLM account is configured").
cat >"$DATA/llm.py" <<'PY'
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        chunk = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": None}]}
        end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
        body = ("data: %s\n\ndata: %s\n\ndata: [DONE]\n\n" % (json.dumps(chunk), json.dumps(end))).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$DATA/llm.py" "$LLM_PORT" &
LLM_PID=$!
KEY="fuzz-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
GATEWAY_ADDR="127.0.0.1:$PORT" WS_BRIDGE_ADDR="127.0.0.1:$WS_PORT" ARVIS_DATA_DIR="$DATA" \
    DASHBOARD_API_KEY="$KEY" DASHBOARD_PASSWORD="fuzz-password-$KEY" OPENAI_API_KEY=sk-fuzz OPENAI_BASE_URL="http://127.0.0.1:$LLM_PORT/v1" \
    CHAT_TIMEOUT_SECS=20 RUST_LOG=warn target/debug/arvis >"$DATA/arvis.log" 2>&1 &
PID=$!
trap 'kill $PID $LLM_PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$PORT/api/health" >/dev/null && break; sleep 0.2; done

BASE="http://127.0.0.1:$PORT"
OUT=target/fuzz-api
mkdir -p "$OUT"
# The document itself is behind the API's auth: fetch it once with the key.
curl -fs -H "X-API-Key: $KEY" "$BASE/api/openapi.json" >"$OUT/openapi.json"
# Every check by default (the config file turns off the listed exceptions);
# CHECKS=a,b runs only those.
CHECKS_ARG=()
[ -n "${CHECKS:-}" ] && CHECKS_ARG=(--checks "$CHECKS")
CONFIG=scripts/schemathesis.toml
status=0
echo "== with credentials"
"$VENV/bin/st" --config-file "$CONFIG" run "$OUT/openapi.json" --url "$BASE" --max-examples "$EXAMPLES" "${CHECKS_ARG[@]}" \
    -H "X-API-Key: $KEY" --no-color --seed "$SEED" >"$OUT/with-credentials.txt" 2>&1 || status=1
sed -n '/^Failures:/,$p' "$OUT/with-credentials.txt" | head -60; grep -E "generated|passed|failed" "$OUT/with-credentials.txt" | tail -3

echo "== without credentials"
"$VENV/bin/st" --config-file "$CONFIG" run "$OUT/openapi.json" --url "$BASE" --max-examples "$EXAMPLES" "${CHECKS_ARG[@]}" \
    --no-color --seed "$SEED" >"$OUT/without-credentials.txt" 2>&1 || status=1
sed -n '/^Failures:/,$p' "$OUT/without-credentials.txt" | head -60; grep -E "generated|passed|failed" "$OUT/without-credentials.txt" | tail -3

# Without credentials: every operation but the public ones must answer 401.
echo "== 401 for every protected operation without credentials"
leaks=0
while read -r method path; do
    url="$BASE$(echo "$path" | sed -E 's/\{[^}]+\}/1/g')"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X "$method" -H 'content-type: application/json' -d '{}' "$url")
    if [ "$code" != 401 ]; then echo "  $method $path -> $code (expected 401)"; leaks=$((leaks + 1)); fi
done < <(python3 -c '
import json, sys
doc = json.load(sys.stdin)
for path, ops in doc["paths"].items():
    for method, op in ops.items():
        if method not in ("get", "post", "put", "patch", "delete"):
            continue
        if op.get("security") == [] or path.startswith("/api/auth") or path in ("/api/health", "/healthz", "/readyz", "/api/openapi.json") or path.startswith("/webhook/"):
            continue
        print(method.upper(), path)
' <"$OUT/openapi.json")
echo "protected operations answering something else than 401: $leaks"
[ "$leaks" = 0 ] || status=1
exit $status
