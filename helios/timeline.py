"""The prompt timeline: which prompt is in effect for each segment, and how consecutive prompts cross-fade.

A segment's conditioning is a weighted mix of prompts. When the prompt changes at segment k with a crossfade of
c segments, segment k+j takes weight min(1, (j+1)/(c+1)) of the new prompt and the rest of the mix that was in
effect at segment k-1, so overlapping changes blend smoothly instead of jumping. LoRA strengths ride on the same rows
and fade by the same weights: a row's strengths are the row before's with its own `lora` values changed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BadInput
from .limits import FPS, FRAMES_PER_SEGMENT
from .lora.file import check_strength

UNITS = ("segment", "second")
LORA_COLUMN = "lora:"
Mix = tuple[tuple[str, float], ...]
"""A segment's prompts with their weights, summing to 1."""
Strengths = tuple[tuple[str, float], ...]
"""LoRA adapters by name with their strengths."""


@dataclass(frozen=True)
class TimelineEntry:
    start: float
    prompt: str
    unit: str = "segment"
    crossfade: int | None = None
    """This change's own crossfade (a live steer's), or None: the timeline's."""
    lora: Strengths = ()
    """The adapters whose strength this row changes; the others keep the row before's (before an adapter's first
    row: 0, or its file's strength where no row names it)."""

    @property
    def segment(self) -> int:
        """Seconds snap to the nearest segment boundary: the prompt can only change there."""
        if self.unit == "second":
            return int(math.floor(self.start * FPS / FRAMES_PER_SEGMENT + 0.5))
        return int(self.start)


@dataclass(frozen=True)
class PromptTimeline:
    entries: tuple[TimelineEntry, ...]
    crossfade: int = 2
    _mix_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @classmethod
    def single(cls, prompt: str) -> "PromptTimeline":
        return cls((TimelineEntry(0, prompt),))

    @property
    def covering_segments(self) -> int:
        """The shortest video that shows every entry fully faded in: up to its last entry and the crossfade after it."""
        last = max(self.entries, key=lambda e: e.segment, default=None)
        if last is None:
            return self.crossfade + 1
        return last.segment + (self.crossfade if last.crossfade is None else last.crossfade) + 1

    @property
    def last_segment(self) -> int:
        return max((e.segment for e in self.entries), default=0)

    def changed_at(self, segment: int, prompt: str, crossfade: int | None = None, lora: Strengths = ()
                   ) -> PromptTimeline:
        """This timeline with its prompt (and strengths) changed at `segment` (a live steer): the rows before it kept,
        any from it on replaced."""
        kept = tuple(e for e in self.entries if e.segment < segment)
        return PromptTimeline((*kept, TimelineEntry(segment, prompt, "segment", crossfade, lora)), self.crossfade)

    @property
    def adapters(self) -> tuple[str, ...]:
        """The LoRA adapters the rows name."""
        return tuple(dict.fromkeys(name for e in self.entries for name, _ in e.lora))

    @property
    def prompts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.prompt for e in self.entries))

    def check(self, total_segments: int | None = None) -> None:
        """Raise BadInput naming the first problem; `total_segments` also bounds the starts."""
        if not self.entries:
            raise BadInput("The prompt timeline is empty: add at least one prompt.")
        for crossfade in (self.crossfade, *(e.crossfade for e in self.entries if e.crossfade is not None)):
            if isinstance(crossfade, bool) or not isinstance(crossfade, int) or crossfade < 0:
                raise BadInput(f"Crossfade must be a whole number of segments, 0 or more (got {crossfade!r}).")
        previous = -1
        for n, entry in enumerate(self.entries, 1):
            if entry.unit not in UNITS:
                raise BadInput(f"Timeline row {n}: unit must be 'segment' or 'second', not {entry.unit!r}.")
            if not isinstance(entry.prompt, str) or not entry.prompt.strip():
                raise BadInput(f"Timeline row {n} has an empty prompt: write what the video should show.")
            if (
                not isinstance(entry.start, (int, float)) or isinstance(entry.start, bool)
                or not math.isfinite(entry.start) or entry.start < 0
            ):
                raise BadInput(f"Timeline row {n}: start must be a number, 0 or more (got {entry.start!r}).")
            if entry.unit == "segment" and entry.start != int(entry.start):
                raise BadInput(f"Timeline row {n}: a start in segments must be a whole number (got {entry.start}).")
            for name, strength in entry.lora:
                check_strength(strength, f"Timeline row {n}, LoRA {name}")
            if n == 1 and entry.segment != 0:
                raise BadInput("The timeline must start at 0: the first prompt sets the opening of the video.")
            if n > 1 and entry.segment <= previous:
                raise BadInput(
                    f"Timeline row {n} starts at segment {entry.segment}, not after row {n - 1} "
                    f"(segment {previous}): order rows by start, at most one change per segment."
                )
            if total_segments is not None and entry.segment >= total_segments:
                raise BadInput(
                    f"Timeline row {n} starts at segment {entry.segment}, but the video has only {total_segments} "
                    f"segments ({total_segments * FRAMES_PER_SEGMENT} frames): make the video longer or start earlier."
                )
            previous = entry.segment

    def mix(self, segment: int) -> Mix:
        """The prompts in effect at `segment` with their weights (summing to 1), heaviest first."""
        if segment not in self._mix_cache:
            weights = self._weights(segment)
            ordered = sorted(((p, w) for p, w in weights.items() if w > 0), key=lambda pw: -pw[1])
            self._mix_cache[segment] = tuple(ordered)
        return self._mix_cache[segment]

    def strengths(self, segment: int) -> dict[str, float]:
        """The strength of each adapter the rows name at `segment`: each row's, weighted as its prompt is."""
        if ("lora", segment) not in self._mix_cache:
            rows, held = [], {}
            for entry in self.entries:
                held = {**held, **dict(entry.lora)}
                rows.append(held)
            weights = self._weights(segment, key=lambda i, _: i)
            self._mix_cache["lora", segment] = {
                name: sum(w * rows[i].get(name, 0.0) for i, w in weights.items()) for name in self.adapters
            }
        return self._mix_cache["lora", segment]

    def _weights(self, segment: int, key=lambda _, entry: entry.prompt) -> dict:
        """Weights by `key(row index, row)`: by prompt for the mix, by row for strengths."""
        current = [i for i, e in enumerate(self.entries) if e.segment <= segment]
        i = current[-1] if current else 0
        entry = self.entries[i]
        if entry.segment == 0 or segment < 0:
            return {key(i, entry): 1.0}
        crossfade = self.crossfade if entry.crossfade is None else entry.crossfade
        w = min(1.0, (segment - entry.segment + 1) / (crossfade + 1))
        before = self._weights(entry.segment - 1, key)
        blended = {p: v * (1 - w) for p, v in before.items()}
        blended[key(i, entry)] = blended.get(key(i, entry), 0.0) + w
        return blended

    def to_json(self) -> str:
        rows = [{"start": e.start, "unit": e.unit, "prompt": e.prompt,
                 **({} if e.crossfade is None else {"crossfade": e.crossfade}),
                 **({"lora": dict(e.lora)} if e.lora else {})} for e in self.entries]
        return json.dumps({"crossfade": self.crossfade, "entries": rows}, indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "PromptTimeline":
        try:
            data = json.loads(text)
            rows = data["entries"] if isinstance(data, dict) else data
            crossfade = data.get("crossfade", 2) if isinstance(data, dict) else 2
            entries = tuple(
                TimelineEntry(row["start"], row["prompt"], row.get("unit", "segment"), row.get("crossfade"),
                              tuple(dict(row.get("lora") or {}).items()))
                for row in rows
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadInput(
                'The timeline JSON is malformed: expected {"crossfade": N, "entries": [{"start": 0, "prompt": "...", '
                f'"lora": {{"NAME": 0.8}}}}]}} with "lora" optional ({type(exc).__name__}: {exc}).'
            ) from None
        timeline = cls(entries, crossfade)
        timeline.check()
        return timeline

    def to_csv(self) -> str:
        """The official interactive format: one video id, prompt_index = the segment the prompt starts at; a column
        `lora:NAME` per adapter (empty: the row before's strength)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "prompt_index", "prompt", *(f"{LORA_COLUMN}{name}" for name in self.adapters)])
        for e in self.entries:
            writer.writerow([0, e.segment, e.prompt, *(dict(e.lora).get(name, "") for name in self.adapters)])
        return out.getvalue()

    @classmethod
    def from_csv(cls, text: str, crossfade: int = 2) -> "PromptTimeline":
        try:
            rows = list(csv.DictReader(io.StringIO(text.strip())))
            if not rows or not {"id", "prompt_index", "prompt"} <= set(rows[0]):
                raise KeyError("header must be id,prompt_index,prompt")
            ids = {row["id"] for row in rows}
            entries = tuple(
                TimelineEntry(int(row["prompt_index"]), row["prompt"] or "", lora=tuple(
                    (column[len(LORA_COLUMN):], float(value)) for column, value in row.items()
                    if column and column.startswith(LORA_COLUMN) and (value or "").strip()))
                for row in sorted(rows, key=lambda r: int(r["prompt_index"]))
            )
        except (ValueError, KeyError, TypeError, csv.Error) as exc:
            raise BadInput(
                f"The timeline CSV is malformed: expected the header id,prompt_index,prompt and whole-number "
                f"prompt indices ({exc})."
            ) from None
        if len(ids) > 1:
            raise BadInput(f"The timeline CSV holds {len(ids)} video ids: keep the rows of one video per file.")
        timeline = cls(entries, crossfade)
        timeline.check()
        return timeline


def read_timeline(path: str | Path) -> PromptTimeline:
    """A timeline file, .json or the official .csv: the one reader for the CLI and the app."""
    path = Path(path)
    if path.suffix.lower() not in (".json", ".csv"):
        raise BadInput(f"Timeline {path.name} must be a .json or .csv file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path.name} is not a text file: give a timeline .json or .csv.") from None
    except OSError:
        raise BadInput(f"Cannot read the timeline file {path}: check the path.") from None
    return PromptTimeline.from_csv(text) if path.suffix.lower() == ".csv" else PromptTimeline.from_json(text)
