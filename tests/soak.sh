#!/usr/bin/env bash
# Runs the test suite beside a running `edumon demo` and checks that neither disturbs the other:
# the suite passes every time, and the demo's terminals are as they were (no unknown terminal
# appeared, the panels that were never switched on are still offline and never seen, every
# terminal that reported still reports with its own MAC address).
# When the demo is disturbed, the processes that connected to its ports say by whom (on a
# shared machine, an older checkout's tests may be the culprit).
# Usage: bash tests/soak.sh [runs (default 2)] [pytest args...]   (after `bash tests/run.sh`
# has set up the machine and .venv once)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2}
shift || true
[ -x .venv/bin/edumon ] || { echo "no .venv: run 'bash tests/run.sh' once first" >&2; exit 1; }
work=$(mktemp -d)
demo_pid=""
watch_pid=""
cleanup() {
  [ -z "$watch_pid" ] || kill "$watch_pid" 2>/dev/null || true
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -INT "$demo_pid"
    wait "$demo_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The demo as a user starts it: product defaults (API 9310, MQTT 1884; free ones if taken).
.venv/bin/edumon demo >"$work/demo.out" 2>"$work/demo.err" &
demo_pid=$!
for _ in $(seq 1 120); do
  grep -q "/metrics" "$work/demo.out" 2>/dev/null && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$work/demo.err" >&2; exit 1; }
  sleep 0.5
done
base=$(grep -o 'http://[0-9.]*:[0-9]*/metrics' "$work/demo.out" | head -1 | sed 's#/metrics##')
[ -n "$base" ] || { echo "edumon demo printed no URL" >&2; exit 1; }
echo "== edumon demo at $base ($(grep MQTT "$work/demo.out" | xargs))"
api_port=${base##*:}
mqtt_port=$(grep -o 'MQTT *[0-9.]*:[0-9]*' "$work/demo.out" | sed 's/.*://')

# Every other process that connects to the demo's API or broker, with its working directory.
watch_connections() {
  while true; do
    ss -tnpH state established "( dport = :$api_port or dport = :$mqtt_port )" 2>/dev/null \
      | grep -o 'pid=[0-9]*' | sort -u | while read -r p; do
        pid=${p#pid=}
        [ "$pid" = "$demo_pid" ] && continue
        echo "pid $pid in $(readlink "/proc/$pid/cwd" 2>/dev/null):" \
          "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-150)"
      done
    sleep 0.5
  done
}
watch_connections >"$work/connections.log" 2>&1 &
watch_pid=$!

snapshot() {  # the demo's terminals and unknown terminals, as one JSON document
  .venv/bin/python - "$base" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
def get(path):
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return json.load(r)
print(json.dumps({"terminals": get("/api/v1/terminals")["terminals"],
                  "unknown": get("/api/v1/terminals/unknown")}))
PY
}
# Let every terminal that is switched on report first.
for _ in $(seq 1 60); do
  snapshot >"$work/before.json"
  .venv/bin/python -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if sum(t["status"]=="online" for t in d["terminals"]) >= 40 else 1)' "$work/before.json" && break
  sleep 1
done

status=0
for run in $(seq 1 "$runs"); do
  echo "== test run $run of $runs"
  start=$(date +%s)
  .venv/bin/python -m pytest -q -p no:randomly "$@" || status=1
  echo "== test run $run: $(( $(date +%s) - start )) s"
done

snapshot >"$work/after.json"
.venv/bin/python - "$work/before.json" "$work/after.json" <<'PY' || status=1
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
by_id = {t["terminal"]: t for t in after["terminals"]}
problems = []
if after["unknown"]["terminals"] or after["unknown"]["messages_total"]:
    problems.append(f"unknown terminals appeared: {after['unknown']}")
if set(by_id) != {t["terminal"] for t in before["terminals"]}:
    problems.append("the demo's terminal list changed")
for t in before["terminals"]:
    now = by_id.get(t["terminal"], {})
    if t["offline_reason"] == "never_seen" and (now.get("status"), now.get("heartbeats")) != ("offline", 0):
        problems.append(f"{t['terminal']} was never switched on, now {now.get('status')}")
    if t["mac"] is not None and now.get("mac") != t["mac"]:
        problems.append(f"{t['terminal']} reports another MAC: {t['mac']} -> {now.get('mac')}")
never = sum(t["offline_reason"] == "never_seen" for t in before["terminals"])
print(f"== demo terminals: {len(before['terminals'])}, {never} never switched on; "
      + ("undisturbed" if not problems else "DISTURBED"))
for p in problems:
    print("   " + p)
sys.exit(1 if problems else 0)
PY
if [ -s "$work/connections.log" ]; then
  echo "== other processes that connected to the demo (the soak's own API reads are among them):"
  sort -u "$work/connections.log" | sed 's/^/   /'
fi
if grep -q Traceback "$work/demo.err"; then
  echo "== the demo logged a traceback:" && cat "$work/demo.err"; status=1
fi
exit $status
