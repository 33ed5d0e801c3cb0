"""The consoles every command prints through (``console``, stdout; ``err_console``, stderr for warnings
and progress bars), and ``say``: one line of plain text, never read as markup."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def say(text: str, style: str = "") -> None:
    """Print ``text`` as is (paths and names such as ``[x1, y1]`` are not rich markup), soft-wrapped."""
    console.print(Text(text, style=style), soft_wrap=True)
