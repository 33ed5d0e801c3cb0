"""``python -m repic.cli``: the same entry point as the ``repic`` command (for launchers such as accelerate)."""

from . import main

main()
