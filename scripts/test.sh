#!/usr/bin/env bash
# Runs Vexil's whole test suite on a fresh Debian machine, installing what the suite needs when it is missing.
# Under CI=true a prerequisite that cannot be installed is a failure, never a silent skip.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
# Debian packages the suite needs, as "command:package".
for need in "cc:gcc" "redis-server:redis-server" "redis-cli:redis-tools" "chromium:chromium" "chromedriver:chromium-driver" \
  "promtool:prometheus" "mount:mount" "npm:npm" "python3:python3"; do
  command -v "${need%%:*}" >/dev/null 2>&1 || missing+=("${need##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
# The fault tests mount a small tmpfs to fill a disk: they need root.
if [ "$(id -u)" -ne 0 ]; then
  echo "the test suite runs as root (the fault tests mount a tmpfs to fill a disk)" >&2
  exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust (stable, 1.85 or newer) with rustup first" >&2
  exit 1
fi

# The official OpenFeature Python SDK and OFREP provider, for the interoperability tests, in a virtual environment.
if [ ! -x target/python/bin/python ] || ! cmp -s tests/python/requirements.txt target/python/requirements.txt; then
  python3 -m venv target/python
  target/python/bin/pip install -q -r tests/python/requirements.txt
  cp tests/python/requirements.txt target/python/requirements.txt
fi

# The TypeScript SDK's development dependencies (the TypeScript compiler, the official OpenFeature SDKs), from its lock file.
if ! cmp -s sdks/js/package-lock.json sdks/js/node_modules/.installed-lock.json 2>/dev/null; then
  npm ci --prefix sdks/js --silent --no-audit --no-fund
  cp sdks/js/package-lock.json sdks/js/node_modules/.installed-lock.json
fi
# The example application (examples/seed-app), on the SDK's packages, from its own lock file.
if ! cmp -s examples/seed-app/package-lock.json examples/seed-app/node_modules/.installed-lock.json 2>/dev/null; then
  npm ci --prefix examples/seed-app --silent --no-audit --no-fund
  cp examples/seed-app/package-lock.json examples/seed-app/node_modules/.installed-lock.json
fi

# The official OpenFeature web SDK and OFREP web provider, from the lock file, for the cross-origin browser test.
if ! cmp -s tests/web/package-lock.json tests/web/node_modules/.installed-lock.json 2>/dev/null; then
  npm ci --prefix tests/web --silent --no-audit --no-fund
  cp tests/web/package-lock.json tests/web/node_modules/.installed-lock.json
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# The TypeScript SDK's suite (node's test runner): the spec files, the override table, its clients against the server
# binary cargo just built (the browser ones in headless Chromium), and the example application.
VEXIL_BIN="$PWD/target/debug/vexil" npm test --prefix sdks/js
