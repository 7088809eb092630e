#!/usr/bin/env bash
# Builds the real Odoo peers of the `real_odoo` tests (tests/real_odoo) from the folder named by
# LINEBRIDGE_ODOO_PEERS: each `odoo-<ver>-*.tar.xz` there (or unpacked tree `odoo-<ver>*/` holding
# odoo-bin) becomes, under $LINEBRIDGE_ODOO_CACHE (default /var/cache/linebridge/odoo), a folder
# <ver>-<key> keyed by the tarball's sha256 with: the unpacked tree (src/), one venv with Odoo's
# requirements (venv/), a template database with mrp,stock,maintenance installed without demo data
# (each test session copies it with `createdb -T`), 17.0 also a second template with OCA's
# quality_control_oca, 19.0 an API key for JSON-2, and peer.json naming all of it. A finished
# folder is reused as it is, so only the first run on a machine pays (about 5 minutes per version).
# Also installs PostgreSQL and Odoo's build dependencies from Debian and starts the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS="${LINEBRIDGE_ODOO_PEERS:-}"
if [ -z "$PEERS" ]; then
    echo "tests/setup_odoo.sh: LINEBRIDGE_ODOO_PEERS is not set; the real_odoo tests will fail (see README)" >&2
    exit 0
fi
PEERS="$(cd "$PEERS" && pwd)"
CACHE="${LINEBRIDGE_ODOO_CACHE:-/var/cache/linebridge/odoo}"
VERSIONS="${LINEBRIDGE_ODOO_VERSIONS:-16.0 17.0 18.0 19.0}"
JOBS="${LINEBRIDGE_ODOO_JOBS:-2}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
t0=$(date +%s)

missing=()
for pkg in postgresql libpq-dev libldap2-dev libsasl2-dev libxml2-dev libxslt1-dev libjpeg-dev zlib1g-dev \
           build-essential python3-dev python3-venv xz-utils; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
pg=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_lsclusters -h | grep -q " online" || $SUDO pg_ctlcluster "$pg" main start
me=$(id -un)
if ! su postgres -c "psql -tAc \"select 1 from pg_roles where rolname='$me'\"" | grep -q 1; then
    su postgres -c "createuser -s $me"
fi
echo "odoo peers: system packages and PostgreSQL $pg ready in $(( $(date +%s) - t0 ))s"
mkdir -p "$CACHE"

steps() {  # steps VERSION SOURCE DIR: run by its own `bash -e`, so any failing step stops the build
    local ver="$1" source="$2" dir="$3" started db qc="" apikey="" extra=""
    started=$(date +%s)
    if [ -f "$source" ]; then mkdir "$dir/src" && tar -xJf "$source" -C "$dir/src" --strip-components=1
    else ln -s "$source" "$dir/src"; fi
    python3 -m venv "$dir/venv"
    # Debian's pip, as Odoo's README has it: newer pips no longer apply PIP_CONSTRAINT to build environments
    export PIP_CONSTRAINT="$PEERS/build-constraints.txt" PIP_BUILD_CONSTRAINT="$PEERS/build-constraints.txt"
    "$dir/venv/bin/pip" install -q -r "$dir/src/requirements.txt"
    echo "pip: $(( $(date +%s) - started ))s"
    db="lb_tpl_${ver%%.*}_$(basename "$dir" | cut -d- -f2)"
    dropdb --if-exists "$db"
    (cd "$dir/src" && "$dir/venv/bin/python" odoo-bin -d "$db" --db_host= --addons-path=addons,odoo/addons \
        --data-dir="$dir/data" -i mrp,stock,maintenance --without-demo=all --stop-after-init --log-level=warn)
    echo "template $db: $(( $(date +%s) - started ))s"
    if [ "$ver" = "17.0" ]; then
        qc="${db}_qc"
        # OCA's wheel requires a distribution named odoo: the tree itself (its dependencies are in already)
        "$dir/venv/bin/pip" install -q --no-deps -e "$dir/src"
        "$dir/venv/bin/pip" install -q --no-deps "odoo-addon-quality_control_oca>=17.0,<17.1"  # its one requirement: odoo
        extra=$(cd / && "$dir/venv/bin/python" -c 'import odoo.addons; print(",".join(p for p in odoo.addons.__path__ if "site-packages" in p))')
        [ -n "$extra" ]
        dropdb --if-exists "$qc" && createdb -T "$db" "$qc"
        if [ -d "$dir/data/filestore/$db" ]; then cp -a "$dir/data/filestore/$db" "$dir/data/filestore/$qc"; fi
        (cd "$dir/src" && "$dir/venv/bin/python" odoo-bin -d "$qc" --db_host= --addons-path="addons,odoo/addons,$extra" \
            --data-dir="$dir/data" -i quality_control_oca --without-demo=all --stop-after-init --log-level=warn)
        [ "$(psql -tAc "select state from ir_module_module where name='quality_control_oca'" "$qc")" = installed ]
        echo "template $qc: $(( $(date +%s) - started ))s"
    fi
    if [ "$ver" = "19.0" ]; then
        apikey=$(cd "$dir/src" && echo "key = env['res.users.apikeys'].with_user(env.ref('base.user_admin'))._generate(None, 'linebridge tests', None); env.cr.commit(); print('APIKEY=' + key)" \
            | "$dir/venv/bin/python" odoo-bin shell -d "$db" --db_host= --addons-path=addons,odoo/addons \
                --data-dir="$dir/data" --log-level=warn | sed -n 's/^APIKEY=//p')
        [ -n "$apikey" ]
    fi
    "$dir/venv/bin/python" - "$dir" "$ver" "$db" "$qc" "$apikey" "$extra" <<'EOF'
import json, pathlib, sys
d, ver, db, qc, key, extra = sys.argv[1:]
d = pathlib.Path(d)
json.dump({"version": ver, "src": str(d / "src"), "data_dir": str(d / "data"), "python": str(d / "venv/bin/python"),
           "addons_path": "addons,odoo/addons", "template": db, "template_qc": qc or None,
           "qc_addons_path": extra or None, "api_key": key or None, "login": "admin", "password": "admin"},
          open(d / "peer.json.tmp", "w"), indent=1)
(d / "peer.json.tmp").rename(d / "peer.json")
EOF
}

build() {  # build VERSION SOURCE(tarball or tree)
    local ver="$1" source="$2" key dir started
    started=$(date +%s)
    if [ -f "$source" ]; then key=$(sha256sum "$source" | cut -c1-16)
    else key=$(cat "$source/odoo/release.py" "$source/requirements.txt" | sha256sum | cut -c1-16); fi
    dir="$CACHE/$ver-$key"
    if [ -f "$dir/peer.json" ]; then
        local tpl
        tpl=$(sed -n 's/^ *"template": "\(.*\)",$/\1/p' "$dir/peer.json")
        if [ -n "$(psql -tAc "select 1 from pg_database where datname='$tpl'" postgres)" ]; then
            echo "odoo $ver: cached in $dir"; return 0
        fi
        echo "odoo $ver: template database $tpl is gone, building again"
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    echo "odoo $ver: building in $dir (log: $dir/build.log)"
    if ! bash -euo pipefail -c 'steps "$@"' _ "$ver" "$source" "$dir" >"$dir/build.log" 2>&1; then
        echo "odoo $ver: FAILED after $(( $(date +%s) - started ))s, tail of $dir/build.log:"
        grep -v "^WARNING: Location" "$dir/build.log" | tail -30
        return 1
    fi
    echo "odoo $ver: built in $(( $(date +%s) - started ))s ($(grep -E '^(pip|template)' "$dir/build.log" | tr '\n' ' '))"
}

export -f steps build
export PEERS CACHE

sources=()
for ver in $VERSIONS; do
    src=$(ls -d "$PEERS"/odoo-"$ver"*.tar.xz 2>/dev/null | head -1 || true)
    [ -n "$src" ] || src=$(ls -d "$PEERS"/odoo-"$ver"*/ 2>/dev/null | head -1 || true)
    if [ -z "$src" ]; then echo "odoo $ver: nothing in $PEERS (odoo-$ver*.tar.xz or odoo-$ver*/)" >&2; exit 1; fi
    sources+=("$ver" "${src%/}")
done
printf '%s\n' "${sources[@]}" | xargs -n2 -P "$JOBS" bash -c 'build "$0" "$1"'
echo "odoo peers ($VERSIONS) ready in $(( $(date +%s) - t0 ))s"
