"""The open world format: typed records and their reading and writing as JSONL or Parquet (docs/FORMAT.md).

A world is two files: `world.jsonl` (Documents: what the base model is pretrained on) and `stream.jsonl`
(Memories: what arrives while awake, in cycles). The format is chosen by the file extension, `.jsonl` or
`.parquet`. Reading validates every record and raises `FormatError` with `path:line: reason` (for Parquet,
the 1-based row number). Writing validates too, so a written file can always be read back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sleep_ray.config import WorldConfig

FORMAT_VERSION = 1
USES = ("recall", "reading", "heldout")
MEMORY_KINDS = ("document", "update", "dialogue", "demonstration", "long_document")
PROBE_KINDS = ("base", "new", "updated", "retained", "rule", "long")
SPLITS = ("sleep", "eval")

R = TypeVar("R")


class FormatError(ValueError):
    """A world file is malformed. The message is `path:line: reason`."""


@dataclass(frozen=True)
class QA:
    """A training question/answer pair about a document (pretraining uses these)."""

    question: str
    answer: str
    fact_id: str = ""


@dataclass(frozen=True)
class Probe:
    """An evaluation question, phrased with templates that appear in no document, memory or QA."""

    question: str
    answer: str
    kind: str  # "base" | "new" | "updated" | "retained" | "rule" | "long"
    split: str  # "sleep" (usable while sleeping) | "eval" (only evaluation sees it)
    fact_id: str = ""
    stale_answer: str = ""  # kind "updated": the old, now wrong, answer


@dataclass(frozen=True)
class Document:
    """A line of world.jsonl: knowledge the base model is pretrained on, or practice material."""

    doc_id: str
    kind: str  # free text: "bio", "org", "city", "dialogue", "demonstration", ...
    use: str  # "recall" | "reading" | "heldout"
    text: str
    group: str = ""  # same non-empty group = the same facts in other words (restatements)
    qa: tuple[QA, ...] = ()
    probes: tuple[Probe, ...] = ()


@dataclass(frozen=True)
class Memory:
    """A line of stream.jsonl: what arrives while awake, in cycles (days)."""

    cycle: int  # 1..K
    memory_id: str
    kind: str  # "document" | "update" | "dialogue" | "demonstration" | "long_document"
    text: str
    probes: tuple[Probe, ...] = ()


@dataclass(frozen=True)
class World:
    """A whole world: the documents and the memory stream."""

    documents: tuple[Document, ...]
    stream: tuple[Memory, ...]


# Per record type: field name -> (check, allowed values). Checks: "text" = non-empty string, "str" = any
# string, "cycle" = integer >= 1, a record type = list of such records.
_CHECKS: dict[type, dict[str, tuple[Any, tuple[str, ...] | None]]] = {
    QA: {"question": ("text", None), "answer": ("text", None), "fact_id": ("str", None)},
    Probe: {
        "question": ("text", None),
        "answer": ("text", None),
        "kind": ("text", PROBE_KINDS),
        "split": ("text", SPLITS),
        "fact_id": ("str", None),
        "stale_answer": ("str", None),
    },
    Document: {
        "doc_id": ("text", None),
        "kind": ("text", None),
        "use": ("text", USES),
        "text": ("text", None),
        "group": ("str", None),
        "qa": (QA, None),
        "probes": (Probe, None),
    },
    Memory: {
        "cycle": ("cycle", None),
        "memory_id": ("text", None),
        "kind": ("text", MEMORY_KINDS),
        "text": ("text", None),
        "probes": (Probe, None),
    },
}


class _Invalid(Exception):
    """A record is malformed; the message is the reason (without the location)."""


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _parse(cls: type[R], obj: Any, where: str = "") -> R:
    """Build a `cls` record from a decoded JSON object or Parquet row, checking keys, types and values."""
    checks = _CHECKS[cls]
    if not isinstance(obj, dict):
        raise _Invalid(f"{where.rstrip('.') or 'record'}: expected an object, got {_type_name(obj)}")
    for key in obj:
        if key not in checks:
            raise _Invalid(f"unknown key {where + str(key)!r}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        check, choices = checks[f.name]
        required = f.default is dataclasses.MISSING
        value = obj.get(f.name)
        name = f"{where}{f.name}"
        if value is None:  # absent, or null (Parquet writes null for a missing optional value)
            if required:
                raise _Invalid(f"missing key {name!r}" if f.name not in obj else f"{name}: null")
            continue
        if check in ("text", "str"):
            if not isinstance(value, str):
                raise _Invalid(f"{name}: expected a string, got {_type_name(value)}")
            if check == "text" and not value.strip():
                raise _Invalid(f"{name}: empty")
            if choices is not None and value not in choices:
                raise _Invalid(f"{name}: {value!r} is not one of {', '.join(choices)}")
        elif check == "cycle":
            if not isinstance(value, int) or isinstance(value, bool):
                raise _Invalid(f"{name}: expected an integer, got {_type_name(value)}")
            if value < 1:
                raise _Invalid(f"{name}: {value} is below 1")
        else:
            if not isinstance(value, (list, tuple)):
                raise _Invalid(f"{name}: expected a list, got {_type_name(value)}")
            value = tuple(_parse(check, item, f"{name}[{i}].") for i, item in enumerate(value))
        kwargs[f.name] = value
    return cls(**kwargs)


def _to_dict(record: Any) -> dict[str, Any]:
    """A record as plain JSON-ready data (nested records become lists of objects), in field order."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        out[f.name] = [_to_dict(v) for v in value] if isinstance(value, tuple) else value
    return out


def _rows(path: Path) -> list[tuple[int, Any]]:
    """(line or row number, decoded object) pairs from a .jsonl or .parquet file."""
    if path.suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise FormatError(f"{path}:{number}: invalid JSON: {e.msg} (column {e.colno})") from None
        return rows
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(enumerate(pq.read_table(path).to_pylist(), start=1))
    raise ValueError(f"{path}: unknown world file format {path.suffix!r}; use .jsonl or .parquet")


def _read(path: str | Path, cls: type[R], id_key: str) -> list[R]:
    path = Path(path)
    records: list[R] = []
    first_seen: dict[str, int] = {}
    for number, obj in _rows(path):
        try:
            record = _parse(cls, obj)
        except _Invalid as e:
            raise FormatError(f"{path}:{number}: {e}") from None
        ident = getattr(record, id_key)
        if ident in first_seen:
            raise FormatError(f"{path}:{number}: duplicate {id_key} {ident!r} (first at {first_seen[ident]})")
        first_seen[ident] = number
        records.append(record)
    return records


def _pa_schema(cls: type) -> Any:
    import pyarrow as pa

    def field_type(check: Any) -> Any:
        if check == "cycle":
            return pa.int64()
        if check in ("text", "str"):
            return pa.string()
        return pa.list_(pa.struct([pa.field(n, field_type(c)) for n, (c, _) in _CHECKS[check].items()]))

    return pa.schema([pa.field(name, field_type(check)) for name, (check, _) in _CHECKS[cls].items()])


def _write(path: str | Path, records: Iterable[Any], cls: type, id_key: str) -> None:
    path = Path(path)
    rows = []
    first_seen: dict[str, int] = {}
    for number, record in enumerate(records, start=1):
        if not isinstance(record, cls):
            raise TypeError(f"{path}: record {number} is a {type(record).__name__}, expected {cls.__name__}")
        row = _to_dict(record)
        try:
            _parse(cls, row)
        except _Invalid as e:
            raise FormatError(f"{path}:{number}: {e}") from None
        ident = row[id_key]
        if ident in first_seen:
            raise FormatError(f"{path}:{number}: duplicate {id_key} {ident!r} (first at {first_seen[ident]})")
        first_seen[ident] = number
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows, schema=_pa_schema(cls)), path)
    else:
        raise ValueError(f"{path}: unknown world file format {path.suffix!r}; use .jsonl or .parquet")


def read_documents(path: str | Path) -> list[Document]:
    """Read and validate a documents file (`.jsonl` or `.parquet`). Raises FormatError."""
    return _read(path, Document, "doc_id")


def write_documents(path: str | Path, docs: Iterable[Document]) -> None:
    """Write documents as `.jsonl` or `.parquet` (by extension), validating them first."""
    _write(path, docs, Document, "doc_id")


def read_stream(path: str | Path) -> list[Memory]:
    """Read and validate a memory stream file (`.jsonl` or `.parquet`). Raises FormatError."""
    return _read(path, Memory, "memory_id")


def write_stream(path: str | Path, memories: Iterable[Memory]) -> None:
    """Write memories as `.jsonl` or `.parquet` (by extension), validating them first."""
    _write(path, memories, Memory, "memory_id")


def fingerprint(world: World) -> str:
    """A short hash of what a model is pretrained on: the documents, without their probes or the stream.

    Recorded with every base model, so a run can tell whether a model was trained on the world it is given
    (probes may be reworded without retraining; any change to a document's text or QA changes this).
    """
    h = hashlib.sha256()
    for doc in world.documents:
        h.update(json.dumps(_to_dict(dataclasses.replace(doc, probes=())), sort_keys=True).encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------- world directories


def world_stats(world: World) -> dict[str, Any]:
    """Counts of documents, memories, QA pairs and probes, and total characters of text."""
    probes = [p for d in world.documents for p in d.probes] + [p for m in world.stream for p in m.probes]
    return {
        "documents": dict(sorted(Counter(d.use for d in world.documents).items())),
        "memories": dict(sorted(Counter(m.kind for m in world.stream).items())),
        "qa": sum(len(d.qa) for d in world.documents),
        "probes": dict(sorted(Counter(f"{p.kind}/{p.split}" for p in probes).items())),
        "characters": sum(len(d.text) for d in world.documents) + sum(len(m.text) for m in world.stream),
    }


def write_world(world: World, out_dir: str | Path, fmt: str = "jsonl", config: WorldConfig | None = None) -> Path:
    """Write `world.<fmt>`, `stream.<fmt>` and `meta.json` (format version, `config` as a dict, counts)."""
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"fmt must be 'jsonl' or 'parquet', not {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stem in ("world", "stream"):  # leave exactly one format in the directory
        for other in ("jsonl", "parquet"):
            if other != fmt:
                (out / f"{stem}.{other}").unlink(missing_ok=True)
    write_documents(out / f"world.{fmt}", world.documents)
    write_stream(out / f"stream.{fmt}", world.stream)
    meta = {
        "format_version": FORMAT_VERSION,
        "format": fmt,
        "world_config": dataclasses.asdict(config) if config is not None else None,
        "stats": world_stats(world),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


def _find(directory: Path, stem: str) -> Path | None:
    found = [directory / f"{stem}.{ext}" for ext in ("jsonl", "parquet") if (directory / f"{stem}.{ext}").exists()]
    if len(found) > 1:
        raise ValueError(f"{directory}: both {found[0].name} and {found[1].name} exist; keep one")
    return found[0] if found else None


def load_world(directory: str | Path) -> World:
    """Read `world.jsonl|parquet` (required) and `stream.jsonl|parquet` (optional: empty stream) from a directory."""
    directory = Path(directory)
    docs_path = _find(directory, "world")
    if docs_path is None:
        raise FileNotFoundError(f"{directory}: no world.jsonl or world.parquet")
    stream_path = _find(directory, "stream")
    stream = read_stream(stream_path) if stream_path is not None else []
    return World(tuple(read_documents(docs_path)), tuple(stream))
