#!/bin/sh
# Run a stage script with a Python that can import midiml, so `dvc repro` / `dvc exp run`
# work whether or not the project's venv is activated:
#   1. `python` (or `python3`) on PATH when it has midiml: an activated venv, CI's .venv/bin
#      on PATH, or a user's own environment with the package installed;
#   2. otherwise the project's .venv/bin/python (made by `make setup`);
#   3. otherwise one line saying what to do, exit code 3.
has_midiml() {
    command -v "$1" >/dev/null 2>&1 &&
        "$1" -c 'import midiml.config' \
            2>/dev/null
}
for py in python python3 .venv/bin/python; do
    if has_midiml "$py"; then
        exec "$py" "$@"
    fi
done
echo "stage $1: no Python with midiml found (not on PATH, no .venv/bin/python); run \`make setup\` or activate the project's venv" >&2
exit 3
