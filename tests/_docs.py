"""Reading README.md and docs/*.md for tests/test_docs.py: the commands they show, the output shown under
them, their Python and TOML blocks; and running a shown command in a workspace folder as a user would.

What counts as a command:
- in a ```console block, every line starting with `$ ` (the lines up to the next `$ ` are its shown output);
- in a ```bash block, a block with no language and an indented (4-space) block, every line starting with
  `samplecnn`, `torchrun`, `make`, `python` or `.venv/bin/`;
- an inline code span starting with `samplecnn ` that has an argument and no ellipsis (`samplecnn tag`
  names a command, `samplecnn preprocess …` is an excerpt; `samplecnn tag RUN ~/Music` is a command).
A command's key is its text without a trailing `# comment`, whitespace collapsed.
"""

from __future__ import annotations

import contextlib
import glob
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PROGRAMS = ("samplecnn", "torchrun", "make", "python")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INDENTED = re.compile(r"(?:^\n)((?:^    \S.*\n)+)", re.M)
INLINE = re.compile(r"`(samplecnn [^`]+)`")
BOX = re.compile(r"[│┃┏┓┗┛┡┩┢┪╇╈┳┻┣┫╋━─┬┴┼├┤┌┐└┘╭╮╯╰]")


@dataclass
class DocCommand:
    key: str
    doc: str  # README.md or docs/x.md
    line: int
    shown: list[str] = field(default_factory=list)  # output shown under it (console blocks)


@dataclass
class Block:
    doc: str
    line: int
    lang: str
    text: str


def is_command(line: str) -> bool:
    words = line.split()
    return bool(words) and (words[0] in PROGRAMS or words[0].startswith(".venv/bin/"))


def command_key(text: str) -> str:
    text = re.sub(r"\s+#\s.*$", "", text.strip())
    return " ".join(text.split())


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


def doc_commands() -> list[DocCommand]:
    """Every command of the docs in reading order (README first), once per key (its first place)."""
    found: dict[str, DocCommand] = {}
    for path in DOCS:
        text = path.read_text()
        for command in _fenced_commands(path, text) + _indented_commands(path, text) + _inline_commands(path, text):
            found.setdefault(command.key, command)
    return sorted(found.values(), key=lambda c: (DOCS.index(REPO / c.doc), c.line))


def _fenced_commands(path: Path, text: str) -> list[DocCommand]:
    commands = []
    for match in FENCE.finditer(text):
        lang, body, start = match.group(1), match.group(2), _line_of(text, match.start()) + 1
        current = None
        for number, line in enumerate(body.splitlines(), start):
            if lang == "console" and line.startswith("$ "):
                current = DocCommand(command_key(line[2:]), _name(path), number)
                commands.append(current)
            elif lang == "console" and current is not None:
                current.shown.append(line)
            elif lang in ("bash", "") and is_command(line):
                commands.append(DocCommand(command_key(line), _name(path), number))
    return commands


def _indented_commands(path: Path, text: str) -> list[DocCommand]:
    fenced = [(m.start(), m.end()) for m in FENCE.finditer(text)]
    commands = []
    for match in INDENTED.finditer(text):
        if any(a <= match.start(1) < b for a, b in fenced):
            continue
        for number, line in enumerate(match.group(1).splitlines(), _line_of(text, match.start(1))):
            if is_command(line):
                commands.append(DocCommand(command_key(line), _name(path), number))
    return commands


def _inline_commands(path: Path, text: str) -> list[DocCommand]:
    commands = []
    for match in INLINE.finditer(text):
        span = " ".join(match.group(1).split())
        if len(span.split()) < 3 or "…" in span or "..." in span:
            continue
        commands.append(DocCommand(command_key(span), _name(path), _line_of(text, match.start())))
    return commands


def blocks(lang: str) -> list[Block]:
    """Every fenced block of `lang` in the docs."""
    return [Block(_name(path), _line_of(path.read_text(), m.start()), lang, m.group(2))
            for path in DOCS for m in FENCE.finditer(path.read_text()) if m.group(1) == lang]


def squash(line: str) -> str:
    """A table line without box drawing and with single spaces: shown and printed tables compare."""
    return " ".join(BOX.sub(" ", line).split())


def shown_lines_appear(shown: list[str], output: str) -> list[str]:
    """The shown lines (but `...`) that do not appear, in order, among the output's lines."""
    printed = [squash(line) for line in output.splitlines()]
    missing, at = [], 0
    for line in (squash(s) for s in shown):
        if not line or line == "...":
            continue
        try:
            at = printed.index(line, at) + 1
        except ValueError:
            missing.append(line)
    return missing


def patterns_in_order(patterns: tuple[str, ...], output: str) -> list[str]:
    """The regexes that match no output line after the previous one's match (lines are matched without
    box drawing and trailing spaces: a table cell is `\\s+`-separated text)."""
    lines, missing, at = [BOX.sub(" ", line).rstrip() for line in output.splitlines()], [], 0
    for pattern in patterns:
        hit = next((i for i in range(at, len(lines)) if re.search(pattern, lines[i])), None)
        if hit is None:
            missing.append(pattern)
        else:
            at = hit + 1
    return missing


def shell_args(command: str, cwd: Path) -> list[str]:
    """The arguments a POSIX shell would pass (quotes removed, `*` expanded in `cwd`), program dropped."""
    args = []
    for arg in shlex.split(command)[1:]:
        with contextlib.chdir(cwd):
            matches = sorted(glob.glob(arg)) if "*" in arg else []
        args += matches or [arg]
    return args
