#!/usr/bin/env bash
# Sets up what the test suite needs on a Debian/Ubuntu machine and runs it:
# system packages (snmpd, snmp, prometheus for promtool, mosquitto, chromium for the status page), PostgreSQL and Mosquitto
# started, a PostgreSQL role for the tests (edumon_test, created if missing), a virtualenv with
# the package and its test extras pinned by constraints.txt, then lint, type checks and pytest.
# It says what it changes on the machine ("== ..."), and changes nothing else.
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
  [chromium]=chromium
)
missing=()
for bin in "${!PACKAGE_OF[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || [ -x "/usr/bin/$bin" ] \
    || missing+=("${PACKAGE_OF[$bin]}")
done
# A Chinese font, so that the status page's screenshots (test-artifacts/screenshots/) show the
# schools' names (chromium draws boxes without one; the page itself uses the viewer's fonts).
if ! command -v fc-list >/dev/null 2>&1 || [ -z "$(fc-list :lang=zh family 2>/dev/null)" ]; then
  missing+=(fonts-wqy-microhei)
fi
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

# PostgreSQL: the tests connect as a role of their own, edumon_test (LOGIN, CREATEDB, a
# password), and create and drop their own uniquely named databases; nothing else on the server
# is changed. The role is created once, as the cluster's superuser over the local socket, and
# only when EDUMON_TEST_POSTGRES (an admin URL for another server or role) is not set.
PG_TEST_ROLE=edumon_test
PG_TEST_PASSWORD=edumon-test-7f3c2a
as_postgres() {  # psql as the cluster's superuser, SQL on stdin
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && su postgres -s /bin/sh -c "psql -X -q -v ON_ERROR_STOP=1 -d postgres")
  else
    (cd / && sudo -u postgres psql -X -q -v ON_ERROR_STOP=1 -d postgres)
  fi
}
if [ -z "${EDUMON_TEST_POSTGRES:-}" ]; then
  export EDUMON_TEST_POSTGRES="postgresql://$PG_TEST_ROLE:$PG_TEST_PASSWORD@127.0.0.1:5432/postgres"
  if ! PGPASSWORD=$PG_TEST_PASSWORD PGCONNECT_TIMEOUT=5 psql -X -w -h 127.0.0.1 -p 5432 \
      -U "$PG_TEST_ROLE" -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    echo "== creating PostgreSQL role $PG_TEST_ROLE for the tests (LOGIN CREATEDB, password" \
      "'$PG_TEST_PASSWORD'; reset if it exists but cannot log in); nothing else changes"
    as_postgres <<SQL
DO \$\$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_TEST_ROLE') THEN
    ALTER ROLE $PG_TEST_ROLE LOGIN CREATEDB PASSWORD '$PG_TEST_PASSWORD';
  ELSE
    CREATE ROLE $PG_TEST_ROLE LOGIN CREATEDB PASSWORD '$PG_TEST_PASSWORD';
  END IF;
END
\$\$;
SQL
  fi
fi

# Python: a virtualenv with the package (editable) and the test tools.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv 2>/dev/null || {
    $SUDO apt-get install -y -q python3-venv && "$PY" -m venv .venv; }
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'

echo "== ruff"
.venv/bin/ruff check edumon tests bench agents
.venv/bin/ruff format --check edumon tests bench agents
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
