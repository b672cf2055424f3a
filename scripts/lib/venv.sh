# Create .venv and install Dockyard into it with the pinned constraints, unless
# what is installed already matches pyproject.toml and constraints.txt.
# Usage (sourced, from the repository root): ensure_venv EXTRAS   ("" or "[test]")
ensure_venv() {
    local extras="$1"
    local stamp=".venv/.installed$extras"
    local want
    want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
    if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
        ensure_python_venv
        python3 -m venv --clear .venv
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        .venv/bin/python -m pip install --quiet --disable-pip-version-check \
            -c constraints.txt -e ".$extras"
        echo "$want" > "$stamp"
    fi
}

# Debian's python3 creates virtual environments only with python3-venv.
ensure_python_venv() {
    if command -v python3 >/dev/null && python3 -c 'import ensurepip' 2>/dev/null; then
        return
    fi
    echo "installing Debian packages: python3 python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends python3 python3-venv >/dev/null
}
