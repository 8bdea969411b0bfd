from __future__ import annotations

import os
import sys

# Tests run the project's own console script from the venv the setup created.
VENV_BIN = os.path.dirname(sys.executable)
os.environ["PATH"] = VENV_BIN + os.pathsep + os.environ.get("PATH", "")
