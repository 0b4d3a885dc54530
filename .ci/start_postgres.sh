# Start a throwaway PostgreSQL server for the sweep tests.  Usage (from .ci/run):
#
#     source .ci/start_postgres.sh
#
# On success it exports ROBUSTMM_TEST_POSTGRES_URL (a unix-socket URL) and stops the server
# when the calling shell exits. On any failure it prints why, leaves that variable unset and
# exports ROBUSTMM_TEST_POSTGRES_UNAVAILABLE with the reason, which the PostgreSQL sweep test
# shows when it skips. It never fails the calling script: it is sourced, so it returns, never
# exits, and does not change the caller's shell options.

_robustmm_pg_fail() {
    echo "start_postgres: PostgreSQL unavailable: $1" >&2
    unset ROBUSTMM_TEST_POSTGRES_URL
    export ROBUSTMM_TEST_POSTGRES_UNAVAILABLE="$1"
    return 1
}

_robustmm_pg_bindir() {
    local dir path_dir=""
    command -v pg_ctl >/dev/null 2>&1 && path_dir=$(dirname "$(command -v pg_ctl)")
    # Debian keeps the server binaries out of PATH, one folder per major version
    for dir in $path_dir $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ] && [ -x "$dir/createdb" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

_robustmm_pg_install() {
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            local sudo_cmd="sudo -n"
        else
            echo "the PostgreSQL server is not installed and this user cannot install packages (not root, no sudo)"
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "the PostgreSQL server is not installed and apt-get is not available to install it"
        return 1
    fi
    echo "start_postgres: installing Debian's postgresql package" >&2
    if ! ${sudo_cmd:-} env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q postgresql >/tmp/robustmm-pg-install.log 2>&1; then
        ${sudo_cmd:-} env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -q >>/tmp/robustmm-pg-install.log 2>&1
        if ! ${sudo_cmd:-} env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q postgresql >>/tmp/robustmm-pg-install.log 2>&1; then
            echo "apt-get install postgresql failed: $(tail -n 3 /tmp/robustmm-pg-install.log | tr '\n' ' ')"
            return 1
        fi
    fi
    return 0
}

_robustmm_pg_start() {
    local bindir reason owner base run_as port=54329 user=robustmm db=robustmm_test
    if ! bindir=$(_robustmm_pg_bindir); then
        reason=$(_robustmm_pg_install) || { _robustmm_pg_fail "$reason"; return 1; }
        bindir=$(_robustmm_pg_bindir) || { _robustmm_pg_fail "postgresql was installed but pg_ctl/initdb were not found"; return 1; }
    fi
    # initdb refuses to run as root: use the 'postgres' system account that the package creates
    if [ "$(id -u)" -eq 0 ]; then
        owner=postgres
        id "$owner" >/dev/null 2>&1 || { _robustmm_pg_fail "running as root and there is no 'postgres' user to own the server"; return 1; }
        command -v runuser >/dev/null 2>&1 || { _robustmm_pg_fail "running as root without runuser to switch to 'postgres'"; return 1; }
        run_as="runuser -u $owner --"
    else
        owner=$(id -un)
        run_as=""
    fi
    base=$(mktemp -d "${TMPDIR:-/tmp}/robustmm-pg.XXXXXX") || { _robustmm_pg_fail "cannot create a temporary folder"; return 1; }
    mkdir -p "$base/socket"
    chmod 755 "$base" "$base/socket"
    [ -n "$run_as" ] && chown -R "$owner" "$base"
    if ! $run_as "$bindir/initdb" -D "$base/data" -U "$user" -A trust --no-sync -E UTF8 >"$base/initdb.log" 2>&1; then
        _robustmm_pg_fail "initdb failed: $(tail -n 3 "$base/initdb.log" | tr '\n' ' ')"
        return 1
    fi
    # unix socket only (listen_addresses=''), in a private folder; durability is not needed for tests
    if ! $run_as timeout 120 "$bindir/pg_ctl" -D "$base/data" -l "$base/server.log" -w -t 60 \
            -o "-c listen_addresses='' -k $base/socket -p $port -c fsync=off -c synchronous_commit=off -c max_connections=200" \
            start >"$base/pg_ctl.log" 2>&1; then
        _robustmm_pg_fail "the server did not start: $(tail -n 3 "$base/server.log" 2>/dev/null | tr '\n' ' ')"
        return 1
    fi
    export ROBUSTMM_PG_DIR="$base" ROBUSTMM_PG_BINDIR="$bindir" ROBUSTMM_PG_RUN_AS="$run_as"
    if ! reason=$($run_as "$bindir/createdb" -h "$base/socket" -p "$port" -U "$user" "$db" 2>&1); then
        robustmm_stop_postgres
        _robustmm_pg_fail "createdb failed: $(echo "$reason" | tail -n 3 | tr '\n' ' ')"
        return 1
    fi
    unset ROBUSTMM_TEST_POSTGRES_UNAVAILABLE
    export ROBUSTMM_TEST_POSTGRES_URL="postgresql+psycopg2://$user@/$db?host=$base/socket&port=$port"
    echo "start_postgres: PostgreSQL running in $base (ROBUSTMM_TEST_POSTGRES_URL=$ROBUSTMM_TEST_POSTGRES_URL)" >&2
    return 0
}

robustmm_stop_postgres() {
    if [ -n "${ROBUSTMM_PG_DIR:-}" ] && [ -d "$ROBUSTMM_PG_DIR/data" ]; then
        $ROBUSTMM_PG_RUN_AS "$ROBUSTMM_PG_BINDIR/pg_ctl" -D "$ROBUSTMM_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
        rm -rf "$ROBUSTMM_PG_DIR"
    fi
    unset ROBUSTMM_PG_DIR ROBUSTMM_TEST_POSTGRES_URL
}

if _robustmm_pg_start; then
    # stop the server when the calling shell exits, after whatever EXIT trap it already had
    _robustmm_prev_exit_trap=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
    trap "robustmm_stop_postgres; ${_robustmm_prev_exit_trap}" EXIT
fi
true
