"""What `modbench gate` needs besides timing: its inputs checked before anything runs,
the model list split one way, log groups that always close, and the GitHub outputs
written only from files this run made.

The gate compares a pull request's base and head: each side's models are imported
from its own checkout, the base's exported and saved as a baseline, then the head's
timed against the base's graphs alternately (`check --interleaved`). A model only
the head has is "new" (no baseline, never a failure), one only the base has is
"removed"."""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from modbench.common.errors import UsageError

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def split_models(text: str) -> tuple[str, ...]:
    """The model list of the gate: specs separated by a comma, a newline (a YAML block
    in a workflow) or both. An empty item, or two specs separated by spaces, is refused."""
    body = (text or "").strip()
    if not body:
        raise UsageError("no models: name at least one (e.g. --models mypkg.net:build)")
    items = [item.strip() for item in re.split(r",[ \t]*\r?\n|\r?\n|,", body)]
    if not all(items):
        raise UsageError(f"the model list {text!r} has an empty item (two separators in a row, or one at "
                         "the end): separate models with one comma or one newline")
    spaced = [item for item in items if re.search(r"\s", item)]
    if spaced:
        raise UsageError(f"model {spaced[0]!r} holds a space: separate models with commas or newlines")
    if len(set(items)) != len(items):
        raise UsageError(f"the model list {text!r} names a model twice")
    return tuple(items)


def parse_bool(text: str, what: str) -> bool:
    word = str(text).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise UsageError(f"{what} must be true or false, not {text!r}")


@dataclass(frozen=True)
class Sides:
    """The models each checkout resolved, and why the others did not."""
    base: dict[str, str | None]   # spec -> None if it resolved, else the one-line reason
    head: dict[str, str | None]

    @property
    def both(self) -> list[str]:
        return [m for m in self.head if self.head[m] is None and self.base.get(m, "") is None]

    @property
    def new(self) -> list[str]:
        return [m for m in self.head if self.head[m] is None and self.base.get(m) is not None]

    @property
    def removed(self) -> list[str]:
        return [m for m in self.base if self.base[m] is None and self.head.get(m) is not None]

    @property
    def broken(self) -> list[tuple[str, str]]:
        """Models neither side can build: bad input, with the head's reason."""
        return [(m, self.head[m]) for m in self.head if self.head[m] is not None and self.base.get(m) is not None]


@contextlib.contextmanager
def log_group(title: str):
    """A collapsible group in a GitHub Actions log (a heading elsewhere), closed
    whatever happens inside it."""
    github = os.environ.get("GITHUB_ACTIONS") == "true"
    print(f"::group::{title}" if github else f"== {title}", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        if github:
            print("::endgroup::", file=sys.stderr, flush=True)


def git_label(checkout: Path) -> str:
    """A checkout as a reader of the summary knows it: its short commit, else its folder name."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"commit {sha}" if sha else Path(checkout).name


def shown_path(path: Path, *roots: Path) -> str:
    """`path` relative to the first root it lies under (the repository, the work
    folder): a summary never shows a runner's absolute paths."""
    path = Path(path).resolve()
    for root in roots:
        try:
            return path.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            continue
    return path.name


def write_github_outputs(values: dict[str, str], summary_text: str | None) -> None:
    """Append to GITHUB_OUTPUT and GITHUB_STEP_SUMMARY when the runner set them: only
    ever values of files this run wrote."""
    out = os.environ.get("GITHUB_OUTPUT")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.writelines(f"{k}={v}\n" for k, v in values.items())
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step and summary_text:
        with open(step, "a", encoding="utf-8") as f:
            f.write(summary_text)
