"""Entry point: ``python -m tools.rehearse [flags]`` from the repository root."""

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
for _p in (_REPO, _REPO / "lambda"):  # mwaa_common lives in the Lambda asset root
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tools.rehearse.cli import main  # noqa: E402

sys.exit(main())
