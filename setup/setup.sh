#!/usr/bin/env bash
# Sets up what the suite needs, and only what is missing: an Odoo 17.0 source tree,
# a virtual environment in .venv with Odoo and the suite's Python dependencies, a
# reachable PostgreSQL and a generated odoo.conf. Safe to run again (seconds).
#
# Odoo source, first match wins:
#   1. $ODOO_SRC                      (a path to an Odoo 17.0 source tree)
#   2. /opt/odoo-17.0                 (the default location; see README)
#   3. a shallow clone of https://github.com/odoo/odoo (branch 17.0) into .odoo-src/
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="$REPO/.venv"
CONF="$REPO/odoo.conf"
DEFAULT_ODOO_SRC="/opt/odoo-17.0"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }

# --- Odoo source --------------------------------------------------------------
if [ -n "${ODOO_SRC:-}" ]; then
    [ -f "$ODOO_SRC/odoo/release.py" ] || die "ODOO_SRC=$ODOO_SRC is not an Odoo source tree (no odoo/release.py)."
elif [ -f "$DEFAULT_ODOO_SRC/odoo/release.py" ]; then
    ODOO_SRC="$DEFAULT_ODOO_SRC"
elif [ -f "$REPO/.odoo-src/odoo/release.py" ]; then
    ODOO_SRC="$REPO/.odoo-src"
else
    say "No Odoo source at \$ODOO_SRC or $DEFAULT_ODOO_SRC: cloning odoo/odoo 17.0 into .odoo-src (shallow)."
    git clone --depth 1 --branch 17.0 https://github.com/odoo/odoo.git "$REPO/.odoo-src" \
        || die "Could not clone Odoo 17.0. Set ODOO_SRC to an Odoo 17.0 source tree."
    ODOO_SRC="$REPO/.odoo-src"
fi
ODOO_SRC="$(cd "$ODOO_SRC" && pwd)"
version=$("$PYTHON" - "$ODOO_SRC" <<'PY'
import runpy, sys
info = runpy.run_path(sys.argv[1] + "/odoo/release.py")["version_info"]
print("%s.%s" % (info[0], info[1]))
PY
)
[ "$version" = "17.0" ] || die "$ODOO_SRC holds Odoo $version; this suite needs Odoo 17.0."

# --- virtual environment -------------------------------------------------------
# The stamp holds what the environment was built from; when it matches, skip pip.
stamp_src="$ODOO_SRC $(cat "$ODOO_SRC/requirements.txt" "$REPO/requirements.txt" "$REPO/setup/setup.sh" | sha1sum)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$stamp_src" ]; then
    say "Building the virtual environment in .venv (about 1-2 minutes the first time)."
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    # pip's warnings about this machine's local index folders are noise: drop them.
    pipi() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2> >(grep -vE "WARNING: Location|^odoo 17.0 requires|pip.s dependency resolver" >&2); }
    # setuptools 79 (not 81+: it drops pkg_resources, which Odoo 17 imports; not before
    # 79: its pkg_resources cannot find zope.interface, whose wheels name their metadata
    # zope_interface, and the gevent process (workers > 0) then dies at start, over and over)
    pipi "pip>=23" "setuptools>=79,<80" wheel
    # Odoo's requirements, adapted (README, *What the setup does*): psycopg2 from a wheel, no
    # python-ldap (only auth_ldap needs it, and it needs system headers).
    grep -vE '^\s*(psycopg2|python-ldap)\b' "$ODOO_SRC/requirements.txt" > "$VENV/odoo-requirements.txt"
    echo "psycopg2-binary==2.9.9" >> "$VENV/odoo-requirements.txt"
    pipi -r "$VENV/odoo-requirements.txt"
    # Odoo itself, editable in compat mode so that odoo.addons spans the source
    # tree and the OCA wheels installed into site-packages/odoo/addons.
    pipi --no-deps -e "$ODOO_SRC" --config-settings editable_mode=compat
    # OCA addon wheels declare a dependency on "odoo", which pip cannot resolve
    # from Odoo's setup.py: install them without dependencies, the rest normally.
    grep -E '^odoo-addon-' "$REPO/requirements.txt" > "$VENV/oca-requirements.txt" || true
    grep -vE '^odoo-addon-' "$REPO/requirements.txt" > "$VENV/py-requirements.txt"
    pipi -r "$VENV/py-requirements.txt"
    [ -s "$VENV/oca-requirements.txt" ] && pipi --no-deps -r "$VENV/oca-requirements.txt"
    echo "$stamp_src" > "$VENV/.stamp"
fi

# --- PostgreSQL ----------------------------------------------------------------
# Local server over its Unix socket by default; PGHOST/PGPORT/PGUSER point elsewhere.
if ! psql -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    die "No PostgreSQL answers (PGHOST=${PGHOST:-<socket>} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-$USER}).
       Start one: 'pg_ctlcluster 15 main start' (Debian; '--skip-systemctl-redirect' without systemd),
       or install it: 'apt-get install -y postgresql'. Odoo refuses the 'postgres' role: use another."
fi

# --- Chromium for browser tours (Odoo looks for it on PATH) --------------------
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
        && ! command -v google-chrome >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "Installing Debian's chromium for browser tests."
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || say "Could not install chromium: browser tours will be skipped by Odoo."
    else
        say "No Chromium on PATH: install it (Debian: apt-get install chromium) for browser tours."
    fi
fi

# --- wkhtmltopdf (PDF reports: vouchers) and poppler-utils (pdftoppm, pdfinfo) ---
if ! command -v wkhtmltopdf >/dev/null 2>&1 || ! command -v pdftoppm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "Installing Debian's wkhtmltopdf and poppler-utils for PDF vouchers."
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wkhtmltopdf poppler-utils >/dev/null) \
            || say "Could not install wkhtmltopdf: vouchers cannot be printed as PDF."
    else
        say "No wkhtmltopdf on PATH: install it (Debian: apt-get install wkhtmltopdf poppler-utils) to print vouchers."
    fi
fi

# --- HAProxy (the load balancer of the two-server test, tests/test_scale_out.py) ---
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "Installing Debian's haproxy for the two-server test (it is started by the test, not as a service)."
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null) \
            || say "Could not install haproxy: the two-server test will fail."
    else
        say "No haproxy on PATH: install it (Debian: apt-get install haproxy) for the two-server test."
    fi
fi

# --- odoo.conf -----------------------------------------------------------------
addons_path="$ODOO_SRC/addons,$ODOO_SRC/odoo/addons,$REPO"
"$VENV/bin/python" - "$CONF" "$addons_path" <<'PY'
import configparser, os, sys
conf, addons_path = sys.argv[1:3]
cp = configparser.ConfigParser()
cp["options"] = {
    "addons_path": addons_path,
    "db_host": os.environ.get("PGHOST", "False"),
    "db_port": os.environ.get("PGPORT", "False"),
    "db_user": os.environ.get("PGUSER", "False"),
    "db_password": os.environ.get("PGPASSWORD", "False"),
    "admin_passwd": "admin",
    "server_wide_modules": "base,web,queue_job",
    "list_db": "True",
    "without_demo": "all",
    "limit_time_cpu": "600",
    "limit_time_real": "1200",
    "limit_memory_soft": str(2 * 1024**3),
    "limit_memory_hard": str(3 * 1024**3),
    "max_cron_threads": "1",
    "data_dir": os.path.join(os.path.dirname(conf), "var"),
}
# queue_job 17.0 reads its runner options from this section (OCA queue_job README).
cp["queue_job"] = {"channels": "root:2,root.g2p:2"}
with open(conf, "w") as fh:
    fh.write("# Generated by setup/setup.sh: edit that script, not this file.\n")
    cp.write(fh)
PY
echo "$ODOO_SRC" > "$REPO/.odoo-src-path"
say "Ready: Odoo 17.0 from $ODOO_SRC, venv .venv, config odoo.conf."
