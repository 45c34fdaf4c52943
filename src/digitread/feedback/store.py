"""FeedbackStore: corrections kept in any SQLAlchemy database; a SQLite file by default.

The database and its table are created on first use. SQLite is set up for several server processes
writing at once: write-ahead logging (readers never block the writer) and a busy timeout (a writer
waits for another's commit instead of failing with "database is locked").
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, Integer, LargeBinary, String, Text, create_engine, event, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from digitread.errors import ConfigError

DEFAULT_URL = "sqlite:///digitread-feedback.db"
SQLITE_BUSY_SECONDS = 30
CREATE_ATTEMPTS = 8


class _Base(DeclarativeBase):
    pass


class FeedbackRow(_Base):
    __tablename__ = "digitread_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    number: Mapped[str] = mapped_column(String(64))  # what the image really shows, as the user wrote it
    read_text: Mapped[str] = mapped_column(String(256))  # what the service read
    reading: Mapped[str] = mapped_column(Text)  # the service's full reading as JSON: boxes to cut digits by
    image: Mapped[bytes] = mapped_column(LargeBinary)  # the image file exactly as it was sent
    image_format: Mapped[str] = mapped_column(String(16))  # PNG, JPEG, ...
    source: Mapped[str | None] = mapped_column(String(200), nullable=True)


@dataclass
class Feedback:
    """One stored correction."""

    id: int
    created_at: datetime
    number: str
    read_text: str
    reading: dict
    image: bytes
    image_format: str
    source: str | None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_SECONDS * 1000}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable at each checkpoint, safe against corruption
    cursor.close()


class FeedbackStore:
    """Add and list corrections.

    >>> store = FeedbackStore("sqlite:///feedback.db")  # doctest: +SKIP
    >>> store.add(png_bytes, "PNG", number="1250", read_text="1280", reading={...})  # doctest: +SKIP
    1
    """

    def __init__(self, url: str = DEFAULT_URL):
        try:
            self.url = make_url(url)
        except ArgumentError:
            raise ConfigError(f"not a database URL: {url!r} (e.g. sqlite:///feedback.db)") from None
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The engine, with the database and table created on first use."""
        with self._lock:
            if self._engine is None:
                self._engine = self._connect()
            return self._engine

    def _connect(self) -> Engine:
        is_sqlite = self.url.get_backend_name() == "sqlite"
        if is_sqlite and self.url.database and self.url.database != ":memory:":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": SQLITE_BUSY_SECONDS} if is_sqlite else {}
        try:
            engine = create_engine(self.url, connect_args=connect_args, pool_pre_ping=not is_sqlite)
        except (ModuleNotFoundError, ImportError) as e:
            raise ConfigError(f"no database driver for {self.url.drivername}: {e}") from None
        if is_sqlite:
            event.listen(engine, "connect", _sqlite_pragmas)
        for attempt in range(CREATE_ATTEMPTS):
            try:
                _Base.metadata.create_all(engine)
                return engine
            except OperationalError:
                # Another process is creating the table between our check and our CREATE (SQLite says
                # "already exists" or "locked"); once its commit lands, the check finds the table.
                if attempt == CREATE_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        return engine

    def add(
        self,
        image: bytes,
        image_format: str,
        number: str,
        read_text: str,
        reading: dict,
        source: str | None = None,
    ) -> int:
        """Store one correction; returns its id."""
        row = FeedbackRow(
            created_at=datetime.now(UTC),
            number=number,
            read_text=read_text[:256],
            reading=json.dumps(reading),
            image=image,
            image_format=image_format,
            source=source,
        )
        with Session(self.engine) as session, session.begin():
            session.add(row)
            session.flush()
            return row.id

    def count(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(FeedbackRow)) or 0)

    def __iter__(self) -> Iterator[Feedback]:
        """Every correction, oldest first, a few at a time (images can be large)."""
        with Session(self.engine) as session:
            for row in session.scalars(select(FeedbackRow).order_by(FeedbackRow.id).execution_options(yield_per=64)):
                yield Feedback(
                    row.id,
                    row.created_at,
                    row.number,
                    row.read_text,
                    json.loads(row.reading),
                    row.image,
                    row.image_format,
                    row.source,
                )

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
