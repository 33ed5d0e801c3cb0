"""Silence the libraries' own progress bars and notices: repic's commands print their own progress lines, and
per-file bars or deprecation notices from datasets / transformers / peft would interleave with them."""

from __future__ import annotations

import warnings


def quiet_libraries() -> None:
    """Turn off datasets' and transformers' progress bars, transformers' info logs and FutureWarnings."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
