#!/usr/bin/env bash
# Sets up what the test suite needs on a Debian/Ubuntu machine and runs it:
# system packages (snmpd, snmp, prometheus for promtool, mosquitto), PostgreSQL and Mosquitto
# started, a virtualenv with the package and its test extras, then lint, type checks and pytest.
# Usage: bash tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Binaries the tests run, and the Debian package of each.
declare -A PACKAGE_OF=(
  [snmpd]=snmpd
  [snmpwalk]=snmp
  [promtool]=prometheus
  [amtool]=prometheus-alertmanager
  [pg_ctlcluster]=postgresql
  [mosquitto]=mosquitto
  [mosquitto_passwd]=mosquitto
  [mosquitto_sub]=mosquitto-clients
)
missing=()
for bin in "${!PACKAGE_OF[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || [ -x "/usr/bin/$bin" ] \
    || missing+=("${PACKAGE_OF[$bin]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing system packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# PostgreSQL on 127.0.0.1:5432: start the local cluster if it is not answering.
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_up; then
  echo "== starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
fi
# Mosquitto on 127.0.0.1:1883 (the MQTT tests talk to a real broker).
mqtt_up() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }
if ! mqtt_up; then
  echo "== starting Mosquitto"
  $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf
  for _ in $(seq 1 40); do mqtt_up && break; sleep 0.25; done
  mqtt_up || { echo "Mosquitto did not start on 127.0.0.1:1883" >&2; exit 1; }
fi

# The tests connect as postgres over TCP; on a stock install that needs a password.
if [ -z "${EDUMON_TEST_POSTGRES:-}" ]; then
  if ! psql -h 127.0.0.1 -U postgres -d postgres -w -c 'select 1' >/dev/null 2>&1; then
    $SUDO -u postgres psql -q -c "ALTER USER postgres PASSWORD 'edumon-test'" 2>/dev/null \
      || su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'edumon-test'\""
    export EDUMON_TEST_POSTGRES="postgresql://postgres:edumon-test@127.0.0.1:5432/postgres"
  fi
fi

# Python: a virtualenv with the package (editable) and the test tools.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv 2>/dev/null || {
    $SUDO apt-get install -y -q python3-venv && "$PY" -m venv .venv; }
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== ruff"
.venv/bin/ruff check edumon tests bench agents
.venv/bin/ruff format --check edumon tests bench agents
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
