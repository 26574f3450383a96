#!/usr/bin/env bash
# Creates bench/quality/.venv with Crowd-Kit and its pinned scikit-learn, apart from the product venv:
# crowd-kit needs scikit-learn<1.8 while Kyodo pins 1.9. Kyodo's aggregation package is pure numpy,
# so run.py imports it from the repository root without installing the product here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$here/.venv/bin/python" ]; then
  "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
"$here/.venv/bin/python" -c "import crowdkit, sklearn, pandas, numpy; print('crowd-kit ready:', 'sklearn', sklearn.__version__, 'pandas', pandas.__version__, 'numpy', numpy.__version__)"
