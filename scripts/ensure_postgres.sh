#!/usr/bin/env bash
# Starts this machine's PostgreSQL if it is down (CI and fresh machines).
set -euo pipefail
host=${PGHOST_FOR_TESTS:-127.0.0.1}
if pg_isready -q -h "$host" -p 5432 2>/dev/null; then
  exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "PostgreSQL is not running on $host:5432 and pg_ctlcluster is not installed" >&2
  exit 1
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
echo "starting PostgreSQL $version"
pg_ctlcluster --skip-systemctl-redirect "$version" main start
for _ in $(seq 1 60); do
  pg_isready -q -h "$host" -p 5432 && exit 0
  sleep 0.5
done
echo "PostgreSQL did not become ready" >&2
exit 1
