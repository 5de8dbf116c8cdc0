"""The pipeline tests import their shared helpers (pipeline_fixtures, pipeline_validation)
from this folder. Plain pytest puts it on sys.path by itself (rootdir-less "prepend"
import mode); `ansible-test units` imports test modules another way, so say it here."""
from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
