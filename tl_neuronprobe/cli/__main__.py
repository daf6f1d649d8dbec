"""``python -m tl_neuronprobe.cli``: the same as the ``tl-neuronprobe`` command."""

import sys

from .main import main

sys.exit(main())
