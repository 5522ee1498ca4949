#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks run against (real PostgreSQL, git, a headless
# notification server, systemd-analyze, Node for the Prisma oracle, PgBouncer). Installs only what is missing, so
# it is a fast no-op on a machine that has everything. Not root: reports what is missing, exit 1 if any.
set -euo pipefail

missing=()

have_command() { command -v "$1" >/dev/null 2>&1; }

have_pg_ctl() {
    local candidate
    for candidate in /usr/lib/postgresql/*/bin/pg_ctl; do
        [[ -x "$candidate" ]] && return 0
    done
    return 1
}

have_command git || missing+=(git)
have_pg_ctl || missing+=(postgresql)
have_command Xvfb || missing+=(xvfb)
# dbus-daemon and dbus-send come from two packages in Debian 12; "dbus" depends on both.
{ have_command dbus-daemon && have_command dbus-send; } || missing+=(dbus)
{ have_command dunst && have_command dunstctl; } || missing+=(dunst)
have_command systemd-analyze || missing+=(systemd)
have_command node || missing+=(nodejs)
have_command npm || missing+=(npm)
# PgBouncer in front of the test cluster: the history reader must work through a pooler (no startup options).
{ have_command pgbouncer || [[ -x /usr/sbin/pgbouncer ]]; } || missing+=(pgbouncer)

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    for package in "${missing[@]}"; do
        echo "system-deps: missing Debian package: $package (run tools/system-deps.sh as root to install it)"
    done
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
for package in "${missing[@]}"; do
    echo "system-deps: installing $package"
done
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
