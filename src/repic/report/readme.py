"""Keep a markdown file's results section equal to a run's ``summary.md`` (``repic.report.summary``).

The section sits between ``SECTION_START`` and ``SECTION_END``, two HTML comments no viewer shows, once each;
everything outside it is left as written. A file without them is refused, never appended to::

    python -m repic.report.readme RESULTS_JSON README_MD
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import RepicError
from .results import read_results
from .summary import summary_markdown

SECTION_START = "<!-- results summary: start (python -m repic.report.readme RESULTS_JSON THIS_FILE) -->"
SECTION_END = "<!-- results summary: end -->"


def update_section(text: str, summary: str, where: str = "the file") -> str:
    """``text`` with everything between ``SECTION_START`` and ``SECTION_END`` replaced by ``summary``."""
    start, end = text.find(SECTION_START), text.find(SECTION_END)
    if start < 0 or end < start or text.count(SECTION_START) != 1 or text.count(SECTION_END) != 1:
        raise RepicError(
            f"{where} needs the lines {SECTION_START} and {SECTION_END}, once each and in that order, "
            "where the summary goes"
        )
    return text[: start + len(SECTION_START)] + "\n\n" + summary + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    """``python -m repic.report.readme RESULTS_JSON MARKDOWN``: rewrite MARKDOWN's results section."""
    parser = argparse.ArgumentParser(prog="python -m repic.report.readme", description=main.__doc__)
    parser.add_argument("results", help="a run's results.json (repic demo writes it into its report folder)")
    parser.add_argument("markdown", help="the markdown file whose summary section is rewritten")
    args = parser.parse_args(argv)
    try:
        path = Path(args.markdown)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RepicError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise RepicError(f"{path} is not UTF-8 text; pass the markdown file to update") from None
        updated = update_section(text, summary_markdown(read_results(args.results)), str(path))
        if updated != text:
            atomic_write_text(path, updated)
        print(f"{path}: summary section {'rewritten' if updated != text else 'already up to date'}")
    except RepicError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
