#!/usr/bin/env bash
# A real Bacula 9.6 Director + Storage Daemon (+ bconsole, + optionally the real bacula-fd) on
# 127.0.0.1, in a scratch directory, for agentfd's interoperability tests.
#
#   lab.sh setup                 packages (apt, as root, when missing), bacula-dir, configs, SQLite catalog
#   lab.sh start                 bacula-sd + bacula-dir in the background; waits for their ports
#   lab.sh stop                  stop every daemon this script started (by PID); idempotent
#   lab.sh start-real-fd         the real /usr/sbin/bacula-fd as FD_NAME on FD_PORT (for cross-checks)
#   lab.sh stop-real-fd          stop it
#   lab.sh console CMD...        bconsole: each CMD one line, then quit; prints the output
#   lab.sh run-job JOB [OPT...]  run job=JOB OPT... yes; waits; prints the job's messages;
#                                exit 0 only on "Backup OK" / "Restore OK"
#   lab.sh restore JOBID[,JOBID...] [WHERE [ARG...]]
#                                restore every file of the jobs (a full and its incrementals: the
#                                latest version of each file, deleted ones left out) to WHERE
#                                (default $LAB/restore; "": no where=); same rule. ARGs: mark=PATH
#                                (repeatable, absolute) marks PATH in the Director's tree instead of all
#                                files; KEY=VALUE (regexwhere, strip_prefix, add_prefix, add_suffix,
#                                replace...) is added to the restore command as KEY="VALUE"
#   lab.sh env                   the settings the lab was set up with (shell syntax)
#
# LAB (required) is the scratch directory. Settings, read by `setup` and saved in $LAB/etc/lab.env
# (later commands use the saved values): FD_NAME (agentfd-fd), FD_PORT (9102), FD_PASSWORD
# (lab-fd-pass), DIR_NAME (lab-dir), DIR_PORT (9101), SD_PORT (9103), EXTRA_DIR_CONF (a file
# appended to bacula-dir.conf), TLS (0; 1: a CA and certificates in $LAB/etc/tls, and the Director's
# Client resource and the SD's Storage resource require TLS, checking peer certificates: the FD must
# present $LAB/etc/tls/fd.crt, signed by ca.crt, CN FD_NAME, for 127.0.0.1). Others: DEBUG=N (start: -d N -dt), JOB_TIMEOUT (run-job, restore:
# seconds, default 300). Never touches /etc/bacula; everything binds 127.0.0.1.
set -euo pipefail

die() { echo "lab.sh: error: $*" >&2; exit 1; }
say() { echo "lab.sh: $*"; }

case "${1:-}" in
setup | start | stop | start-real-fd | stop-real-fd | console | run-job | restore | env) ;;
*) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 1 ;;
esac
[ -n "${LAB:-}" ] || die "set LAB to a scratch directory (e.g. LAB=\"\${TMPDIR:-/tmp}/agentfd-lab\")"
case "$LAB" in *'"'* | *"'"* | *\\* | *$'\n'*) die "LAB must not contain quotes, backslashes or newlines: $LAB" ;; esac
[ "$1" != setup ] || mkdir -p "$LAB"
if [ ! -d "$LAB" ]; then
  case "$1" in stop | stop-real-fd) exit 0 ;; *) die "$LAB does not exist: run 'lab.sh setup' first" ;; esac
fi
LAB=$(cd "$LAB" && pwd)

ETC=$LAB/etc
RUN=$LAB/run
LOGS=$LAB/logs
PKGROOT=$LAB/pkg/root
ENVFILE=$ETC/lab.env
SD_BIN=/usr/sbin/bacula-sd
FD_BIN=/usr/sbin/bacula-fd
BCONSOLE=/usr/sbin/bconsole
CONSOLE_PASSWORD=lab-console-pass
SD_PASSWORD=lab-sd-pass
SD_NAME=lab-sd
DEBIAN_INSTALL=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/debian-install.sh

is_root() { [ "$(id -u)" = 0 ]; }

dir_bin() {
  if [ -x /usr/sbin/bacula-dir ]; then echo /usr/sbin/bacula-dir; else echo "$PKGROOT/usr/sbin/bacula-dir"; fi
}

# ---------------------------------------------------------------- packages

missing_pkgs() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

# Installs the packages that are missing, without starting their services (scripts/debian-install.sh:
# a policy-rc.d that refuses every start during the install).
ensure_pkgs() {
  command -v dpkg-query >/dev/null || die "dpkg not found: this lab needs Debian's Bacula 9.6 packages"
  local missing
  missing=$(missing_pkgs "$@" | tr '\n' ' ')
  missing=${missing% }
  [ -n "$missing" ] || return 0
  is_root || die "missing Debian packages: $missing (run 'lab.sh setup' once as root, or apt-get install them)"
  say "installing $missing (services not started)"
  # shellcheck disable=SC2086 # a list of package names
  bash "$DEBIAN_INSTALL" $missing || die "could not install $missing (see the line above)"
}

# apt-get download PKG=VERSION... into $LAB/pkg, then unpack into $LAB/pkg/root (nothing installed).
fetch_debs() {
  local opts=() f
  is_root && opts=(-o APT::Sandbox::User=root)
  rm -f "$LAB/pkg"/*.deb
  if ! (cd "$LAB/pkg" && apt-get download -qq "${opts[@]}" "$@"); then
    is_root || die "apt-get download $* failed (as root, setup runs apt-get update and retries)"
    apt-get update -qq || die "apt-get update failed"
    (cd "$LAB/pkg" && apt-get download -qq "${opts[@]}" "$@") || die "apt-get download $* failed"
  fi
  for f in "$LAB/pkg"/*.deb; do dpkg-deb -x "$f" "$PKGROOT"; done
}

# ---------------------------------------------------------------- settings

load_env() {
  [ -f "$ENVFILE" ] || die "$ENVFILE not found: run 'LAB=$LAB lab.sh setup' first"
  # shellcheck disable=SC1090
  . "$ENVFILE"
}

# ---------------------------------------------------------------- daemons

pidfile() { echo "$RUN/lab-$1.pid"; }
conffile() { echo "$ETC/bacula-$1.conf"; }

# The PID in the pidfile, if that process is alive and is the daemon started with our config.
running_pid() {
  local f pid
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' '\n' < "/proc/$pid/cmdline" | grep -qxF "$(conffile "$1")" || return 1
  echo "$pid"
}

# Is something listening on 127.0.0.1:PORT? Asked of ss, not by connecting: a daemon logs a
# connection that says nothing as a security alert (into the next job's messages).
port_open() {
  if command -v ss >/dev/null; then
    ss -Hltn 2>/dev/null | awk -v p="$1" '{ n = split($4, a, ":"); if (a[n] == p) found = 1 } END { exit !found }'
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

port_user() { ss -Hltnp 2>/dev/null | awk -v p=":$1" '$4 ~ p"$"' || true; }

check_port_free() { # port what
  if port_open "$1"; then
    die "port $1 ($2) is already in use on 127.0.0.1: $(port_user "$1")"
  fi
}

show_log_tail() {
  echo "---- last lines of $1" >&2
  tail -n 25 "$1" >&2 || true
  echo "----" >&2
}

start_daemon() { # short-name binary port
  local name=$1 bin=$2 port=$3 conf log pid dbg=()
  conf=$(conffile "$name")
  log=$LOGS/$name.log
  if pid=$(running_pid "$name"); then
    say "bacula-$name already running (pid $pid)"
    return 0
  fi
  [ -x "$bin" ] || die "$bin not found: run 'lab.sh setup' (as root if packages are missing)"
  [ -f "$conf" ] || die "$conf not found: run 'lab.sh setup' first"
  check_port_free "$port" "bacula-$name"
  "$bin" -t -c "$conf" || die "bacula-$name rejects $conf"
  if [ -n "${DEBUG:-}" ] && [ "${DEBUG}" != 0 ]; then dbg=(-d "$DEBUG" -dt); fi
  # -f: stay in the foreground, so that $! is the daemon; setsid: its own session, so that it
  # outlives the caller's process group; stop uses the PID.
  setsid "$bin" -f "${dbg[@]}" -c "$conf" </dev/null >>"$log" 2>&1 &
  pid=$!
  echo "$pid" > "$(pidfile "$name")"
  local waited=0
  until port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$(pidfile "$name")"
      show_log_tail "$log"
      [ -f "$LOGS/bacula.log" ] && show_log_tail "$LOGS/bacula.log"
      die "bacula-$name exited during start-up (log: $log)"
    fi
    if [ "$waited" -ge 300 ]; then
      show_log_tail "$log"
      die "bacula-$name (pid $pid) did not listen on 127.0.0.1:$port within 30 s (log: $log)"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  say "bacula-$name started (pid $pid, 127.0.0.1:$port, log $log)"
}

stop_daemon() { # short-name
  local name=$1 pid i
  if pid=$(running_pid "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "bacula-$name (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    say "bacula-$name stopped (pid $pid)"
  fi
  rm -f "$(pidfile "$name")"
}

# ---------------------------------------------------------------- console and jobs

console() {
  [ -x "$BCONSOLE" ] || die "$BCONSOLE not found: run 'lab.sh setup'"
  printf '%s\n' "$@" quit | "$BCONSOLE" -c "$ETC/bconsole.conf"
}

# The job's messages as the catalog holds them (Messages: catalog = all). Read from the catalog
# and not with bconsole's `messages`, which would also take other jobs' messages from the queue.
job_log() {
  # LogText is stored as "text\n\\"; print "time text".
  sqlite3 -cmd '.timeout 10000' "$LAB/work-dir/bacula.db" \
    "SELECT Time || ' ' || rtrim(rtrim(LogText, char(92)), char(10)) FROM Log WHERE JobId = $1 ORDER BY LogId;"
}

# Waits for job $1 and prints its messages; exit 0 only if it terminated "Backup OK"/"Restore OK".
finish_job() {
  local id=$1 timeout=${JOB_TIMEOUT:-300} log term i
  if ! timeout -k 5 "$timeout" "$BCONSOLE" -c "$ETC/bconsole.conf" >/dev/null 2>&1 <<EOF
wait jobid=$id
quit
EOF
  then
    echo "lab.sh: job $id did not finish within $timeout s; the Director says:" >&2
    console "status dir" >&2 || true
    job_log "$id" >&2 || true
    # The Director marks the job cancelled at once, then tells the FD (up to FD Connect Timeout):
    # do not wait for that.
    printf 'cancel jobid=%s yes\nquit\n' "$id" | timeout -k 2 10 "$BCONSOLE" -c "$ETC/bconsole.conf" >/dev/null 2>&1 || true
    die "job $id did not finish within JOB_TIMEOUT=$timeout s; cancelled it"
  fi
  # The report is the last message of a job; give the catalog a moment to have it.
  for ((i = 0; i < 50; i++)); do
    log=$(job_log "$id") || log=
    term=$(printf '%s\n' "$log" | sed -n 's/^ *Termination: *//p' | tail -n 1)
    [ -z "$term" ] || break
    sleep 0.1
  done
  printf '%s\n' "$log"
  term=${term%"${term##*[![:space:]]}"}
  echo "jobid=$id termination=${term:-unknown}"
  case "$term" in
    "Backup OK" | "Restore OK") return 0 ;;
    *) echo "lab.sh: job $id did not end OK: ${term:-no termination line in its messages}" >&2; return 1 ;;
  esac
}

queue_job() { # bconsole command line(s) -> echoes the JobId
  local out id
  out=$(console "$@" 2>&1) || { printf '%s\n' "$out" >&2; die "bconsole failed (is the lab started?)"; }
  id=$(printf '%s\n' "$out" | sed -n 's/.*Job queued\. JobId=\([0-9][0-9]*\).*/\1/p' | tail -n 1)
  if [ -z "$id" ]; then
    printf '%s\n' "$out" >&2
    die "the Director did not queue the job: $1"
  fi
  echo "$id"
}

# ---------------------------------------------------------------- setup

# A private CA and a certificate for each daemon (TLS=1). The Director checks the FD's certificate
# against the Client's Address and the FD checks the SD's against the Storage's Address, so the
# FD and SD certificates name 127.0.0.1 (as a DNS name, which Bacula compares, and as an IP, which
# OpenSSL-based clients such as Node compare).
make_certificates() {
  local tls=$ETC/tls name cn
  command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
  mkdir -p "$tls"
  if [ ! -s "$tls/ca.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=agentfd lab CA" \
      -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>"$LOGS/openssl.log" || die "openssl could not make the lab CA (see $LOGS/openssl.log)"
  fi
  for name in dir sd fd; do
    [ -s "$tls/$name.crt" ] && continue
    case $name in dir) cn=$DIR_NAME ;; sd) cn=$SD_NAME ;; fd) cn=$FD_NAME ;; esac
    printf 'subjectAltName = DNS:127.0.0.1, DNS:localhost, IP:127.0.0.1\nextendedKeyUsage = serverAuth, clientAuth\n' > "$tls/$name.ext"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$tls/$name.key" -out "$tls/$name.csr" 2>>"$LOGS/openssl.log" \
      && openssl x509 -req -in "$tls/$name.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 30 \
        -extfile "$tls/$name.ext" -out "$tls/$name.crt" 2>>"$LOGS/openssl.log" \
      || die "openssl could not make the $name certificate (see $LOGS/openssl.log)"
  done
  chmod 644 "$tls"/*.key # the lab's daemons and the tests read them; a scratch CA, never a real one
  say "TLS: CA and certificates in $tls"
}

# TLS directives for one resource (TLS=1): $1 = the certificate's name (dir, sd, fd); $2 = what the
# resource does with peers' certificates ("verify": TLS Verify Peer with the FD's name allowed).
tls_directives() {
  [ "$TLS" = 1 ] || return 0
  local tls=$ETC/tls
  printf '  TLS Enable = yes\n  TLS Require = yes\n  TLS CA Certificate File = "%s"\n' "$tls/ca.crt"
  printf '  TLS Certificate = "%s"\n  TLS Key = "%s"\n' "$tls/$1.crt" "$tls/$1.key"
  if [ "${2:-}" = verify ]; then printf '  TLS Verify Peer = yes\n  TLS Allowed CN = "%s"\n' "$FD_NAME"; fi
}

write_configs() {
  local extra=
  cp "$QUERY_SQL" "$ETC/query.sql"
  cat > "$ETC/bacula-dir.conf" <<EOF
# Written by agentfd scripts/bacula/lab.sh setup
Director {
  Name = $DIR_NAME
  DIRport = $DIR_PORT
  DirAddress = 127.0.0.1
  QueryFile = "$ETC/query.sql"
  WorkingDirectory = "$LAB/work-dir"
  PidDirectory = "$RUN"
  Maximum Concurrent Jobs = 10
  FD Connect Timeout = 30 sec
  SD Connect Timeout = 30 sec
  Password = "$CONSOLE_PASSWORD"
  Messages = Daemon
}
Catalog {
  Name = LabCatalog
  dbname = "bacula"; dbuser = ""; dbpassword = ""
}
Client {
  Name = $FD_NAME
  Address = 127.0.0.1
  FDPort = $FD_PORT
  Catalog = LabCatalog
  Password = "$FD_PASSWORD"
  AutoPrune = no
  Maximum Concurrent Jobs = 10
$(tls_directives dir)
}
Storage {
  Name = File1
  Address = 127.0.0.1
  SDPort = $SD_PORT
  Password = "$SD_PASSWORD"
  Device = FileDev1
  Media Type = File1
  Maximum Concurrent Jobs = 10
}
Pool {
  Name = LabPool
  Pool Type = Backup
  Recycle = yes
  AutoPrune = no
  Volume Retention = 365 days
  Maximum Volume Bytes = 50G
  Maximum Volumes = 100
  Label Format = "LabVol-"
}
FileSet {
  Name = "LabSet"
  Include {
    Options { signature = MD5 }
    File = "$LAB/data"
  }
}
FileSet {
  Name = "LabSetGzip"
  Include {
    Options { signature = MD5; compression = GZIP6 }
    File = "$LAB/data"
  }
}
JobDefs {
  Name = "LabJobDefs"
  Type = Backup
  Level = Full
  Client = $FD_NAME
  FileSet = "LabSet"
  Storage = File1
  Messages = Standard
  Pool = LabPool
  Priority = 10
  Maximum Concurrent Jobs = 10
  Write Bootstrap = "$LAB/work-dir/%c_%n_%i.bsr"
}
Job { Name = "LabBackup";     JobDefs = "LabJobDefs" }
Job { Name = "LabBackupGzip"; JobDefs = "LabJobDefs"; FileSet = "LabSetGzip" }
Job {
  Name = "LabRestore"
  Type = Restore
  Client = $FD_NAME
  Storage = File1
  FileSet = "LabSet"
  Pool = LabPool
  Messages = Standard
  Priority = 10
  Maximum Concurrent Jobs = 10
  Where = "$LAB/restore"
}
Messages {
  Name = Standard
  console = all, !skipped, !saved
  append = "$LOGS/bacula.log" = all, !skipped
  catalog = all
}
Messages {
  Name = Daemon
  console = all, !skipped, !saved
  append = "$LOGS/bacula.log" = all, !skipped
}
EOF
  if [ -n "${EXTRA_DIR_CONF:-}" ]; then
    [ -f "$EXTRA_DIR_CONF" ] || die "EXTRA_DIR_CONF=$EXTRA_DIR_CONF is not a file"
    { echo "# ---- from EXTRA_DIR_CONF ($EXTRA_DIR_CONF)"; cat "$EXTRA_DIR_CONF"; } >> "$ETC/bacula-dir.conf"
    extra=" + $EXTRA_DIR_CONF"
  fi

  cat > "$ETC/bacula-sd.conf" <<EOF
# Written by agentfd scripts/bacula/lab.sh setup
Storage {
  Name = $SD_NAME
  SDPort = $SD_PORT
  SDAddress = 127.0.0.1
  WorkingDirectory = "$LAB/work-sd"
  Pid Directory = "$RUN"
  Maximum Concurrent Jobs = 20
$(tls_directives sd verify)
}
Director {
  Name = $DIR_NAME
  Password = "$SD_PASSWORD"
}
Device {
  Name = FileDev1
  Media Type = File1
  Archive Device = "$LAB/storage"
  LabelMedia = yes
  Random Access = yes
  AutomaticMount = yes
  RemovableMedia = no
  AlwaysOpen = no
  Maximum Concurrent Jobs = 10
}
Messages {
  Name = Standard
  director = $DIR_NAME = all
}
EOF

  # Only for the real bacula-fd (start-real-fd). CommCompression = no: no LZ4 frames, as agentfd.
  cat > "$ETC/bacula-fd.conf" <<EOF
# Written by agentfd scripts/bacula/lab.sh setup
Director {
  Name = $DIR_NAME
  Password = "$FD_PASSWORD"
$(tls_directives fd)
}
FileDaemon {
  Name = $FD_NAME
  FDport = $FD_PORT
  FDAddress = 127.0.0.1
  WorkingDirectory = "$LAB/work-fd"
  Pid Directory = "$RUN"
  Maximum Concurrent Jobs = 10
  Plugin Directory = "/usr/lib/bacula"
  CommCompression = no
$(tls_directives fd)
}
Messages {
  Name = Standard
  director = $DIR_NAME = all, !skipped, !restored
}
EOF

  cat > "$ETC/bconsole.conf" <<EOF
# Written by agentfd scripts/bacula/lab.sh setup
Director {
  Name = $DIR_NAME
  DIRport = $DIR_PORT
  Address = 127.0.0.1
  Password = "$CONSOLE_PASSWORD"
}
EOF
  say "configs written to $ETC (bacula-dir.conf$extra, bacula-sd.conf, bacula-fd.conf, bconsole.conf)"
}

create_catalog() {
  local db=$LAB/work-dir/bacula.db script=$LAB/make_sqlite3_tables.sh
  if [ -s "$db" ]; then say "catalog exists: $db"; return 0; fi
  # The packaged script does `cd /var/lib/bacula`: drop that line and run it in work-dir instead.
  sed -e '/^cd \/var\/lib\/bacula$/d' -e 's/XXX_DBNAME_XXX/bacula/' "$MAKE_TABLES" > "$script"
  if grep -q '/var/lib/bacula' "$script"; then die "unexpected $MAKE_TABLES (still mentions /var/lib/bacula)"; fi
  rm -f "$db"
  (cd "$LAB/work-dir" && sh "$script" >"$LOGS/make_tables.log" 2>&1) || {
    show_log_tail "$LOGS/make_tables.log"
    die "creating the SQLite catalog failed"
  }
  [ -s "$db" ] || die "make_sqlite3_tables did not create $db"
  say "catalog created: $db"
}

cmd_setup() {
  FD_NAME=${FD_NAME:-agentfd-fd}
  FD_PORT=${FD_PORT:-9102}
  FD_PASSWORD=${FD_PASSWORD:-lab-fd-pass}
  DIR_NAME=${DIR_NAME:-lab-dir}
  DIR_PORT=${DIR_PORT:-9101}
  SD_PORT=${SD_PORT:-9103}
  TLS=${TLS:-0}
  local v
  [[ "$TLS" =~ ^[01]$ ]] || die "TLS must be 0 or 1: $TLS"
  for v in FD_PORT DIR_PORT SD_PORT; do [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a port number: ${!v}"; done
  for v in FD_NAME DIR_NAME; do [[ "${!v}" =~ ^[A-Za-z0-9._:-]+$ ]] || die "$v may hold letters, digits and . _ : - only: ${!v}"; done
  case "$FD_PASSWORD" in *'"'* | *\\* | *$'\n'*) die "FD_PASSWORD must not contain quotes, backslashes or newlines" ;; esac

  mkdir -p "$ETC" "$RUN" "$LOGS" "$LAB"/{storage,work-sd,work-dir,work-fd,restore,data,pkg}

  ensure_pkgs bacula-common bacula-common-sqlite3 bacula-sd bacula-console sqlite3
  [ -x "$SD_BIN" ] || die "$SD_BIN missing although bacula-sd is installed"
  [ -x "$BCONSOLE" ] || die "$BCONSOLE missing although bacula-console is installed"

  # bacula-dir and the catalog script, at exactly the installed Bacula version, unpacked and not
  # installed (installing bacula-director would configure a Director in /etc/bacula).
  local version want=()
  version=$(dpkg-query -W -f='${Version}' bacula-common)
  [ -x "$(dir_bin)" ] || want+=("bacula-director=$version")
  if [ ! -f /usr/share/bacula-director/make_sqlite3_tables ] && [ ! -f "$PKGROOT/usr/share/bacula-director/make_sqlite3_tables" ]; then
    want+=("bacula-director-sqlite3=$version")
  fi
  if [ ! -f /etc/bacula/scripts/query.sql ] && [ ! -f "$PKGROOT/etc/bacula/scripts/query.sql" ] && [ ${#want[@]} -eq 0 ]; then
    want+=("bacula-director=$version")
  fi
  if [ ${#want[@]} -gt 0 ]; then
    say "fetching ${want[*]} into $LAB/pkg (unpacked, not installed)"
    fetch_debs "${want[@]}"
  fi
  DIR_BIN=$(dir_bin)
  [ -x "$DIR_BIN" ] || die "no bacula-dir binary at $DIR_BIN"
  if ldd "$DIR_BIN" 2>/dev/null | grep -q 'not found'; then
    ldd "$DIR_BIN" | grep 'not found' >&2
    die "$DIR_BIN misses libraries"
  fi
  MAKE_TABLES=/usr/share/bacula-director/make_sqlite3_tables
  [ -f "$MAKE_TABLES" ] || MAKE_TABLES=$PKGROOT/usr/share/bacula-director/make_sqlite3_tables
  QUERY_SQL=$PKGROOT/etc/bacula/scripts/query.sql
  [ -f "$QUERY_SQL" ] || QUERY_SQL=/etc/bacula/scripts/query.sql

  {
    echo "# Written by agentfd scripts/bacula/lab.sh setup; later lab.sh commands read it"
    for v in FD_NAME FD_PORT FD_PASSWORD DIR_NAME DIR_PORT SD_PORT TLS; do printf '%s=%q\n' "$v" "${!v}"; done
  } > "$ENVFILE"

  [ "$TLS" = 0 ] || make_certificates
  write_configs
  create_catalog
  "$SD_BIN" -t -c "$ETC/bacula-sd.conf" || die "bacula-sd rejects $ETC/bacula-sd.conf"
  "$DIR_BIN" -t -c "$ETC/bacula-dir.conf" || die "bacula-dir rejects $ETC/bacula-dir.conf"
  say "lab ready in $LAB"
  if running_pid dir >/dev/null; then
    say "  the running Director still has the old configuration: lab.sh stop && lab.sh start (or lab.sh console reload)"
  fi
  say "  Director $DIR_NAME on 127.0.0.1:$DIR_PORT ($DIR_BIN), Storage $SD_NAME on 127.0.0.1:$SD_PORT"
  say "  the FD to test: Name $FD_NAME, listen 127.0.0.1:$FD_PORT, Director $DIR_NAME, Password \"$FD_PASSWORD\""
  say "  jobs: LabBackup, LabBackupGzip (FileSets LabSet, LabSetGzip: $LAB/data), LabRestore (Where $LAB/restore)"
}

# ---------------------------------------------------------------- main

cmd=${1:-}
[ $# -eq 0 ] || shift
case "$cmd" in
setup)
  cmd_setup
  ;;
start)
  load_env
  start_daemon sd "$SD_BIN" "$SD_PORT"
  start_daemon dir "$(dir_bin)" "$DIR_PORT"
  ;;
stop)
  [ -d "$RUN" ] || exit 0
  stop_daemon dir
  stop_daemon fd
  stop_daemon sd
  ;;
start-real-fd)
  load_env
  ensure_pkgs bacula-fd
  start_daemon fd "$FD_BIN" "$FD_PORT"
  ;;
stop-real-fd)
  [ -d "$RUN" ] || exit 0
  stop_daemon fd
  ;;
console)
  load_env
  [ $# -gt 0 ] || die "usage: lab.sh console CMD..."
  console "$@"
  ;;
run-job)
  load_env
  [ $# -ge 1 ] || die "usage: lab.sh run-job JOB [OPTION=VALUE...]"
  job=$1
  shift
  line="run job=$job"
  for o in "$@"; do line+=" $o"; done
  id=$(queue_job "$line yes")
  echo "$line yes: JobId=$id"
  finish_job "$id"
  ;;
restore)
  load_env
  if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+(,[0-9]+)*$ ]]; then die "usage: lab.sh restore JOBID[,JOBID...] [WHERE [ARG...]]"; fi
  where=${2-$LAB/restore}
  line="restore jobid=$1 client=$FD_NAME"
  [ -z "$where" ] || line+=" where=\"$where\""
  marks=()
  for a in "${@:3}"; do
    case "$a" in
      mark=*) a=${a#mark=}; marks+=("cd \"${a%/*}/\"" "mark \"${a##*/}\"") ;;
      *=*) line+=" ${a%%=*}=\"${a#*=}\"" ;;
      *) die "restore argument not KEY=VALUE: $a" ;;
    esac
  done
  case "$line${marks[*]}" in *$'\n'*) die "WHERE and ARGs must not contain newlines" ;; esac
  [[ "$where${@:3}" != *'"'* ]] || die "WHERE and ARGs must not contain quotes"
  if [ ${#marks[@]} -eq 0 ]; then
    line+=" all done yes"
    id=$(queue_job "$line")
  else
    id=$(queue_job "$line" "${marks[@]}" done yes)
    line+=" ${marks[*]} done yes"
  fi
  echo "$line: JobId=$id"
  finish_job "$id"
  ;;
env)
  load_env
  cat "$ENVFILE"
  printf 'LAB=%q\nDIR_BIN=%q\n' "$LAB" "$(dir_bin)"
  ;;
esac
