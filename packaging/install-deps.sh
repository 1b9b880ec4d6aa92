#!/bin/bash
# Install every Debian 12 package that building, testing, the demo and the benchmarks need.
#
# Idempotent and silent when everything is already installed. Otherwise, as root, it runs
# `apt-get update` and installs what is missing; as any other user it prints the command to run
# and exits non-zero.
#
# Installing postgresql-15 creates and starts a "15 main" cluster on port 5432, and installing
# pgbouncer starts a system PgBouncer on port 6432. pgmux's tests, demo and benchmarks start
# their own servers on free ports and need neither, so when this script has just installed those
# packages it stops both services and keeps them from starting at boot (see the messages it
# prints for how to turn them back on).
set -euo pipefail

packages=(
    # build; clang-format for make format-check (in make check)
    build-essential pkg-config clang-format
    libev-dev libc-ares-dev libinih-dev libssl-dev libpq-dev libjson-c-dev libcurl4-openssl-dev
    libpg-query-dev
    # unit tests
    libcmocka-dev
    # integration tests, demo, benchmarks
    postgresql-15 postgresql-client-15 pgbouncer
    python3 python3-pytest python3-psycopg
    # routing tests and make demo-ha: a real Patroni cluster on etcd
    patroni etcd-server etcd-client python3-etcd
    gnuplot-nox procps openssl iproute2
    # metrics tests: a real Prometheus scraping pgmux, Debian's exporter reading the console
    prometheus prometheus-pgbouncer-exporter
    # driver matrix (test/integration/drivers): psycopg2, PostgreSQL JDBC with a JDK, node;
    # node-postgres itself comes from the npm registry at test time (build/npm)
    python3-psycopg2 libpostgresql-jdbc-java openjdk-17-jdk-headless nodejs
    # make deb, make rpm, make check-packages (systemd for systemd-socket-activate,
    # systemd-analyze and systemd-tmpfiles: the tests need no running systemd)
    debhelper fakeroot lintian rpm logrotate systemd
)
# Debian's npm package; a nodejs package that ships its own npm (NodeSource) conflicts with it.
if ! command -v npm >/dev/null; then
    packages+=(npm)
fi

# Prints the packages among "$@" that are not installed (one dpkg-query call for all of them).
not_installed() {
    local installed
    # dpkg-query exits 1 when some package is unknown to it: that is the case we look for.
    installed=" $({ dpkg-query -W -f='${db:Status-Status}:${Package}\n' "$@" 2>/dev/null || true; } |
        sed -n 's/^installed://p' | tr '\n' ' ') "
    for p in "$@"; do
        case "$installed" in
            *" $p "*) ;;
            *) echo "$p" ;;
        esac
    done
}

mapfile -t missing < <(not_installed "${packages[@]}")

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    {
        echo "pgmux needs these Debian packages: ${missing[*]}"
        echo "Install them as root (then run make again):"
        echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
        echo "or run this script as root: $0"
    } >&2
    exit 1
fi

new_postgresql=no
new_pgbouncer=no
new_ha=no
for p in "${missing[@]}"; do
    case "$p" in
        postgresql-15) new_postgresql=yes ;;
        pgbouncer) new_pgbouncer=yes ;;
        etcd-server|patroni) new_ha=yes ;;
    esac
done

echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# apt's progress is noise; show it only when something fails.
aptlog=$(mktemp)
trap 'rm -f "$aptlog"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"$aptlog" 2>&1; then
    cat "$aptlog" >&2
    echo "install-deps.sh: apt-get failed" >&2
    exit 1
fi

systemd_running() {
    [ -d /run/systemd/system ] && command -v systemctl >/dev/null
}

if [ "$new_postgresql" = yes ] && [ -f /etc/postgresql/15/main/start.conf ]; then
    # The packaged cluster holds port 5432 and memory; pgmux never uses it.
    sed -i 's/^[[:space:]]*auto[[:space:]]*$/manual/' /etc/postgresql/15/main/start.conf
    if pg_ctlcluster 15 main status >/dev/null 2>&1; then
        pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
    fi
    if systemd_running; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    fi
    echo "The packaged PostgreSQL cluster \"15 main\" is stopped and set to start manually:"
    echo "  pgmux's tests run their own servers (to use it: pg_ctlcluster 15 main start)."
fi

if [ "$new_ha" = yes ]; then
    # The tests start their own etcd and Patroni on free ports; the packaged services are idle
    # weight (etcd) or fail without a config (patroni).
    if systemd_running; then
        systemctl disable --now etcd.service patroni.service >/dev/null 2>&1 || true
    else
        service etcd stop >/dev/null 2>&1 || true
        update-rc.d etcd disable >/dev/null 2>&1 || true
        update-rc.d patroni disable >/dev/null 2>&1 || true
    fi
fi

if [ "$new_pgbouncer" = yes ]; then
    # The packaged PgBouncer would hold port 6432; benchmarks start their own PgBouncer.
    if systemd_running; then
        systemctl disable --now pgbouncer.service pgbouncer.socket >/dev/null 2>&1 || true
    else
        service pgbouncer stop >/dev/null 2>&1 || true
        update-rc.d pgbouncer disable >/dev/null 2>&1 || true
    fi
    echo "The packaged pgbouncer service is stopped and disabled:"
    echo "  pgmux's benchmarks run their own PgBouncer (to use it: systemctl enable --now pgbouncer)."
fi

mapfile -t still_missing < <(not_installed "${missing[@]}")
if [ ${#still_missing[@]} -ne 0 ]; then
    echo "install-deps.sh: still not installed: ${still_missing[*]}" >&2
    exit 1
fi
echo "All build and test dependencies are installed."
