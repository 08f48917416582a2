from __future__ import annotations

import sys

from bertcls.cli import main

sys.exit(main())
