#!/usr/bin/env bash
# Make sure the services the test suite talks to are up; idempotent, safe to run any number of times.
#
#   PostgreSQL  127.0.0.1:5432   (checked with pg_isready; started with pg_ctlcluster)
#   RabbitMQ    127.0.0.1:5672   (AMQP; started with `rabbitmq-server -detached`)
#               127.0.0.1:61613  (STOMP; `rabbitmq-plugins enable rabbitmq_stomp`)
#
# SQS is not a service here: the tests start moto in server mode themselves.
#
# When a service cannot be brought up: with CI=true print what is wrong and exit 1; otherwise print
# a warning and exit 0 (the tests that need the service then fail loudly on their own).
#
# Tunables (environment): SERVICES_TIMEOUT (seconds per wait, default 60), PG_HOST, PG_PORT,
# RABBITMQ_HOST, RABBITMQ_PORT, STOMP_PORT.
set -uo pipefail

TIMEOUT="${SERVICES_TIMEOUT:-60}"
PG_HOST="${PG_HOST:-127.0.0.1}"
PG_PORT="${PG_PORT:-5432}"
RABBITMQ_HOST="${RABBITMQ_HOST:-127.0.0.1}"
RABBITMQ_PORT="${RABBITMQ_PORT:-5672}"
STOMP_PORT="${STOMP_PORT:-61613}"

problems=()

say() { printf 'services: %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

# Run a command with a time limit when `timeout` exists (rabbitmq CLI tools can hang on a sick node).
limited() {
    local seconds="$1"
    shift
    if have timeout; then
        timeout "$seconds" "$@"
    else
        "$@"
    fi
}

problem() {
    say "PROBLEM: $*" >&2
    problems+=("$*")
}

# port_open HOST PORT: does a TCP connect succeed (within 2 s)?
port_open() {
    local host="$1" port="$2"
    if have timeout; then
        # shellcheck disable=SC2016  # $0/$1 are expanded by the inner bash
        timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
    else
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
    fi
}

# wait_until SECONDS COMMAND...: poll COMMAND once a second until it succeeds or time runs out.
wait_until() {
    local seconds="$1"
    shift
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 1
    done
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------
pg_ready() {
    if have pg_isready; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
    else
        port_open "$PG_HOST" "$PG_PORT"
    fi
}

ensure_postgres() {
    if pg_ready; then
        say "PostgreSQL answers on $PG_HOST:$PG_PORT"
        return 0
    fi
    say "PostgreSQL does not answer on $PG_HOST:$PG_PORT; trying to start it"
    local version=""
    if [[ -d /etc/postgresql ]]; then
        # shellcheck disable=SC2012  # cluster versions are plain numbers
        version="$(ls /etc/postgresql | head -1)"
    fi
    if ! have pg_ctlcluster || [[ -z "$version" ]]; then
        problem "PostgreSQL is not answering on $PG_HOST:$PG_PORT and there is no pg_ctlcluster" \
            "or /etc/postgresql cluster to start it with; start it yourself or set HUB_TEST_DATABASE_URL"
        return 1
    fi
    say "pg_ctlcluster --skip-systemctl-redirect $version main start"
    # A cluster that is already running (e.g. answering only on its socket) makes this fail; the
    # readiness wait below decides.
    limited "$TIMEOUT" pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
        say "pg_ctlcluster exited with $?; waiting for the server anyway"
    if wait_until "$TIMEOUT" pg_ready; then
        say "PostgreSQL answers on $PG_HOST:$PG_PORT"
        return 0
    fi
    problem "PostgreSQL did not answer on $PG_HOST:$PG_PORT within ${TIMEOUT}s after starting it" \
        "(see /var/log/postgresql/)"
    return 1
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ + STOMP
# ---------------------------------------------------------------------------------------------
amqp_open() { port_open "$RABBITMQ_HOST" "$RABBITMQ_PORT"; }
stomp_open() { port_open "$RABBITMQ_HOST" "$STOMP_PORT"; }

stomp_enabled() {
    # -m: names only, -e: explicitly or implicitly enabled plugins.
    limited 30 rabbitmq-plugins list -e -m 2>/dev/null | grep -qx 'rabbitmq_stomp'
}

ensure_rabbitmq() {
    if amqp_open; then
        say "RabbitMQ answers on $RABBITMQ_HOST:$RABBITMQ_PORT"
    else
        say "RabbitMQ does not answer on $RABBITMQ_HOST:$RABBITMQ_PORT; trying to start it"
        if ! have rabbitmq-server; then
            problem "RabbitMQ is not answering on $RABBITMQ_HOST:$RABBITMQ_PORT and rabbitmq-server" \
                "is not installed"
            return 1
        fi
        say "rabbitmq-server -detached"
        rabbitmq-server -detached || say "rabbitmq-server exited with $?; waiting for the node anyway"
        if ! wait_until "$TIMEOUT" amqp_open; then
            problem "RabbitMQ did not answer on $RABBITMQ_HOST:$RABBITMQ_PORT within ${TIMEOUT}s" \
                "after starting it (see /var/log/rabbitmq/)"
            return 1
        fi
        if have rabbitmqctl; then
            limited "$TIMEOUT" rabbitmqctl -q await_startup --timeout "$TIMEOUT" >/dev/null 2>&1 ||
                say "rabbitmqctl await_startup did not confirm startup (continuing: the port answers)"
        fi
        say "RabbitMQ answers on $RABBITMQ_HOST:$RABBITMQ_PORT"
    fi

    if stomp_open && stomp_enabled; then
        say "STOMP plugin enabled; listening on $RABBITMQ_HOST:$STOMP_PORT"
        return 0
    fi
    if ! have rabbitmq-plugins; then
        if stomp_open; then
            say "STOMP listens on $RABBITMQ_HOST:$STOMP_PORT (rabbitmq-plugins not found to check)"
            return 0
        fi
        problem "STOMP is not listening on $RABBITMQ_HOST:$STOMP_PORT and rabbitmq-plugins is not" \
            "installed to enable rabbitmq_stomp"
        return 1
    fi
    if stomp_enabled; then
        say "rabbitmq_stomp is enabled; waiting for $RABBITMQ_HOST:$STOMP_PORT"
    else
        say "rabbitmq-plugins enable rabbitmq_stomp"
        if ! limited "$TIMEOUT" rabbitmq-plugins enable rabbitmq_stomp; then
            problem "'rabbitmq-plugins enable rabbitmq_stomp' failed"
            return 1
        fi
    fi
    if wait_until "$TIMEOUT" stomp_open; then
        say "STOMP plugin enabled; listening on $RABBITMQ_HOST:$STOMP_PORT"
        return 0
    fi
    problem "rabbitmq_stomp is enabled but nothing listens on $RABBITMQ_HOST:$STOMP_PORT after" \
        "${TIMEOUT}s"
    return 1
}

ensure_postgres
ensure_rabbitmq

if ((${#problems[@]} == 0)); then
    say "all services up"
    exit 0
fi

if [[ "${CI:-}" == "true" ]]; then
    say "ERROR: ${#problems[@]} service(s) could not be brought up (CI=true, failing):" >&2
    for p in "${problems[@]}"; do say "  - $p" >&2; done
    exit 1
fi
say "WARNING: ${#problems[@]} service(s) could not be brought up; the tests that need them will fail:" >&2
for p in "${problems[@]}"; do say "  - $p" >&2; done
exit 0
