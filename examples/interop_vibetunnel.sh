#!/usr/bin/env bash
# Check that vibetwist and VibeTunnel share sessions, both ways, for real.
#
#   examples/interop_vibetunnel.sh            # from the repository, needs node, npm, script(1)
#   VIBETUNNEL_VERSION=... PYTHON=.venv/bin/python examples/interop_vibetunnel.sh
#   VIBETUNNEL_NPM_DIR=/some/folder examples/interop_vibetunnel.sh   # install there once, reuse it
#   KEEP=1 examples/interop_vibetunnel.sh     # keep the logs, recordings and session files
#
# It installs VibeTunnel from npm into a temporary folder, then:
#   a. runs VibeTunnel's forwarder (vibetunnel fwd) next to a vibetwist daemon sharing its
#      control directory, and drives the program through vibetwist's API;
#   b. runs vibetwist's vt next to VibeTunnel's server (--no-auth, 127.0.0.1) sharing its
#      control directory, and drives the program through VibeTunnel's API.
# Each check prints PASS or FAIL; the exit status is the number of failures.
#
# VibeTunnel's forwarder always uses $HOME/.vibetunnel/control, whatever
# VIBETUNNEL_CONTROL_DIR says, so each direction runs with a HOME of its own.
# Building VibeTunnel's native modules may need build tools and PAM headers
# (Debian: apt-get install build-essential python3 libpam0g-dev); its prebuilt
# binaries are used when they fit.

set -u

VERSION=${VIBETUNNEL_VERSION:-1.0.0-beta.15.1}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/vtinterop.XXXXXX)
FAILS=0
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    exec 3>&- 2>/dev/null
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

check() {  # check NAME COMMAND...: PASS when the command succeeds
    local name=$1
    shift
    if "$@"; then echo "PASS $name"; else echo "FAIL $name"; FAILS=$((FAILS + 1)); fi
}

eventually() {  # eventually COMMAND...: true once the command succeeds, within 10 seconds
    local i
    for i in $(seq 100); do "$@" && return 0; sleep 0.1; done
    return 1
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

json_field() {  # json_field URL-OR-FILE ID FIELD: a field of one session, from a list or an object
    "$PYTHON" - "$@" <<'EOF'
import json, sys, urllib.request
source, sid, field = sys.argv[1:]
try:
    raw = urllib.request.urlopen(source, timeout=5).read() if "://" in source else open(source, "rb").read()
    value = json.loads(raw)
except Exception:
    sys.exit(1)
for item in value if isinstance(value, list) else [value]:
    if isinstance(item, dict) and item.get("id") == sid:
        print(item.get(field))
EOF
}

field_is() { [ "$(json_field "$1" "$2" "$3")" = "$4" ]; }
has() { grep -q -- "$2" "$1" 2>/dev/null; }
text_has() { curl -sf "$1/text" 2>/dev/null | grep -q -- "$2"; }
post() { curl -sf -X POST -H 'Content-Type: application/json' -d "$2" "$1" >/dev/null; }

drive() {  # drive LABEL SERVER SESSION-URL SEEN: input, streaming, resize, then a kill, through SERVER's API
    local label=$1 server=$2 url=$3 seen=$4
    curl -sN --max-time 15 "$url/stream" >"$WORK/$label.sse" 2>/dev/null &
    PIDS+=($!)
    sleep 0.5
    post "$url/input" '{"text":"hello\r"}'
    check "$label: input from $server reaches the program" eventually "$seen" GOT:hello
    check "$label: $server streams its output (SSE)" eventually has "$WORK/$label.sse" GOT:hello
    post "$url/resize" '{"cols":90,"rows":30}'
    sleep 0.5
    post "$url/input" '{"text":"size\r"}'
    check "$label: a resize from $server reaches the program's terminal" eventually "$seen" "SIZE 30 90"
    curl -sf -X DELETE "$url" >/dev/null
}

# The program both sides run: it echoes lines, reports its terminal size and exits 7 on SIGTERM.
cat >"$WORK/prog.sh" <<'EOF'
#!/usr/bin/env bash
trap 'echo TERMED; exit 7' TERM
echo READY
while read -r line; do
    case "$line" in
        size) echo "SIZE $(stty size)" ;;
        *) echo "GOT:$line" ;;
    esac
done
EOF
chmod +x "$WORK/prog.sh"

# A writer held open on a FIFO: the programs' terminals get no input but what the APIs send.
mkfifo "$WORK/hold"
exec 3<>"$WORK/hold"

NPM_DIR=${VIBETUNNEL_NPM_DIR:-$WORK/npm}
if [ ! -f "$NPM_DIR/node_modules/vibetunnel/dist/cli.js" ]; then
    echo "installing vibetunnel@$VERSION into $NPM_DIR"
    mkdir -p "$NPM_DIR"
    if ! (cd "$NPM_DIR" && npm install --no-audit --no-fund vibetunnel@"$VERSION" >install.log 2>&1); then
        # Its install script builds native modules; its own prebuilt ones may do without.
        (cd "$NPM_DIR" && npm install --no-audit --no-fund --ignore-scripts vibetunnel@"$VERSION" >>install.log 2>&1 \
            && node node_modules/vibetunnel/scripts/postinstall-npm.js >>install.log 2>&1)
    fi
    # Modules its build requires without declaring them.
    (cd "$NPM_DIR" && npm install --no-audit --no-fund --ignore-scripts uuid@9 chokidar@3 >>install.log 2>&1)
fi
VTCLI="$NPM_DIR/node_modules/vibetunnel/dist/cli.js"
check "vibetunnel installed" test -f "$VTCLI"
[ -f "$VTCLI" ] || { tail -20 "$NPM_DIR/install.log"; exit 1; }

# -- a. VibeTunnel's forwarder, seen and driven by vibetwist -----------------------------

HOME_A="$WORK/a"
CONTROL_A="$HOME_A/.vibetunnel/control"
mkdir -p "$CONTROL_A" && chmod 700 "$CONTROL_A"
PORT_A=$(free_port)
(cd "$REPO" && PYTHONPATH="$REPO" HOME="$HOME_A" exec "$PYTHON" -m twisted vibetunnel \
    -l "tcp:$PORT_A:interface=127.0.0.1" -d "$CONTROL_A" >"$WORK/daemon.log" 2>&1) &
PIDS+=($!)
API_A="http://127.0.0.1:$PORT_A/api/sessions"
eventually curl -sf "$API_A" -o /dev/null || { echo "FAIL vibetwist daemon did not start"; cat "$WORK/daemon.log"; exit 1; }

SID_A="interop-$$"
(cd "$WORK" && HOME="$HOME_A" exec script -qfc "node $VTCLI fwd --session-id $SID_A $WORK/prog.sh" /dev/null \
    <"$WORK/hold" >"$WORK/fwd.out" 2>&1) &
PIDS+=($!)
S_A="$API_A/$SID_A"

check "a: vibetwist lists the forwarder's session as running" eventually field_is "$API_A" "$SID_A" status running
check "a: vibetwist shows its screen (/text)" eventually text_has "$S_A" READY
seen_a() { text_has "$S_A" "$1"; }
drive a vibetwist "$S_A" seen_a
check "a: a kill from vibetwist ends the program (exit code 7)" eventually field_is "$S_A" "$SID_A" exitCode 7
check "a: the session is exited in vibetwist" field_is "$S_A" "$SID_A" status exited

# -- b. vibetwist's vt, seen and driven by VibeTunnel's server -----------------------------

HOME_B="$WORK/b"
CONTROL_B="$HOME_B/.vibetunnel/control"
mkdir -p "$CONTROL_B" && chmod 700 "$CONTROL_B"
PORT_B=$(free_port)
(HOME="$HOME_B" VIBETUNNEL_CONTROL_DIR="$CONTROL_B" exec node "$VTCLI" --no-auth --port "$PORT_B" \
    --bind 127.0.0.1 >"$WORK/vibetunnel.log" 2>&1) &
PIDS+=($!)
API_B="http://127.0.0.1:$PORT_B/api/sessions"
eventually curl -sf "$API_B" -o /dev/null || { echo "FAIL VibeTunnel server did not start"; cat "$WORK/vibetunnel.log"; exit 1; }

(cd "$WORK" && HOME="$HOME_B" VIBETUNNEL_CONTROL_DIR="$CONTROL_B" PYTHONPATH="$REPO" \
    exec script -qfc "$PYTHON -m vibetwist.vt $WORK/prog.sh" /dev/null <"$WORK/hold" >"$WORK/vt.out" 2>&1) &
PIDS+=($!)
sid_b() {  # the id of the session vt made: the one folder with a session.json
    local f
    for f in "$CONTROL_B"/*/session.json; do
        [ -e "$f" ] && basename "$(dirname "$f")" && return 0
    done
    return 1
}
eventually sid_b >/dev/null
SID_B=$(sid_b)
S_B="$API_B/$SID_B"
REC_B="$CONTROL_B/$SID_B/stdout"

check "b: VibeTunnel lists vt's session as running" eventually field_is "$API_B" "$SID_B" status running
seen_b() { has "$REC_B" "$1"; }
drive b VibeTunnel "$S_B" seen_b
check "b: a kill from VibeTunnel ends the program (exit code 7)" \
    eventually field_is "$CONTROL_B/$SID_B/session.json" "$SID_B" exitCode 7
check "b: the recording ends with the exit line" eventually has "$REC_B" '\["exit",7,'
check "b: VibeTunnel shows the session exited" eventually field_is "$API_B" "$SID_B" status exited

echo "$FAILS failed"
[ -n "${KEEP:-}" ] && echo "files kept in $WORK"
exit "$FAILS"
