"""Which process this is under ``torchrun`` / ``accelerate launch``, read from the launcher's variables.

Kept apart from the trainers on purpose: it imports nothing, so the command line can ask it at any moment,
even after a Ctrl-C that cut an import of torch or transformers short (importing them again then fails).
"""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """Rank 0 of a torchrun / accelerate launch, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0
