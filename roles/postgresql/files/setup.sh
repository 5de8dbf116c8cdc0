#!/bin/sh
# Create each database and its owner role once; (re)set the role's password from its
# Secret on every run. Idempotent: safe to run again. Passwords go through psql variables
# (:'pw'), never through the command line or the server log.
set -eu
until pg_isready --quiet; do
  echo "waiting for ${PGHOST}:${PGPORT}"
  sleep 2
done
i=0
while [ "$i" -lt "$DB_COUNT" ]; do
  eval "db=\${DB_${i}_NAME} owner=\${DB_${i}_OWNER} pw=\${DB_${i}_PASSWORD}"
  psql --no-psqlrc -v ON_ERROR_STOP=1 -v db="$db" -v owner="$owner" -v pw="$pw" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'owner', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'owner') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SQL
  echo "database ${db} owned by ${owner}: ready"
  i=$((i + 1))
done
