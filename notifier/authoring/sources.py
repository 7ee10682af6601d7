"""From a line of the MJML a template produced back to the template file and line it came from.

Jinja does not keep a map from its output to its sources, so this matches
text: each source line becomes a pattern (its Jinja expressions and tags
wildcards), the produced line is compared with every source line, and a
tie between look-alike lines (``</mj-column>`` is everywhere) is settled by
how many of the lines before it also match, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from notifier import errors

SUFFIX = ".j2"
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}")
_CONTEXT = 12
"""How many earlier lines may break a tie; enough to get past a repeated block."""


@dataclass(frozen=True)
class _Line:
    pattern: re.Pattern[str]
    weight: int
    """How much literal text the line has: the more, the surer a match."""


def line_of(file: Path, pattern: str) -> int:
    """The 1-based line of ``file`` where ``pattern`` first matches, or 1 if it does not."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return 1
    match = re.search(pattern, text)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def template_files(templates_dir: Path) -> list[Path]:
    """Every template file (layout, kinds and partials), sorted."""
    return sorted(path for path in templates_dir.rglob(f"*{SUFFIX}") if path.is_file())


def trace(templates_dir: Path, first: Path, produced: str, line: int) -> tuple[Path, int] | None:
    """The template file and line that most likely wrote line ``line`` of ``produced``.

    ``first`` (the kind's own file) wins a tie. None when no source line
    with text of its own matches, e.g. when the line came wholly from the
    context.
    """
    output = [text.strip() for text in produced.splitlines()]
    if not 0 < line <= len(output):
        return None
    files = [first, *(path for path in template_files(templates_dir) if path != first)]
    best: tuple[int, int, int, int] | None = None
    found: tuple[Path, int] | None = None
    for rank, file in enumerate(files):
        lines = _compile(file)
        for index, source in enumerate(lines):
            # A line of only Jinja matches any output, so it cannot be the one to blame.
            if not source.weight or not source.pattern.fullmatch(output[line - 1]):
                continue
            score = _agreement(lines, index, output, line - 1)
            key = (score, source.weight, -rank, -index)
            if best is None or key > best:
                best, found = key, (file, index + 1)
    return found


def _agreement(lines: list[_Line], index: int, output: list[str], at: int) -> int:
    """The literal weight of the run of source lines ending at ``index`` that match the output."""
    score = 0
    for step in range(_CONTEXT):
        if index - step < 0 or at - step < 0:
            break
        source = lines[index - step]
        if not source.pattern.fullmatch(output[at - step]):
            break
        score += source.weight
    return score


def _compile(file: Path) -> list[_Line]:
    """Each line of ``file`` as a pattern that its rendered output matches."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    compiled = []
    for raw in text.splitlines():
        literals = _JINJA.split(raw.strip())
        pattern = ".*?".join(re.escape(literal) for literal in literals)
        compiled.append(
            _Line(re.compile(pattern, re.DOTALL), sum(len(part.strip()) for part in literals))
        )
    return compiled


def blame_undefined(error: errors.TemplateError, templates_dir: Path) -> tuple[Path, int] | None:
    """The template line that names the undefined variable behind ``error``, if it is one.

    Jinja raises where an undefined value is finally printed, which for a
    macro argument (``button(data.tracking_url, …)``) is inside the macro;
    the line to fix is the one that names the variable, further out.
    """
    cause = error.__cause__
    if cause is None or error.missing is None:
        return None
    last = re.split(r"[.\[]", error.missing)[-1]
    name = re.compile(rf"\b{re.escape(last)}\b")
    frames = []
    trace_back = cause.__traceback__
    while trace_back is not None:
        file = Path(trace_back.tb_frame.f_code.co_filename)
        if file.suffix == SUFFIX and file.is_relative_to(templates_dir):
            frames.append((file, trace_back.tb_lineno))
        trace_back = trace_back.tb_next
    for file, line in reversed(frames):
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        if 0 < line <= len(lines) and name.search(lines[line - 1]):
            return file, line
    return None
