#!/usr/bin/env bash
# Installs whatsapp-api-js (a real WhatsApp Cloud API library, from npm) for
# the sandbox's webhook test, and prints the package's folder.
#
#   export WAMETER_TEST_WHATSAPP_API_JS="$(scripts/whatsapp-api-js-for-tests.sh)"
#
# Installs Node.js and npm from Debian when they are missing. The version
# is pinned so that a new release cannot change the test's verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="6.3.0"
dir="target/whatsapp-api-js"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "installing nodejs and npm…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq nodejs npm >&2
fi
package="$dir/node_modules/whatsapp-api-js"
if [ "$(node -p "require('./$package/package.json').version" 2>/dev/null)" != "$VERSION" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  npm install --prefix "$dir" --silent --no-audit --no-fund "whatsapp-api-js@$VERSION" >&2
fi
echo "$(pwd)/$package"
