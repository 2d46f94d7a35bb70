#!/usr/bin/env bash
# build-windows-dlls.sh: cross-build the native side of agentfd as Windows x64 DLLs with
# MinGW-w64 on Linux, for the Windows test lane (agentfd under Windows Node.js in Wine).
#
# It builds the same sources, with the same defines and grouping, as these node-gyp targets of
# binding/binding.gyp (what ships) and test/fixtures/native/binding.gyp (the test agents):
#   binding/build/windows/agents/       exchange, mssql, legacy, synthetic, faulty (.dll)
#   binding/build/windows/test-agents/  bad_no_negotiate, bad_null_name, bad_utf8_name,
#                                       bad_crash_name, bad_midstream, bad_future_abi (.dll)
#   binding/build/windows/              afd_bacula_shim.dll
# Left out: the Contract agent and the Bacula 9.6 test plugins (Linux tests only; the plugins are
# POSIX only, built only when OS!="win"), the afd_harness executable (Linux only: dlfcn) and the
# afd_deflate Node addon (needs Node's headers and libdeflate; agentfd falls back to node:zlib
# without it).
#
# Every DLL links the GCC runtime statically (-static-libgcc; the C++ one also -static-libstdc++
# -static), so it needs nothing but DLLs that ship with Windows. The script then checks each DLL
# with objdump: it must export exactly its ABI symbols and import only allowed system DLLs; any
# other export or import fails the build (exit status 1).
#
# Usage: scripts/build-windows-dlls.sh   (from anywhere; it works relative to the repository)
# Needs: gcc-mingw-w64-x86-64-win32 and g++-mingw-w64-x86-64-win32 (Debian/Ubuntu), which give
# x86_64-w64-mingw32-gcc/-g++/-objdump. Override them with MINGW_CC, MINGW_CXX, MINGW_OBJDUMP.
# Note: `node-gyp rebuild` deletes binding/build, this output included; run this script again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CC="${MINGW_CC:-x86_64-w64-mingw32-gcc}"
CXX="${MINGW_CXX:-x86_64-w64-mingw32-g++}"
OBJDUMP="${MINGW_OBJDUMP:-x86_64-w64-mingw32-objdump}"

OUT="binding/build/windows"
OBJ="$OUT/obj" # one object directory per DLL, so that no two DLLs share an object file

for tool in "$CC" "$CXX" "$OBJDUMP"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build-windows-dlls: $tool not found; install gcc-mingw-w64-x86-64-win32," \
            "g++-mingw-w64-x86-64-win32 and binutils-mingw-w64-x86-64" >&2
        exit 1
    fi
done

# The flags of binding/agent.gypi's target_defaults, minus -fvisibility=hidden (ELF only: a PE DLL
# exports only what is marked __declspec(dllexport), which AFD_EXPORT is under _WIN32), plus
# -Werror: the build must stay free of warnings.
INCLUDES=(-Ibinding/include -Inative-samples/common)
CFLAGS=(-std=c11 -O2 -Wall -Wextra -Werror "${INCLUDES[@]}")
# C++ (faulty_throw.cc only): binding.gyp drops -std=c11 for it and turns on exceptions and RTTI.
CXXFLAGS=(-std=c++17 -O2 -Wall -Wextra -Werror -fexceptions -frtti "${INCLUDES[@]}")
# Linking: a DLL; the GCC runtime linked in statically; no undefined symbols (PE has none anyway,
# this makes the message name the symbol).
LDFLAGS_C=(-shared -static-libgcc -Wl,--no-undefined)
LDFLAGS_CXX=(-shared -static-libgcc -static-libstdc++ -static -Wl,--no-undefined)

# The DLLs an output may import, lower case (PE loaders compare DLL names case-insensitively):
#   kernel32.dll         the Win32 API (Sleep, FindFirstFileW, MultiByteToWideChar, ...), and
#                        what the MinGW-w64 DLL start-up code and libgcc's unwinder call.
#   msvcrt.dll           the C runtime MinGW-w64 targets by default (_wfopen, malloc, _wmkdir, ...);
#                        part of every Windows since 2000.
#   ucrtbase.dll,        the Universal C Runtime, in place of msvcrt.dll when the toolchain is
#   api-ms-win-crt-*.dll configured for UCRT (the api-ms-win-crt-* names are its API sets);
#                        part of Windows 10 and later.
#   user32.dll, advapi32.dll, ws2_32.dll
#                        system DLLs a C runtime or a future agent may pull in (message boxes of
#                        abort(), the registry, sockets); none of the current DLLs imports them.
# Nothing else: in particular not libgcc_s_seh-1.dll, libstdc++-6.dll or libwinpthread-1.dll,
# which exist only where MinGW is installed.
allowed_import() {
    case "${1,,}" in
        kernel32.dll | msvcrt.dll | ucrtbase.dll | api-ms-win-crt-*.dll) return 0 ;;
        user32.dll | advapi32.dll | ws2_32.dll) return 0 ;;
        *) return 1 ;;
    esac
}

# compile DLL_NAME SOURCE [DEFINES...]: compile one source for DLL_NAME into $OBJ/DLL_NAME/ and
# set COMPILED to the object's path (a variable, not printed: in a $(...) subshell bash would
# ignore set -e and a failed compile). .cc files are C++, everything else C.
COMPILED=""
compile() {
    local dll="$1" src="$2"
    shift 2
    local obj
    obj="$OBJ/$dll/$(basename "$src").o"
    mkdir -p "$OBJ/$dll"
    case "$src" in
        *.cc) "$CXX" "${CXXFLAGS[@]}" "$@" -c "$src" -o "$obj" ;;
        *) "$CC" "${CFLAGS[@]}" "$@" -c "$src" -o "$obj" ;;
    esac
    COMPILED="$obj"
}

# build_dll OUTDIR DLL_NAME "DEFINES" SOURCES...: compile SOURCES (each with the -D flags in the
# space-separated DEFINES, like a gyp target's 'defines') and link OUTDIR/DLL_NAME.dll; with a
# C++ source, the g++ driver links, with the static C++ runtime.
build_dll() {
    local outdir="$1" dll="$2" defines="$3"
    shift 3
    local -a defs=() objs=()
    local def src linker="$CC"
    local -a ldflags=("${LDFLAGS_C[@]}")
    for def in $defines; do defs+=("-D$def"); done
    for src in "$@"; do
        compile "$dll" "$src" ${defs[@]+"${defs[@]}"}
        objs+=("$COMPILED")
        if [[ "$src" == *.cc ]]; then
            linker="$CXX"
            ldflags=("${LDFLAGS_CXX[@]}")
        fi
    done
    mkdir -p "$outdir"
    "$linker" "${ldflags[@]}" -o "$outdir/$dll.dll" "${objs[@]}"
}

rm -rf "$OUT"
mkdir -p "$OUT"

AGENTS="$OUT/agents"
TESTS="$OUT/test-agents"
UTIL=native-samples/common/sample_util.c

# ---- the sample agents (binding.gyp: exchange, synthetic, mssql, legacy, faulty) ----
build_dll "$AGENTS" exchange "" native-samples/exchange/exchange.c "$UTIL"
build_dll "$AGENTS" synthetic "" native-samples/synthetic/synthetic.c "$UTIL"
build_dll "$AGENTS" mssql "" native-samples/mssql/mssql.c "$UTIL"
build_dll "$AGENTS" legacy "AFD_TARGET_ABI=1" native-samples/legacy/legacy.c "$UTIL"
build_dll "$AGENTS" faulty "" native-samples/faulty/faulty.c native-samples/faulty/faulty_throw.cc \
    "$UTIL"

# ---- the broken agents of the loader tests (test/fixtures/native/binding.gyp: bad_*) ----
for bad in bad_no_negotiate bad_null_name bad_utf8_name bad_crash_name bad_midstream \
    bad_future_abi; do
    build_dll "$TESTS" "$bad" "" "test/fixtures/native/$bad.c"
done

# ---- the Bacula adapter's callback shim ----
build_dll "$OUT" afd_bacula_shim "" binding/src/afd_bacula_shim.c

rm -rf "$OBJ"

# ---- check what every DLL exports and imports ----
# expect DLL EXPORTS...: print the DLL's exports and imports; return 1 when the exports are not
# exactly EXPORTS (in any order) or an import is not allowed_import.
expect() {
    local dll="$1"
    shift
    local dump exports imports want got name ok=0
    dump="$("$OBJDUMP" -p "$dll")"
    # "[Ordinal/Name Pointer] Table" lists the exported names, one "\t[   0] Name" line each.
    exports="$(printf '%s\n' "$dump" |
        sed -n '/^\[Ordinal\/Name Pointer\] Table/,/^$/p' |
        sed -n 's/^[[:space:]]*\[[[:space:]]*[0-9]*\][[:space:]]*//p' | sort)"
    # One "\tDLL Name: KERNEL32.dll" line per imported DLL.
    imports="$(printf '%s\n' "$dump" | sed -n 's/^[[:space:]]*DLL Name:[[:space:]]*//p' | sort)"
    echo "$dll"
    echo "  exports: $(printf '%s' "$exports" | tr '\n' ' ')"
    echo "  imports: $(printf '%s' "$imports" | tr '\n' ' ')"
    want="$(printf '%s\n' "$@" | sort)"
    got="$exports"
    if [[ "$got" != "$want" ]]; then
        echo "  ERROR: expected exactly these exports: $*" >&2
        ok=1
    fi
    while IFS= read -r name; do
        [[ -z "$name" ]] && continue
        if ! allowed_import "$name"; then
            echo "  ERROR: imports $name, which is not a Windows system DLL" >&2
            ok=1
        fi
    done <<<"$imports"
    return "$ok"
}

failed=0
for dll in exchange synthetic mssql legacy faulty; do
    expect "$AGENTS/$dll.dll" Name afd_negotiate || failed=1
done
expect "$TESTS/bad_no_negotiate.dll" Name || failed=1 # the point of this one: no afd_negotiate
for dll in bad_null_name bad_utf8_name bad_crash_name bad_midstream bad_future_abi; do
    expect "$TESTS/$dll.dll" Name afd_negotiate || failed=1
done
expect "$OUT/afd_bacula_shim.dll" afd_bacula_shim || failed=1

if [[ "$failed" -ne 0 ]]; then
    echo "build-windows-dlls: FAILED: a DLL exports or imports something it must not" >&2
    exit 1
fi
echo "build-windows-dlls: OK: 12 DLLs in $OUT"
