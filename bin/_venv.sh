# Sourced by bin/leechcodec and bin/test: make sure .venv exists with the pinned dependencies (first run only).
# Usage: ensure_venv [EXTRAS]   e.g. ensure_venv test
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ensure_venv() {
    local extras="${1:-}" spec="$ROOT" hash
    [ -n "$extras" ] && spec="$ROOT[$extras]"
    # one stamp per pyproject.toml version and extras set; an install with extras also serves the plain one
    hash="$(sha256sum < "$ROOT/pyproject.toml" | cut -c1-16)"
    [ -f "$ROOT/.venv/.installed-$hash-$extras" ] && return 0
    [ -z "$extras" ] && compgen -G "$ROOT/.venv/.installed-$hash-*" > /dev/null && return 0
    echo "leechcodec: setting up $ROOT/.venv (first run only, about two minutes)..." >&2
    local py="${PYTHON:-python3}"
    [ -x "$ROOT/.venv/bin/python" ] || "$py" -m venv "$ROOT/.venv" >&2
    "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade pip >&2 || true
    "$ROOT/.venv/bin/python" -m pip install --quiet -e "$spec" >&2
    find "$ROOT/.venv" -maxdepth 1 -name ".installed-*" ! -name ".installed-$hash-*" -delete
    touch "$ROOT/.venv/.installed-$hash-$extras"
}
