"""A small reader of Dockerfiles and .dockerignore, enough for the checks in test_images.py,
test_skaffold.py and test_docs.py: stages with their instructions (continuations joined, comments
dropped), the global ARG defaults, and Docker's rules for what the build context leaves out."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        (found,) = [s for s in self.stages if s.name == name]
        return found

    def chain(self, stage: Stage) -> list[Stage]:
        """The stage and every stage it is built FROM, base first."""
        names = {s.name for s in self.stages}
        if stage.base in names:
            return [*self.chain(self.stage(stage.base)), stage]
        return [stage]

    def base_image(self, stage: Stage) -> str:
        return re.sub(
            r"\$\{?(\w+)\}?", lambda m: self.global_args.get(m.group(1), m.group(0)), stage.base
        )


@cache
def parse(path: Path) -> Dockerfile:
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name=name, base=words[0]))
        elif not stages and keyword == "ARG":
            key, _, default = rest.partition("=")
            global_args[key.strip()] = default.strip()
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return Dockerfile(path, global_args, stages)


def final_instructions(dockerfile: Dockerfile) -> list[tuple[str, str]]:
    """What the default target (the last stage) is made of, through the stages it is FROM."""
    chain = dockerfile.chain(dockerfile.stages[-1])
    return [i for stage in chain for i in stage.instructions]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out = out[:-2] + "(.*/)?"
                i += 1
            continue
        char = pattern[i]
        out += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        i += 1
    return re.compile(out)


@cache
def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip().lstrip("/"))
        rules.append((exception, _pattern_regex(pattern)))
    return rules


def ignored(relative: str) -> bool:
    """Whether the build context leaves `relative` out (Docker's rules: last match wins, and a
    path is out when it or any folder above it matches)."""
    parts = Path(relative).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for exception, regex in dockerignore():
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not exception
    return excluded
