"""The one rule every figure follows: draw with matplotlib's pyplot, never change a notebook's backend.

Figures are written to files or returned to the caller. Without a display (no ``DISPLAY`` on Linux, a headless
CI run) pyplot would pick an interactive backend that fails, so the first figure switches to ``Agg`` then; a
notebook or a user's own choice of backend is left as it is.
"""

from __future__ import annotations

import os
import sys


def pyplot():
    """``matplotlib.pyplot``, with the ``Agg`` backend when no display is available."""
    import matplotlib

    headless = sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and \
        not os.environ.get("WAYLAND_DISPLAY")
    if headless and "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` (tight layout) and close it, so long runs do not accumulate figures."""
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
