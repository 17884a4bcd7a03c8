# Sourced by bin/leechcodec and bin/test: make sure .venv exists with the pinned dependencies (first run only).
# Usage: ensure_venv [EXTRAS]   e.g. ensure_venv test
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ensure_venv() {
    local extras="${1:-}" spec="$ROOT" stamp
    [ -n "$extras" ] && spec="$ROOT[$extras]"
    stamp="$ROOT/.venv/.installed-$( (cat "$ROOT/pyproject.toml"; echo "$extras") | sha256sum | cut -c1-16)"
    [ -f "$stamp" ] && return 0
    echo "leechcodec: setting up $ROOT/.venv (first run only, about two minutes)..." >&2
    local py="${PYTHON:-python3}"
    [ -x "$ROOT/.venv/bin/python" ] || "$py" -m venv "$ROOT/.venv" >&2
    "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade pip >&2 || true
    "$ROOT/.venv/bin/python" -m pip install --quiet -e "$spec" >&2
    rm -f "$ROOT"/.venv/.installed-*
    touch "$stamp"
}
