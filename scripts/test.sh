#!/usr/bin/env bash
# The test command (README "Testing"). Makes sure the services the tests talk
# to exist and run — nats-server on the PATH, PostgreSQL on 127.0.0.1:5432,
# Chromium and playwright-core for the dashboard's browser tests, the MCP
# servers of tests/tests/mcp.rs (npm and a Python venv), Dovecot and aiosmtpd
# for the email connector's —
# installing them from Debian's packages (and npm) on a fresh machine, then
# runs the whole workspace's tests (nextest when installed, cargo test otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# --- NATS: the tests start their own servers, they only need the binary.
if ! command -v nats-server >/dev/null; then
    echo "test.sh: installing nats-server"
    apt_install nats-server
fi

# --- PostgreSQL: each Postgres test creates (and drops) its own database.
PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
if ! command -v pg_ctlcluster >/dev/null; then
    echo "test.sh: installing postgresql"
    apt_install postgresql postgresql-client
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "test.sh: starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if ! psql "$PG_URL/postgres" -qtAc 'select 1' >/dev/null 2>&1; then
    # A fresh Debian install asks for a password on TCP: give the tests one.
    echo "test.sh: setting a password for the postgres user (fresh install)"
    as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    PG_URL="postgres://postgres:postgres@127.0.0.1:5432"
fi
export TEST_POSTGRES_URL="$PG_URL"

# --- The dashboard's browser tests (tests/tests/dashboard_browser.rs): Debian's
# Chromium (headless, --no-sandbox as root), and playwright-core from the
# committed lock file. Node comes with Debian's npm.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "test.sh: installing chromium and chromium-driver"
    apt_install chromium chromium-driver
fi
if ! command -v npm >/dev/null; then
    echo "test.sh: installing nodejs and npm"
    apt_install nodejs npm
fi
browser_lock=tests/browser/package-lock.json
browser_stamp=tests/browser/node_modules/.installed-from-lock
if ! [ -f "$browser_stamp" ] || ! cmp -s "$browser_lock" "$browser_stamp"; then
    echo "test.sh: npm ci in tests/browser"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
    cp "$browser_lock" "$browser_stamp"
fi

# --- Python: the official `openai` SDK, for the /v1 client test
# (tests/tests/openai_sdk.rs runs tests/python/openai_client.py with it). A
# venv under target/, pip only when the pinned version is not there yet.
OPENAI_VERSION="${OPENAI_VERSION:-3.51.0}"
VENV=target/openai-venv
if ! "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    echo "test.sh: installing openai==$OPENAI_VERSION into $VENV"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "openai==$OPENAI_VERSION"
fi

# --- MCP servers for tests/tests/mcp.rs: the reference server
# @modelcontextprotocol/server-everything from npm (pinned by
# tests/mcp/package-lock.json) into target/mcp-npm, and the official Python
# `mcp` package into its own venv for tests/python/mcp_test_server.py.
mcp_npm=target/mcp-npm
if ! [ -f "$mcp_npm/.installed-from-lock" ] || ! cmp -s tests/mcp/package-lock.json "$mcp_npm/.installed-from-lock"; then
    echo "test.sh: npm ci of the MCP test servers into $mcp_npm"
    mkdir -p "$mcp_npm"
    cp tests/mcp/package.json tests/mcp/package-lock.json "$mcp_npm/"
    (cd "$mcp_npm" && npm ci --no-audit --no-fund --loglevel=error)
    cp tests/mcp/package-lock.json "$mcp_npm/.installed-from-lock"
fi
MCP_PY_VERSION="${MCP_PY_VERSION:-2.3.0}"
MCP_VENV=target/mcp-venv
if ! "$MCP_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_PY_VERSION')" 2>/dev/null; then
    echo "test.sh: installing mcp==$MCP_PY_VERSION into $MCP_VENV"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    python3 -m venv "$MCP_VENV"
    "$MCP_VENV/bin/pip" install -q "mcp==$MCP_PY_VERSION"
fi

# --- The email connector's tests (tests/tests/email.rs): a private Dovecot per
# test (Debian's dovecot-imapd; the test kit starts it from its own config,
# the package's own instance is not used) and an SMTP receiver, aiosmtpd in a
# venv under target/ (tests/python/smtp_receiver.py).
if ! [ -x /usr/sbin/dovecot ]; then
    echo "test.sh: installing dovecot-imapd"
    apt_install dovecot-imapd
fi
# The TLS test makes its own CA and server certificate with the openssl CLI.
if ! command -v openssl >/dev/null; then
    echo "test.sh: installing openssl"
    apt_install openssl
fi
AIOSMTPD_VERSION="${AIOSMTPD_VERSION:-1.4.6}"
MAIL_VENV=target/mail-venv
if ! "$MAIL_VENV/bin/python" -c "import aiosmtpd, sys; sys.exit(aiosmtpd.__version__ != '$AIOSMTPD_VERSION')" 2>/dev/null; then
    echo "test.sh: installing aiosmtpd==$AIOSMTPD_VERSION into $MAIL_VENV"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    python3 -m venv "$MAIL_VENV"
    "$MAIL_VENV/bin/pip" install -q "aiosmtpd==$AIOSMTPD_VERSION"
fi

# --- The tests.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
