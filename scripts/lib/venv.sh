# Create .venv and install Dockyard into it with the pinned constraints, unless
# what is installed already matches pyproject.toml and constraints.txt.
# Usage: ensure_venv EXTRAS   (e.g. "" or "[test]")
ensure_venv() {
    local extras="$1"
    local stamp=".venv/.installed$extras"
    local want
    want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -c constraints.txt -e ".$extras"
        echo "$want" > "$stamp"
    fi
}
