"""The console every command prints through, and ``say``: one line of plain text, never read as markup."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

console = Console(highlight=False)


def say(text: str, style: str = "") -> None:
    """Print ``text`` as is (paths and names such as ``[x1, y1]`` are not rich markup), soft-wrapped."""
    console.print(Text(text, style=style), soft_wrap=True)
