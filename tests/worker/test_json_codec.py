"""The store's JSON columns go through orjson and keep what `json` stored (store/json_codec.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, insert, select, text

from worker.store import json_codec
from worker.store.db import Database

_STORED = {
    "schema": "ptsync.report/1",
    "findings": [{"kind": "missing_new_user", "message": "Zoë’s colleague 🦴", "evidence": {"days": 540}}],
    "counts": {"findings": 2, "ratios": [1.5, -0.0, 1e-7, 10**16]},
    "nested": [[[[]]]] * 3,
}
_BEYOND_ORJSON = {
    **_STORED,
    "large": 2**70 + 1,
    "beyond_64_bits": [2**64 + 1, -(2**63) - 1, 10**30 + 7],
    "by_number": {1: 2, 2.5: "x", False: None, None: 1e-05},
}


def test_given_what_the_store_keeps_when_encoded_then_it_reads_back_as_the_standard_library_stored_it() -> (
    None
):
    # Given: a report-like document, and one with what orjson refuses or spells otherwise (an int
    # beyond 64 bits, keys that are not strings)
    for document in (_STORED, _BEYOND_ORJSON):
        # When
        encoded = json_codec.dumps(document)
        # Then
        assert json.loads(encoded) == json.loads(json.dumps(document))
        assert json_codec.loads(encoded) == json.loads(json.dumps(document))
        assert '"counts":{"findings":2,' in encoded  # compact
    assert '"by_number":{"1":2,"2.5":"x","false":null,"null":1e-05}' in json_codec.dumps(_BEYOND_ORJSON)


def test_given_any_stored_document_when_encoded_as_utf8_then_the_bytes_are_the_texts() -> None:
    # Given: what orjson encodes and what it leaves to json (an int beyond 64 bits)
    for document in (_STORED, _BEYOND_ORJSON):
        # When
        encoded = json_codec.dumps_utf8(document)
        # Then: what PostgreSQL's driver is given is the text SQLite's is given, as bytes
        assert isinstance(encoded, bytes)
        assert encoded == json_codec.dumps(document).encode()


def test_given_a_value_json_refuses_when_encoded_then_it_raises_the_same_type_error() -> None:
    # Given: a datetime and a dataclass, which json never stored (a bug in the caller)
    @dataclass
    class Point:
        x: int

    for value in ({"at": datetime(2026, 11, 26, tzinfo=UTC)}, [Point(1)]):
        # When / Then
        with pytest.raises(TypeError, match="not JSON serializable"):
            json_codec.dumps(value)


def test_given_nesting_deeper_than_orjson_allows_when_encoded_then_json_encodes_it() -> None:
    # Given
    deep: list = []
    for _ in range(400):
        deep = [deep]
    # When / Then
    assert json_codec.loads(json_codec.dumps(deep)) == deep


def test_given_text_with_a_nan_an_old_row_may_hold_when_read_then_it_is_read_as_json_read_it() -> None:
    # Given / When
    value = json_codec.loads('{"ratio": NaN, "n": 1}')
    # Then
    assert value["n"] == 1 and value["ratio"] != value["ratio"]


def test_given_malformed_text_when_read_then_it_raises_a_value_error() -> None:
    with pytest.raises(ValueError):
        json_codec.loads('{"unterminated": ')


def test_given_a_json_column_when_a_document_is_written_and_read_then_both_databases_keep_it(
    database_url: str,
) -> None:
    # Given: a table with a JSON column on the store's engine (SQLite and PostgreSQL)
    database = Database(database_url)
    documents = Table(
        "codec_documents", MetaData(), Column("id", Integer, primary_key=True), Column("body", JSON)
    )
    try:
        documents.create(database.engine)
        # When
        with database.engine.begin() as connection:
            connection.execute(
                insert(documents), [{"id": 1, "body": _STORED}, {"id": 2, "body": _BEYOND_ORJSON}]
            )
        with database.engine.connect() as connection:
            read = connection.execute(select(documents.c.body).order_by(documents.c.id)).scalars().all()
            stored = (
                connection.execute(text("SELECT CAST(body AS TEXT) FROM codec_documents ORDER BY id"))
                .scalars()
                .all()
            )
        # Then
        assert read == [json.loads(json.dumps(_STORED)), json.loads(json.dumps(_BEYOND_ORJSON))]
        assert stored[0].startswith('{"schema":"ptsync.report/1","findings":[{"kind":')  # orjson, compact
        assert '"large":1180591620717411303425' in stored[1]
        assert read[1]["beyond_64_bits"] == [2**64 + 1, -(2**63) - 1, 10**30 + 7]  # ints, every digit
        if database.engine.dialect.name == "sqlite":  # text, never a BLOB of the same bytes
            with database.engine.connect() as connection:
                kinds = connection.execute(text("SELECT typeof(body) FROM codec_documents")).scalars().all()
            assert kinds == ["text", "text"]
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("url", "encoded_as"),
    [
        ("postgresql://ptsync@db/ptsync", bytes),
        ("postgresql+psycopg://ptsync@db/ptsync", bytes),
        ("postgresql+psycopg2://ptsync@db/ptsync", str),
        ("postgresql+pg8000://ptsync@db/ptsync", str),
    ],
)
def test_given_a_postgresql_url_when_its_engine_is_made_then_only_psycopg_is_given_bytes(
    monkeypatch, url: str, encoded_as: type
) -> None:
    # Given: PTSYNC_DATABASE_URL is any SQLAlchemy URL; only psycopg (3) sends bytes to a JSON
    # column as they are (psycopg2 or pg8000 would send them as bytea, or refuse them)
    from sqlalchemy import create_engine

    from worker.store import db

    made: dict = {}

    def recorded(url, **options):
        made.update(options, url=url)
        return create_engine("sqlite://")  # an engine to attach the pool's listeners to

    monkeypatch.setattr(db, "create_engine", recorded)
    # When
    db.make_engine(url)
    # Then
    assert isinstance(made["json_serializer"]({"name": "Zoë"}), encoded_as)
