"""Small builders shared by the tests."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from workers import models


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A real, decodable PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def dump_database(engine: Engine) -> str:
    """Every value in every table of the case store, as one searchable text."""
    from sqlalchemy import MetaData, select

    metadata = MetaData()
    metadata.reflect(engine)
    parts: list[str] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes):
                        parts.append(value.decode("latin-1"))
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def incident_links(session: Session, case_ids: Iterable[int | None]) -> dict[int, int]:
    """Which of these cases are linked into an incident, and into which case."""
    return {
        case_id: into
        for case_id, into in session.execute(
            select(models.CaseLink.case_id, models.CaseLink.into_case_id).where(
                models.CaseLink.case_id.in_([i for i in case_ids if i is not None])
            )
        )
    }


def messages_stored(engine: Engine, provider_message_ids: Iterable[str]) -> int:
    """How many of these provider message ids the case store holds a message for."""
    with engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count())
                .select_from(models.Message)
                .where(models.Message.provider_message_id.in_(list(provider_message_ids)))
            )
            or 0
        )
