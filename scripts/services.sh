#!/usr/bin/env bash
# What the tests need from the machine: libfaketime (an agent with a wrong clock; the
# wall_clock tests rerun at other hours), and PostgreSQL and Redis servers on
# loopback. Installs and starts what is missing
# when run as root on Debian; elsewhere it says what is missing and the tests that
# need it skip with that reason (under CI=true they fail instead).
set -uo pipefail
as_root() { [ "$(id -u)" = 0 ]; }
have_apt() { command -v apt-get >/dev/null 2>&1; }
APT_UPDATED=0
apt_install() {
    as_root && have_apt || { echo "services: cannot install $* (not root on Debian)"; return 1; }
    if [ "$APT_UPDATED" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

command -v faketime >/dev/null 2>&1 || apt_install faketime || true
# tests/test_any_hour.py reruns the wall_clock tests under faketime at other hours: say
# so here if the preload library does not take (a static date, or no libfaketime).
if command -v faketime >/dev/null 2>&1 \
    && [ "$(faketime '2027-03-28 00:30:00' date -u +%F 2>/dev/null)" != 2027-03-28 ]; then
    echo "services: faketime is installed but does not move the clock (libfaketime missing?)"
fi
# The room screen tests draw on Xvfb displays (tests/xvfb_support.py).
command -v Xvfb >/dev/null 2>&1 || apt_install xvfb || true
# TURN tests start their own coturn on loopback (tests/coturn_support.py); the package's
# own service stays stopped (its default config is not used).
command -v turnserver >/dev/null 2>&1 || apt_install coturn || true
# SFU tests start their own Janus processes (tests/janus_support.py) with the project's
# configuration (deploy/janus/); the package's own service stays stopped.
command -v janus >/dev/null 2>&1 || apt_install janus || true
# Browser tests drive Debian's Chromium through Playwright (no browser download).
[ -x /usr/bin/chromium ] || apt_install chromium fonts-dejavu-core || true
# The room agent's echo-cancellation test: PulseAudio's module-echo-cancel, reached
# through ALSA's PulseAudio plugin (no sound card needed: null sinks).
command -v pulseaudio >/dev/null 2>&1 && ls /usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so >/dev/null 2>&1 \
    || apt_install --no-install-recommends pulseaudio pulseaudio-utils libasound2-plugins || true

# The network lab (tests/netlab/): namespaces and shaping (ip, tc), NAT, firewall and loss
# rules (iptables), and flushing a NAT's mappings (conntrack).
command -v tc >/dev/null 2>&1 || apt_install iproute2 || true
command -v iptables >/dev/null 2>&1 || apt_install iptables || true
command -v conntrack >/dev/null 2>&1 || apt_install conntrack || true

# axe-core for the accessibility tests, from the npm registry (tests/js/package-lock.json).
JS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/js"
if [ ! -f "$JS_DIR/node_modules/axe-core/axe.min.js" ] && command -v npm >/dev/null 2>&1; then
    npm ci --prefix "$JS_DIR" --no-audit --no-fund --loglevel=error >/dev/null 2>&1 \
        || echo "services: npm ci in tests/js failed"
fi

if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql || true
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        ver="$(ls /etc/postgresql 2>/dev/null | head -1)"
        [ -n "$ver" ] && pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
        for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && break; sleep 0.5; done
        su postgres -c "psql -tc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test" 2>/dev/null || true
    fi
fi

if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server || true
    if command -v redis-server >/dev/null 2>&1; then
        mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 || true
    fi
fi
exit 0
