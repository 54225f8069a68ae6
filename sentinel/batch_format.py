"""The batch contract: how the bytes of a dropped CSV become rows to learn, rows set aside, or a refusal
that says what to fix. Pure functions of the bytes and the intake policy; intake does the file work."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

import pandas as pd

from sentinel.settings import IntakePolicy

BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
# A cell that begins with one of these is run by a spreadsheet as a formula (OWASP's CSV injection
# list). Reviews begin with them all the time ("- great cast", "=) loved it"), so intake keeps them as
# text, and every CSV Sentinel writes neutralises them (`spreadsheet_safe`).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The names a review or a label column plausibly goes by. Used only when the file has no `text` (or
# `label`) column and exactly one of these: a guess between two candidates is refused with the setting.
TEXT_ALIASES = ("text", "review", "review_text", "reviewtext", "sentence", "content", "body", "comment")
LABEL_ALIASES = ("label", "sentiment", "polarity", "class", "target")
SHOWN = 10  # how many offending rows a reason lists
NAME_THE_COLUMNS = "the first line must name the columns, e.g. `text,label`"
MAX_HEADER_CHARS = 10_000  # far beyond any real header, far below the csv module's field limit


@dataclass(frozen=True)
class Problem:
    """Why a file was refused: what is wrong, where, and what to do about it."""

    message: str
    fix: str
    column: str | None = None
    rows: list[int] = field(default_factory=list)  # 1 = the first data row after the header
    values: list[str] = field(default_factory=list)


class RejectedFile(Exception):
    """A file intake refuses whole, with the problem a person can act on."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def rejected(message: str, fix: str, **where) -> RejectedFile:
    """The refusal of a file: what is wrong, what to do, and where (`column`, `rows`, `values`)."""
    return RejectedFile(Problem(message, fix, **where))


@dataclass(frozen=True)
class ParsedBatch:
    """A batch file read: the rows to learn, and the rows set aside with their line and reason."""

    frame: pd.DataFrame
    set_aside: pd.DataFrame


def shown(value: str, limit: int = 80) -> str:
    """A value from a file, safe to put in a reason a person reads in a terminal: control characters
    (escape sequences could rewrite the operator's screen) are written as escapes, and it is shortened."""
    value = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _rows(mask: pd.Series) -> list[int]:
    return [int(i) + 1 for i in mask[mask].index[:SHOWN]]


def read_batch(raw: bytes, policy: IntakePolicy) -> ParsedBatch:
    """Validate a batch file's bytes: the rows to learn (`label` as 0/1, a `source` each) and the rows set
    aside, each with its line in the file and its reason. Raises RejectedFile for a fault of the whole file."""
    if not raw.strip():
        raise rejected("the file is empty", "export the batch again with a header `text,label`")
    for bom, encoding in BOMS:
        if raw.startswith(bom):
            raise rejected(f"the file is {encoding}, not UTF-8", "re-save the file with UTF-8 encoding")
    if b"\x00" in raw:  # anywhere: a NUL deep in the file would otherwise end up inside a review
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise rejected(f"the file is binary (a NUL byte at line {line}), not a CSV", "save the batch as a UTF-8 CSV")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise rejected(
            f"the file is not UTF-8: byte 0x{raw[error.start]:02x} at line {line} cannot be decoded",
            "re-save the file with UTF-8 encoding",
            values=[shown(raw[max(0, error.start - 20) : error.start + 20].decode("utf-8", "replace"))],
        ) from None
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise rejected("the file has no header", NAME_THE_COLUMNS) from None
    except (pd.errors.ParserError, csv.Error) as error:
        raise rejected(f"the CSV cannot be parsed: {str(error).strip()}", "check quoting and the number of commas on that line") from None

    first_line = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
    if len(first_line) > MAX_HEADER_CHARS:
        raise rejected(
            f"the first line is {len(first_line):,} characters long; it cannot be a header",
            NAME_THE_COLUMNS,
        )
    header = [c.strip().lower() for c in next(csv.reader(io.StringIO(first_line)), [])]
    if len(set(header)) != len(header):
        twice = sorted({c for c in header if header.count(c) > 1})
        raise rejected(f"the header names column(s) {', '.join(twice)} twice", "give every column a distinct name", column=twice[0])
    columns = [str(c).strip().lower() for c in frame.columns]
    frame.columns = columns
    text_column = _pick_column(columns, policy.text_column, TEXT_ALIASES, "text")
    label_column = _pick_column(columns, policy.label_column, LABEL_ALIASES, "label")
    if frame.empty:
        raise rejected("the file has a header but no rows", "add labeled reviews below the header")
    frame = frame.rename(columns={c: f"{c}_original" for c in ("text", "label") if c in columns and c not in (text_column, label_column)})
    frame = frame.rename(columns={text_column: "text", label_column: "label"})

    known = {k.strip().lower(): v for k, v in policy.label_values.items()}
    labels = frame["label"].str.strip().str.lower().map(known)
    problems = {
        "empty text": frame["text"].str.strip() == "",
        "unknown label": labels.isna(),
        "too long": frame["text"].str.len() > policy.max_text_chars,
    }
    bad = problems["empty text"] | problems["unknown label"] | problems["too long"]
    if bad.any() and bad.mean() > policy.max_bad_row_share:
        raise _too_many_bad_rows(frame, problems, bad, policy, known, text_column, label_column)
    lines = _record_lines(text, len(frame)) if bad.any() else None
    set_aside = frame[bad].copy()
    set_aside.insert(0, "reason", [_row_reason(problems, i, policy) for i in set_aside.index])
    set_aside.insert(0, "line", [lines[i] if lines else None for i in set_aside.index])
    frame = frame[~bad]
    labels = labels[~bad]
    minority = min(labels.mean(), 1 - labels.mean())
    if minority < policy.min_class_share:
        only = "positive" if labels.mean() > 0.5 else "negative"
        raise rejected(
            f"the batch is one-class: {100 * (1 - minority):.1f}% of rows are {only}",
            f"include both labels; each must be at least {100 * policy.min_class_share:.0f}% of the rows",
            column="label",
        )
    frame = frame.assign(label=labels.astype("int8"))
    if "source" in frame.columns:
        frame["source"] = frame["source"].str.strip().replace("", policy.default_source)
    else:
        frame["source"] = policy.default_source
    keep = ["text", "label", "source"] + [c for c in frame.columns if c not in ("text", "label", "source")]
    return ParsedBatch(frame[keep].reset_index(drop=True), set_aside.reset_index(drop=True))


def parse_batch(raw: bytes, policy: IntakePolicy) -> pd.DataFrame:
    """The rows of a batch file that can be learned (see `read_batch`). Raises RejectedFile."""
    return read_batch(raw, policy).frame


def _pick_column(columns: list[str], setting: str, aliases: tuple[str, ...], role: str) -> str:
    """The file's column that plays `role` (text or label): the one the setting names, else `role`
    itself, else the only alias present. Anything else is refused with the setting that resolves it."""
    variable = f"SENTINEL_INTAKE__{role.upper()}_COLUMN"
    if setting:
        if setting.strip().lower() in columns:
            return setting.strip().lower()
        raise rejected(
            f"the column {setting!r} that intake.{role}_column names is not in the header; found {', '.join(columns)}",
            f"set intake.{role}_column ({variable}) to one of the columns, or rename the column",
            column=setting,
        )
    present = [a for a in aliases if a in columns]
    if role in present:
        return role
    if len(present) == 1:
        return present[0]
    if len(present) > 1:
        raise rejected(
            f"no `{role}` column, and several that could be it: {', '.join(present)}",
            f"set intake.{role}_column ({variable}) to the one to use",
            column=role,
        )
    header = ",".join(columns)
    for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
        if len(columns) == 1 and delimiter in header:
            raise rejected(f"the columns are separated by {name}, not commas", "save the file as comma-separated", values=[shown(header)])
    raise rejected(
        f"missing required column(s) {role}; found {', '.join(columns) or 'none'}",
        f"name the column `{role}` in the header, or set intake.{role}_column ({variable}) to the name your file uses",
        column=role,
    )


def _record_lines(text: str, expected: int) -> list[int] | None:
    """The line of the file on which each data row starts (a quoted review may span lines), or None when
    the csv module reads the rows differently from pandas, and rows are then counted instead."""
    reader = csv.reader(io.StringIO(text))
    starts = []
    try:
        next(reader, None)
        line = reader.line_num + 1
        for record in reader:
            if record:  # pandas skips blank lines too
                starts.append(line)
            line = reader.line_num + 1
    except csv.Error:  # a field beyond the csv module's limit, which pandas reads
        return None
    return starts if len(starts) == expected else None


def _row_reason(problems: dict[str, pd.Series], index, policy: IntakePolicy) -> str:
    if problems["empty text"][index]:
        return "empty text"
    if problems["unknown label"][index]:
        return "unknown label"
    return f"text longer than {policy.max_text_chars} characters"


def _too_many_bad_rows(frame, problems, bad, policy: IntakePolicy, known: dict, text_column: str, label_column: str) -> RejectedFile:
    """The refusal of a file with more bad rows than may be set aside, naming each kind and its fix."""
    counts = {kind: int(mask.sum()) for kind, mask in problems.items() if mask.any()}
    spellings = "/".join(sorted(known, key=lambda k: (known[k], k)))
    described = {
        "empty text": (f"{counts.get('empty text')} row(s) have an empty text", "remove those rows or fill in the review", text_column),
        "unknown label": (
            f"{counts.get('unknown label')} row(s) have a label that is not 0/1 or negative/positive (known: {spellings})",
            'use 0 or negative, 1 or positive, or map your spellings in sentinel.toml: [intake] label_values = {"bad" = 0, "good" = 1}',
            label_column,
        ),
        "too long": (
            f"{counts.get('too long')} row(s) have a text longer than {policy.max_text_chars} characters",
            "check for a missing closing quote; split or shorten those reviews",
            text_column,
        ),
    }
    worst = max(counts, key=counts.get)
    message = "; ".join(described[kind][0] for kind in counts)
    share = f"{int(bad.sum())} of {len(frame)} rows ({100 * bad.mean():.1f}%) cannot be learned, more than the {100 * policy.max_bad_row_share:g}% that intake.max_bad_row_share sets aside"
    values = sorted({shown(v) for v in frame.loc[problems["unknown label"], "label"].head(SHOWN)}) if worst == "unknown label" else []
    return rejected(f"{message}: {share}", described[worst][1], column=described[worst][2], rows=_rows(problems[worst]), values=values)


def read_export(raw: bytes, policy: IntakePolicy) -> ParsedBatch:
    """A long labeled export (a reference, a holdout) read like any batch, bad rows set aside, except
    that a review of any length is kept."""
    return read_batch(raw, policy.model_copy(update={"max_text_chars": 10**7}))


def spreadsheet_safe(value) -> str:
    """A cell fit for a CSV a person may open in a spreadsheet: one that would run as a formula gets a
    leading apostrophe (OWASP's advice for CSV injection). For what Sentinel writes, never what it stores."""
    value = "" if value is None else str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def batch_source(frame: pd.DataFrame) -> str:
    """The source a batch is pooled and measured under: the most common source of its rows."""
    return str(frame["source"].mode().iloc[0])
