#!/bin/sh
# Entrypoint of the PostgreSQL fixture image (Debian's postgresql-15 on a bookworm root), with the
# behaviour of the official image's entrypoint:
#
#   - as root, it makes $PGDATA (default /var/lib/postgresql/data) a folder owned by postgres with
#     mode 0700 (an empty host folder owned by root, bind-mounted there, is fine), then runs itself
#     again as the user postgres;
#   - when $PGDATA holds no cluster (no PG_VERSION) it runs initdb with the superuser
#     $POSTGRES_USER (default postgres) and the password $POSTGRES_PASSWORD, which is required
#     unless POSTGRES_HOST_AUTH_METHOD=trust; host connections authenticate with
#     $POSTGRES_HOST_AUTH_METHOD (default scram-sha-256, `host all all all scram-sha-256`), the
#     server listens on every address, the database $POSTGRES_DB (default: the user's name) is
#     created, and /docker-entrypoint-initdb.d/*.sh, *.sql and *.sql.gz are run;
#   - a cluster that is already there is used as it is;
#   - then postgres replaces this script (PID 1 of the container). The image's stop signal is
#     SIGINT, PostgreSQL's fast shutdown: `docker stop` ends open sessions and shuts down cleanly.
#
# Arguments: none or flags ("-c shared_buffers=256MB") run postgres with them; any other command
# is run as it is. POSTGRES_INITDB_ARGS adds arguments to initdb. The password is never printed
# and is not passed on the command line of any process.
set -eu

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

log() { printf '%s\n' "$*"; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
	exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA"
	chmod 0700 "$PGDATA" || :
	find "$PGDATA" ! -user postgres -exec chown postgres:postgres '{}' +
	mkdir -p /var/run/postgresql
	chown postgres:postgres /var/run/postgresql
	chmod 2775 /var/run/postgresql
	HOME=/var/lib/postgresql
	export HOME
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

mkdir -p "$PGDATA"
chmod 0700 "$PGDATA" 2>/dev/null || :

# psql against the temporary server of the initialisation (Unix socket, no password).
run_psql() {
	psql -X -v ON_ERROR_STOP=1 --no-password --username "$POSTGRES_USER" "$@"
}

init_cluster() {
	POSTGRES_USER=${POSTGRES_USER:-postgres}
	POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
	auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
		die "the database is uninitialized and no superuser password is set.
  Set POSTGRES_PASSWORD to a non-empty value (e.g. -e POSTGRES_PASSWORD=... on docker run),
  or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without a password (unsafe)."
	fi
	if [ "$auth" = trust ]; then
		log "warning: POSTGRES_HOST_AUTH_METHOD=trust: every host connection is allowed without a password"
	fi

	pwfile=
	if [ -n "${POSTGRES_PASSWORD:-}" ]; then
		pwfile=$(mktemp)
		# printf is a shell builtin: the password never shows in a process's arguments.
		printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	fi
	set -f
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is split into words on purpose
	if ! initdb --username="$POSTGRES_USER" ${pwfile:+"--pwfile=$pwfile"} \
		--auth-local=trust --auth-host="$auth" ${POSTGRES_INITDB_ARGS:-}; then
		[ -z "$pwfile" ] || rm -f "$pwfile"
		die "initdb failed"
	fi
	set +f
	[ -z "$pwfile" ] || rm -f "$pwfile"

	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
	if [ "$POSTGRES_DB" != postgres ]; then
		run_psql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db" ;
		EOSQL
		log "created database $POSTGRES_DB"
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case $f in
		*.sh)
			log "running $f"
			if [ -x "$f" ]; then "$f"; else . "$f"; fi
			;;
		*.sql)
			log "running $f"
			run_psql --dbname "$POSTGRES_DB" -f "$f"
			;;
		*.sql.gz)
			log "running $f"
			gunzip -c "$f" | run_psql --dbname "$POSTGRES_DB"
			;;
		*) [ ! -e "$f" ] || log "ignoring $f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	log "PostgreSQL init process complete; ready for start up."
}

if [ -s "$PGDATA/PG_VERSION" ]; then
	log "PostgreSQL database directory appears to contain a database; skipping initialization"
else
	init_cluster
fi
unset POSTGRES_PASSWORD
exec "$@"
