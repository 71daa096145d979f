"""Score a team's prediction CSV against the hidden truth CSV with registry metrics (no Flask, no DB).

Both files are streamed through the csv module. Anything wrong with the team's file raises OutputError
with outcome "missing_output" or "bad_output", a precise English sentence (`detail`), the msgid and
params to translate it (`message`, `params`), the ids concerned (`ids`, first 20) and the line (`line`).
Anything wrong with the organiser's truth raises TruthError: that is not the team's fault.
"""
from __future__ import annotations

import csv
import math
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from challenges.scoring import metrics as metric_registry
from challenges.scoring.metrics import MetricError
from hub.errors import N_

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 64 * MiB
MAX_IDS = 20            # ids carried on an error
IDS_IN_TEXT = 5         # ids quoted in its sentence, to keep it short
_BOM = b"\xef\xbb\xbf"

MISSING_OUTPUT = "missing_output"
BAD_OUTPUT = "bad_output"


class ScoringError(Exception):
    """A file could not be scored; `detail` is the English sentence, `message` % `params` its msgid form."""

    def __init__(self, detail: str | None = None, *, message: str | None = None,
                 params: dict[str, Any] | None = None, ids: Sequence[str] | None = None,
                 line: int | None = None) -> None:
        self.params: dict[str, Any] = dict(params or {})
        self.message: str = message if message is not None else (detail or "")
        self.detail: str = detail if detail is not None else (
            self.message % self.params if self.params else self.message)
        self.ids: list[str] = list(ids or [])[:MAX_IDS]
        self.line: int | None = line
        super().__init__(self.detail)


class OutputError(ScoringError):
    """The team's output is missing ("missing_output") or malformed ("bad_output")."""

    def __init__(self, outcome: str, detail: str | None = None, **kwargs: Any) -> None:
        if outcome not in (MISSING_OUTPUT, BAD_OUTPUT):
            raise ValueError(f"unknown outcome {outcome!r}")
        self.outcome = outcome
        super().__init__(detail, **kwargs)


class TruthError(ScoringError):
    """The organiser's truth file cannot be used (the platform's side: never held against a team)."""

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        # the msgid stays translatable; the English sentence says whose file it is, for logs and operators
        self.detail = "Truth file: " + self.detail
        self.args = (self.detail,)


def _bad(message: str, params: dict[str, Any], ids: Sequence[str] | None = None,
         line: int | None = None) -> OutputError:
    return OutputError(BAD_OUTPUT, message=message, params=params, ids=ids, line=line)


def _show(value: str, limit: int = 40) -> str:
    """A value as quoted in a message: repr-quoted so blanks and odd characters stay visible, and capped."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _size(n: int) -> str:
    """A byte count as people read it: 512 B, 3.5 KiB, 64 MiB."""
    for unit, scale in (("GiB", 1024 ** 3), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} B"


def _show_ids(ids: Sequence[str]) -> str:
    return ", ".join(_show(i) for i in ids[:IDS_IN_TEXT])


# ---------------------------------------------------------------- reading
class _Reader:
    """Streams one CSV file: opens it safely, decodes each line as UTF-8 (BOM allowed), yields records."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int | None, truth: bool) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.truth = truth
        self.physical_line = 0

    def fail(self, message: str, outcome: str = BAD_OUTPUT, **kwargs: Any) -> ScoringError:
        if self.truth:
            return TruthError(message=message, **kwargs)
        return OutputError(outcome, message=message, **kwargs)

    def open(self) -> int:
        # The output folder belongs to the team: O_NOFOLLOW keeps a link in it from making the worker read
        # a host file (or the truth itself); O_NONBLOCK keeps a FIFO from hanging the worker on open.
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise self.fail(N_("The file %(name)s does not exist."), MISSING_OUTPUT,
                            params={"name": os.path.basename(self.path)}) from None
        except OSError as err:
            if os.path.islink(self.path):
                raise self.fail(N_("The file %(name)s is a symbolic link; write a regular file."),
                                params={"name": os.path.basename(self.path)}) from None
            raise self.fail(N_("The file %(name)s cannot be read (%(reason)s)."),
                            params={"name": os.path.basename(self.path), "reason": err.strerror or "error"}) \
                from None
        info = os.fstat(fd)
        name = os.path.basename(self.path)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise self.fail(N_("The file %(name)s is not a regular file."), params={"name": name})
        if info.st_size == 0:
            os.close(fd)
            raise self.fail(N_("The file %(name)s is empty."), MISSING_OUTPUT, params={"name": name})
        if self.max_bytes is not None and info.st_size > self.max_bytes:
            os.close(fd)
            raise self.fail(N_("The file %(name)s is %(size)s, over the limit of %(limit)s."),
                            params={"name": name, "size": _size(info.st_size), "limit": _size(self.max_bytes)})
        return fd

    def _lines(self, fd: int) -> Iterator[str]:
        limit = self.max_bytes
        read = 0
        with os.fdopen(fd, "rb") as fh:
            for raw in fh:
                self.physical_line += 1
                read += len(raw)
                if limit is not None and read > limit:      # it grew after the size check
                    raise self.fail(N_("The file grew past the limit of %(limit)s while it was read."),
                                    params={"limit": _size(limit)})
                if self.physical_line == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM):]
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise self.fail(N_("Line %(line)d is not valid UTF-8 (byte %(byte)s at position %(column)d)."),
                                    line=self.physical_line,
                                    params={"line": self.physical_line, "byte": f"0x{raw[err.start]:02x}",
                                            "column": err.start + 1}) from None

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """(first physical line, fields) for every non-blank record, the header first."""
        reader = csv.reader(self._lines(self.open()), strict=True)
        start = 1
        try:
            for record in reader:
                line, start = start, reader.line_num + 1
                if record and (len(record) > 1 or record[0].strip()):
                    yield line, record
        except csv.Error as err:
            raise self.fail(N_("Line %(line)d is not valid CSV (%(reason)s)."), line=start,
                            params={"line": start, "reason": str(err)}) from None


def _header(reader: _Reader, records: Iterator[tuple[int, list[str]]],
            columns: Sequence[str]) -> tuple[int, list[int]]:
    """Read the header; return its width and the index of each wanted column."""
    first = next(records, None)
    if first is None:
        raise reader.fail(N_("The file %(name)s has no content."), MISSING_OUTPUT,
                          params={"name": os.path.basename(reader.path)})
    line, names = first
    names = [n.strip() for n in names]
    found = []
    for column in columns:
        hits = [i for i, n in enumerate(names) if n == column]
        if not hits:
            raise reader.fail(N_("The header (line %(line)d) has no column %(column)s; it has %(found)s."), line=line,
                              params={"line": line, "column": _show(column),
                                      "found": ", ".join(_show(n) for n in names[:10])})
        if len(hits) > 1:
            raise reader.fail(N_("The header (line %(line)d) has the column %(column)s more than once."), line=line,
                              params={"line": line, "column": _show(column)})
        found.append(hits[0])
    return len(names), found


def _rows(reader: _Reader, records: Iterator[tuple[int, list[str]]], width: int) -> Iterator[tuple[int, list[str]]]:
    for line, record in records:
        if len(record) != width:
            raise reader.fail(N_("Line %(line)d has %(found)d fields; the header has %(expected)d."), line=line,
                              params={"line": line, "found": len(record), "expected": width})
        yield line, record


# ---------------------------------------------------------------- parsing values
def _number(reader: _Reader, raw: str, line: int) -> float:
    text = raw.strip()
    if not text:
        raise reader.fail(N_("Line %(line)d has no value where a number is expected."), line=line,
                          params={"line": line})
    try:
        value = float(text)
    except ValueError:
        raise reader.fail(N_("Line %(line)d: %(value)s is not a number."), line=line,
                          params={"line": line, "value": _show(text)}) from None
    if not math.isfinite(value):
        raise reader.fail(N_("Line %(line)d: %(value)s is not a finite number."), line=line,
                          params={"line": line, "value": _show(text)})
    return value


def _parse_prediction(kind: str) -> Callable[[_Reader, str, int], Any]:
    if kind == "label":
        return lambda _r, raw, _line: raw.strip()
    if kind == "number":
        return _number
    if kind == "probability":
        def probability(reader: _Reader, raw: str, line: int) -> float:
            value = _number(reader, raw, line)
            if not 0.0 <= value <= 1.0:
                raise reader.fail(N_("Line %(line)d: %(value)s is outside [0, 1]; a probability is expected."),
                                  line=line, params={"line": line, "value": _show(raw.strip())})
            return value
        return probability
    if kind == "ranking":
        return lambda _r, raw, _line: raw.split()
    raise ValueError(f"unknown metric kind {kind!r}")


def _parse_truth(kind: str) -> Callable[[_Reader, str, int], Any]:
    if kind == "probability":
        def binary(reader: _Reader, raw: str, line: int) -> int:
            value = _number(reader, raw, line)
            if value not in (0.0, 1.0):
                raise reader.fail(N_("Line %(line)d: %(value)s is not 0 or 1."), line=line,
                                  params={"line": line, "value": _show(raw.strip())})
            return int(value)
        return binary
    if kind == "ranking":
        return lambda _r, raw, _line: frozenset(raw.split())
    return _parse_prediction(kind)


# ---------------------------------------------------------------- scoring
def _read_truth(path: str | os.PathLike[str], id_column: str, truth_column: str,
                kinds: Sequence[str]) -> tuple[dict[str, int], dict[str, list[Any]]]:
    reader = _Reader(path, None, truth=True)
    records = reader.records()
    width, (id_at, value_at) = _header(reader, records, (id_column, truth_column))
    parsers = [(kind, _parse_truth(kind)) for kind in kinds]
    index: dict[str, int] = {}
    values: dict[str, list[Any]] = {kind: [] for kind in kinds}
    for line, record in _rows(reader, records, width):
        key = record[id_at].strip()
        if not key:
            raise reader.fail(N_("Line %(line)d has an empty id."), line=line, params={"line": line})
        if key in index:
            raise reader.fail(N_("Line %(line)d repeats the id %(id)s."), line=line, ids=[key],
                              params={"line": line, "id": _show(key)})
        index[key] = len(index)
        raw = record[value_at]
        for kind, parse in parsers:
            values[kind].append(parse(reader, raw, line))
    if not index:
        raise reader.fail(N_("The file %(name)s has a header but no rows."),
                          params={"name": os.path.basename(path)})
    return index, values


def check_truth(truth_path: str | os.PathLike[str], id_column: str, truth_column: str,
                metrics: list[str]) -> int:
    """Check a truth file as score_file will read it for these metrics (for upload time); return its row count.

    Raises TruthError with the line at fault, or for a truth the metric cannot use (e.g. AUC on one class).
    """
    chosen = [metric_registry.get(key) for key in metrics]
    kinds = list(dict.fromkeys(m.kind for m in chosen))
    index, values = _read_truth(truth_path, id_column, truth_column, kinds)
    as_prediction: dict[str, Callable[[Any], Any]] = {"probability": float, "ranking": sorted}
    for metric in chosen:
        truth = values[metric.kind]
        convert = as_prediction.get(metric.kind)
        try:
            metric.compute(truth, [convert(v) for v in truth] if convert else truth)
        except MetricError as err:
            raise TruthError(message=err.message, params=err.params) from None
    return len(index)


def score_file(pred_path: str | os.PathLike[str], truth_path: str | os.PathLike[str], id_column: str,
               prediction_column: str, metrics: list[str], max_bytes: int = DEFAULT_MAX_BYTES, *,
               truth_column: str | None = None) -> dict[str, float]:
    """Score the predictions CSV against the truth CSV; return {metric key: value} for every metric asked.

    The truth file carries `id_column` and `truth_column` (by default named like `prediction_column`).
    Raises OutputError for the team's file, TruthError for the organiser's, KeyError for an unknown metric.
    """
    if not metrics:
        raise ValueError("no metric to compute")
    chosen = [metric_registry.get(key) for key in metrics]
    kinds = list(dict.fromkeys(m.kind for m in chosen))
    truth_index, truth_values = _read_truth(truth_path, id_column, truth_column or prediction_column, kinds)

    reader = _Reader(pred_path, max_bytes, truth=False)
    records = reader.records()
    width, (id_at, value_at) = _header(reader, records, (id_column, prediction_column))
    parsers = [(kind, _parse_prediction(kind)) for kind in kinds]
    n = len(truth_index)
    predicted: dict[str, list[Any]] = {kind: [None] * n for kind in kinds}
    first_line: list[int] = [0] * n          # line of each truth id in the predictions, 0 = not yet seen
    duplicates: dict[str, list[int]] = {}    # id → every line it appears on (first MAX_IDS ids)
    duplicated: set[str] = set()
    unknown: dict[str, None] = {}            # ids not in the truth, in file order
    first_bad_line: int | None = None
    for line, record in _rows(reader, records, width):
        key = record[id_at].strip()
        if not key:
            raise _bad(N_("Line %(line)d has an empty id."), {"line": line}, line=line)
        raw = record[value_at]
        at = truth_index.get(key)
        if at is None:
            unknown[key] = None
            first_bad_line = first_bad_line or line
            for _kind, parse in parsers:
                parse(reader, raw, line)          # a bad value is still reported at its line
            continue
        if first_line[at]:
            duplicated.add(key)
            if key in duplicates:
                duplicates[key].append(line)
            elif len(duplicates) < MAX_IDS:
                duplicates[key] = [first_line[at], line]
            continue
        first_line[at] = line
        for kind, parse in parsers:
            predicted[kind][at] = parse(reader, raw, line)

    if duplicates:
        key, lines = next(iter(duplicates.items()))
        raise _bad(N_("Some ids appear more than once (%(count)d in all), e.g. %(id)s on lines %(lines)s."),
                   {"count": len(duplicated), "id": _show(key), "lines": ", ".join(str(n) for n in lines[:10])},
                   ids=list(duplicates), line=lines[1])
    if unknown:
        listed = list(unknown)[:MAX_IDS]
        raise _bad(N_("Some ids are not in the test set (%(count)d in all), first: %(ids)s."),
                   {"count": len(unknown), "ids": _show_ids(listed)}, ids=listed, line=first_bad_line)
    missing = [key for key, at in truth_index.items() if not first_line[at]]
    if missing:
        raise _bad(N_("Ids missing from the predictions: %(count)d of %(total)d, first: %(ids)s."),
                   {"count": len(missing), "total": n, "ids": _show_ids(missing)}, ids=missing[:MAX_IDS])

    scores: dict[str, float] = {}
    for metric in chosen:
        try:
            scores[metric.key] = float(metric.compute(truth_values[metric.kind], predicted[metric.kind]))
        except MetricError as err:
            # every prediction was checked above, so what is left is the truth's (e.g. AUC on one class)
            raise TruthError(message=err.message, params=err.params) from None
    return scores
