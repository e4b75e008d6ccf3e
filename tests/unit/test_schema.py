"""The open world format: JSONL/Parquet round trips, validation with line numbers, the hand-made world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleep_ray.data.schema import (
    QA,
    Document,
    FormatError,
    Memory,
    Probe,
    load_world,
    read_documents,
    read_stream,
    write_documents,
    write_stream,
)

HANDMADE = Path(__file__).resolve().parents[1] / "data" / "handmade"

DOCS = [
    Document(
        "d1",
        "bio",
        "recall",
        "Ana Vel lives in Miravel.",
        "person:Ana Vel",
        (QA("Where does Ana Vel live?", "Miravel", "person:Ana Vel:lives_in"),),
        (
            Probe("Ana Vel calls which city home?", "Miravel", "base", "sleep", "person:Ana Vel:lives_in"),
            Probe("Which city has Ana Vel?", "Miravel", "base", "eval", "person:Ana Vel:lives_in"),
        ),
    ),
    Document("d2", "dialogue", "reading", "A: Hi.\nB: Ünïcode — fine.", qa=(QA("Who says hi?", "A"),)),
    Document("d3", "bio", "heldout", "Nothing to ask."),
]
MEMS = [
    Memory(
        1,
        "m1",
        "update",
        "Ana Vel moved from Miravel to Tosk.",
        (Probe("Ana Vel calls which city home?", "Tosk", "updated", "eval", "person:Ana Vel:lives_in", "Miravel"),),
    ),
    Memory(2, "m2", "long_document", "Long.\n\nText."),
]

GOOD_DOC = {"doc_id": "x", "kind": "bio", "use": "recall", "text": "Some text."}
GOOD_MEM = {"cycle": 1, "memory_id": "m", "kind": "document", "text": "Some text."}


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_round_trip(tmp_path, ext):
    write_documents(tmp_path / f"world.{ext}", DOCS)
    write_stream(tmp_path / f"stream.{ext}", MEMS)
    assert read_documents(tmp_path / f"world.{ext}") == DOCS
    assert read_stream(tmp_path / f"stream.{ext}") == MEMS


def test_jsonl_layout_and_optional_keys(tmp_path):
    write_documents(tmp_path / "w.jsonl", DOCS)
    lines = (tmp_path / "w.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and list(json.loads(lines[0])) == ["doc_id", "kind", "use", "text", "group", "qa", "probes"]
    (tmp_path / "min.jsonl").write_text(
        json.dumps(GOOD_DOC) + "\n\n" + json.dumps({**GOOD_DOC, "doc_id": "y", "group": None}) + "\n"
    )
    assert read_documents(tmp_path / "min.jsonl") == [
        Document("x", "bio", "recall", "Some text."),
        Document("y", "bio", "recall", "Some text."),
    ]


def _bad(tmp_path: Path, line: str, good: dict, name: str = "w.jsonl") -> Path:
    """A file whose line 3 is `line`, after a good line and a blank line."""
    path = tmp_path / name
    path.write_text(json.dumps(good) + "\n\n" + line + "\n")
    return path


BAD_DOCS = {
    "bad json": ('{"doc_id": "y", "kind": ', "invalid JSON"),
    "not an object": ("[1, 2]", "expected an object"),
    "missing key": (json.dumps({"doc_id": "y", "kind": "bio", "use": "recall"}), "missing key 'text'"),
    "unknown key": (json.dumps({**GOOD_DOC, "doc_id": "y", "title": "t"}), "unknown key 'title'"),
    "wrong type": (json.dumps({**GOOD_DOC, "doc_id": 7}), "doc_id: expected a string, got int"),
    "empty text": (json.dumps({**GOOD_DOC, "doc_id": "y", "text": "  "}), "text: empty"),
    "bad use": (json.dumps({**GOOD_DOC, "doc_id": "y", "use": "train"}), "use: 'train' is not one of"),
    "qa not a list": (json.dumps({**GOOD_DOC, "doc_id": "y", "qa": {"question": "q"}}), "qa: expected a list"),
    "empty answer": (
        json.dumps({**GOOD_DOC, "doc_id": "y", "qa": [{"question": "q", "answer": ""}]}),
        "qa[0].answer: empty",
    ),
    "bad split": (
        json.dumps(
            {**GOOD_DOC, "doc_id": "y", "probes": [{"question": "q", "answer": "a", "kind": "base", "split": "test"}]}
        ),
        "probes[0].split: 'test' is not one of",
    ),
    "bad probe kind": (
        json.dumps(
            {**GOOD_DOC, "doc_id": "y", "probes": [{"question": "q", "answer": "a", "kind": "old", "split": "eval"}]}
        ),
        "probes[0].kind: 'old' is not one of",
    ),
    "nested unknown key": (
        json.dumps({**GOOD_DOC, "doc_id": "y", "qa": [{"question": "q", "answer": "a", "x": 1}]}),
        "unknown key 'qa[0].x'",
    ),
    "duplicate id": (json.dumps(GOOD_DOC), "duplicate doc_id 'x' (first at 1)"),
}


@pytest.mark.parametrize("case", sorted(BAD_DOCS))
def test_malformed_document_lines_are_rejected_with_their_line(tmp_path, case):
    line, reason = BAD_DOCS[case]
    path = _bad(tmp_path, line, GOOD_DOC)
    with pytest.raises(FormatError) as err:
        read_documents(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert reason in str(err.value)
    assert isinstance(err.value, ValueError)


BAD_MEMS = {
    "cycle zero": (json.dumps({**GOOD_MEM, "memory_id": "n", "cycle": 0}), "cycle: 0 is below 1"),
    "cycle string": (json.dumps({**GOOD_MEM, "memory_id": "n", "cycle": "1"}), "cycle: expected an integer, got str"),
    "cycle bool": (json.dumps({**GOOD_MEM, "memory_id": "n", "cycle": True}), "cycle: expected an integer, got bool"),
    "bad kind": (json.dumps({**GOOD_MEM, "memory_id": "n", "kind": "note"}), "kind: 'note' is not one of"),
    "missing id": (json.dumps({"cycle": 1, "kind": "document", "text": "t"}), "missing key 'memory_id'"),
    "null text": (json.dumps({**GOOD_MEM, "memory_id": "n", "text": None}), "text: null"),
    "duplicate id": (json.dumps(GOOD_MEM), "duplicate memory_id 'm'"),
}


@pytest.mark.parametrize("case", sorted(BAD_MEMS))
def test_malformed_memory_lines_are_rejected_with_their_line(tmp_path, case):
    line, reason = BAD_MEMS[case]
    path = _bad(tmp_path, line, GOOD_MEM, "s.jsonl")
    with pytest.raises(FormatError, match=f"^{path}:3: .*{reason[:12]}"):
        read_stream(path)


def test_parquet_rows_are_validated_with_their_row_number(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [dict(GOOD_MEM), {**GOOD_MEM, "memory_id": "n", "cycle": -2}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "s.parquet")
    with pytest.raises(FormatError, match=r"s\.parquet:2: cycle: -2 is below 1"):
        read_stream(tmp_path / "s.parquet")
    pq.write_table(pa.Table.from_pylist([{**GOOD_DOC, "extra": "x"}]), tmp_path / "w.parquet")
    with pytest.raises(FormatError, match=r"w\.parquet:1: unknown key 'extra'"):
        read_documents(tmp_path / "w.parquet")


def test_writing_validates_and_rejects_unknown_extensions(tmp_path):
    with pytest.raises(FormatError, match=r"w\.jsonl:2: text: empty"):
        write_documents(tmp_path / "w.jsonl", [DOCS[0], Document("e", "bio", "recall", "")])
    with pytest.raises(FormatError, match="duplicate memory_id"):
        write_stream(tmp_path / "s.jsonl", [MEMS[0], MEMS[0]])
    with pytest.raises(ValueError, match="unknown world file format"):
        write_documents(tmp_path / "w.csv", DOCS)
    with pytest.raises(ValueError, match="unknown world file format"):
        read_documents(tmp_path / "w.json")


def test_handmade_world_is_valid_and_well_formed():
    world = load_world(HANDMADE)
    uses = {d.use for d in world.documents}
    assert uses == {"recall", "reading", "heldout"}
    recall = [d for d in world.documents if d.use == "recall"]
    assert len(recall) == 12 and all(d.qa for d in recall)
    assert any(d.group for d in recall) and any(d.group for d in world.documents if d.use == "reading")
    assert sorted({m.cycle for m in world.stream}) == [1, 2]
    assert {m.kind for m in world.stream} == {"document", "update", "dialogue", "demonstration", "long_document"}
    texts = [d.text for d in world.documents] + [m.text for m in world.stream]
    questions = {q.question for d in world.documents for q in d.qa}
    for rec in [*world.documents, *world.stream]:
        for p in rec.probes:
            assert p.question not in questions and not any(p.question in t for t in texts), p
            if p.kind in ("new", "long", "updated"):
                assert p.answer in rec.text, p
            if p.kind == "updated":
                assert p.stale_answer and p.stale_answer != p.answer
    for m in world.stream:
        assert m.probes and sorted(p.split for p in m.probes).count("sleep") == len(m.probes) // 2
