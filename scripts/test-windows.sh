#!/usr/bin/env bash
# npm run test:windows: agentfd's Windows lane, on Linux. Windows Node.js 22 runs in Wine
# (scripts/windows/wine-node.sh) against agent DLLs built with MinGW (scripts/build-windows-dlls.sh):
#   1. Linux makes a backup of names Windows cannot all hold (scripts/windows/cross.mjs make);
#   2. Windows node runs test/windows/ (vitest.windows.config.ts): exports, negotiation, backup,
#      verify, restore, an agent crash, the Linux backup restored with the name mapping, and a
#      Windows backup with Windows attributes;
#   3. Linux restores that Windows backup from its volumes and compares it (cross.mjs check).
# Needs root for apt-get the first time (Wine, MinGW); about 1.3 GB of disk under $TMPDIR (/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
wine_node=scripts/windows/wine-node.sh

bash "$wine_node" setup
bash "$wine_node" prebuilds
bash scripts/build-windows-dlls.sh >/dev/null
npm run -s build:ts

cross=$(mktemp -d "${TMPDIR:-/tmp}/agentfd-cross-XXXXXX")
trap 'bash "$wine_node" stop; rm -rf "$cross"' EXIT
node scripts/windows/cross.mjs make "$cross"
AGENTFD_CROSS_DIR="$cross" bash "$wine_node" node node_modules/vitest/vitest.mjs run --config vitest.windows.config.ts
node scripts/windows/cross.mjs check "$cross"
