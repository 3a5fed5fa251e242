#!/usr/bin/env bash
# Back up Parity's PostgreSQL database with pg_dump and keep the newest N dumps.
#
#   DATABASE_URL=postgres://user:pass@host:5432/parity deploy/backup.sh
#   deploy/backup.sh                     # no DATABASE_URL: dump the `db` service of deploy/compose.yaml
#
# Environment:
#   BACKUP_DIR   where dumps go (default: deploy/backups beside this script)
#   BACKUP_KEEP  how many dumps to keep, newest first (default 14)
#
# Each dump is pg_dump's custom format (compressed; restore with
# `pg_restore --clean --if-exists --no-owner -d "$DATABASE_URL" FILE`). A dump is written
# under a temporary name, checked with `pg_restore --list`, and only then renamed, so a
# failed or interrupted run never leaves a file that looks like a good backup, and
# rotation only ever deletes older complete dumps.
# Cron, nightly at 03:15:  15 3 * * * /srv/parity/deploy/backup.sh >>/var/log/parity-backup.log 2>&1
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
backup_dir="${BACKUP_DIR:-$here/backups}"
keep="${BACKUP_KEEP:-14}"

if ! [[ "$keep" =~ ^[1-9][0-9]*$ ]]; then
  echo "backup.sh: BACKUP_KEEP must be a whole number of at least 1, not '$keep'" >&2
  exit 2
fi

mkdir -p "$backup_dir"
umask 077
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
final="$backup_dir/parity-$stamp.dump"
partial="$backup_dir/.parity-$stamp.dump.partial"
trap 'rm -f "$partial"' EXIT

if [[ -n "${DATABASE_URL:-}" ]]; then
  pg_dump --format=custom --compress=6 --no-owner --no-privileges --dbname="$DATABASE_URL" --file="$partial"
  pg_restore --list "$partial" >/dev/null
else
  compose=(docker compose -f "$here/compose.yaml")
  "${compose[@]}" exec -T db pg_dump --format=custom --compress=6 --no-owner --no-privileges \
    -U parity parity >"$partial"
  "${compose[@]}" exec -T db pg_restore --list <"$partial" >/dev/null
fi

if [[ ! -s "$partial" ]]; then
  echo "backup.sh: pg_dump wrote nothing; no backup made" >&2
  exit 1
fi
mv "$partial" "$final"
echo "backup.sh: wrote $final ($(du -h "$final" | cut -f1))"

# Rotation: the names sort by time (UTC stamp), newest last; keep the last $keep.
mapfile -t dumps < <(find "$backup_dir" -maxdepth 1 -type f -name 'parity-*.dump' -printf '%f\n' | sort)
excess=$(( ${#dumps[@]} - keep ))
for (( i = 0; i < excess; i++ )); do
  rm -f -- "$backup_dir/${dumps[$i]}"
  echo "backup.sh: removed old ${dumps[$i]}"
done
