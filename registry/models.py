"""The registry's tables, as SQLAlchemy 2.0 typed declarative models.

- ``equipment``: one row per IMEI (key TAC+SNR, 14 digits), its list and stolen flag.
- ``pairing``: the subscriber identities a paired-white IMEI is bound to.
- ``tac``: the Type Allocation Code catalogue (make and model).
- ``history``: every status change (list, stolen flag, pairings), never updated.
- ``sighting``: each IMEI-IMSI pair the network was seen asking about: its first sight,
  its last sight (moved at most once a day), the MSISDN when known, the interface. The
  first sight with a local SIM starts the IMEI's grace clock; pairs show SIM swaps and
  dual-SIM use.
- ``notice``: the outbox of SMS notices to owners, at most one per IMEI, IMSI and event.
- ``subscriber``: the operator's subscriber data (HLR/HSS export): which MSISDN an IMSI
  held and when, every change kept as a row of its own (``valid_from``, ``valid_until``).

Times are stored as naive UTC, each given by its writer from the clock it was handed
(registry/clock.py): no column defaults to the machine's time. Lists are stored by their
value ("white", ...), so the hot path can read them with plain SQL; ``ListName`` itself is
one of the decision's facts (registry/decision/facts.py).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from registry.decision.facts import ListName


class HistoryField(enum.StrEnum):
    """What a history entry records a change of."""

    LIST = "list"
    STOLEN = "stolen"
    PAIRING = "pairing"


def _values(enum_class: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in enum_class]


LIST_TYPE = Enum(ListName, name="list_name", native_enum=False, length=8, values_callable=_values,
                 validate_strings=True)
FIELD_TYPE = Enum(HistoryField, name="history_field", native_enum=False, length=8, values_callable=_values,
                  validate_strings=True)


class Base(DeclarativeBase):
    pass


class Equipment(Base):
    __tablename__ = "equipment"
    # WITHOUT ROWID: the IMEI is the B-tree key, so a lookup is one B-tree search.
    __table_args__ = ({"sqlite_with_rowid": False},)

    imei: Mapped[str] = mapped_column(String(14), primary_key=True)
    list: Mapped[ListName | None] = mapped_column(LIST_TYPE)  # None: known only as stolen
    reason: Mapped[str | None] = mapped_column(String)
    source: Mapped[str] = mapped_column(String)  # of the last change, e.g. "import:white.csv"
    stolen: Mapped[bool] = mapped_column(Boolean, default=False)
    stolen_reason: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Pairing(Base):
    """A paired-white IMEI bound to an IMSI and/or an MSISDN; an IMEI may have several."""

    __tablename__ = "pairing"
    __table_args__ = (
        CheckConstraint("imsi IS NOT NULL OR msisdn IS NOT NULL", name="pairing_has_identity"),
        Index("ix_pairing_imei", "imei"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    imei: Mapped[str] = mapped_column(String(14), ForeignKey("equipment.imei"))
    imsi: Mapped[str | None] = mapped_column(String(15))
    msisdn: Mapped[str | None] = mapped_column(String(15))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Tac(Base):
    __tablename__ = "tac"

    tac: Mapped[str] = mapped_column(String(8), primary_key=True)
    brand: Mapped[str | None] = mapped_column(String)
    model: Mapped[str | None] = mapped_column(String)
    device_type: Mapped[str | None] = mapped_column(String)


class History(Base):
    """One status change of one IMEI: ``field`` went from ``old`` to ``new`` (None: absent)."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_history_imei", "imei"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    imei: Mapped[str] = mapped_column(String(14))
    at: Mapped[datetime] = mapped_column(DateTime)
    field: Mapped[HistoryField] = mapped_column(FIELD_TYPE)
    old: Mapped[str | None] = mapped_column(String)
    new: Mapped[str | None] = mapped_column(String)
    reason: Mapped[str | None] = mapped_column(String)
    source: Mapped[str] = mapped_column(String)


class Sighting(Base):
    """An IMEI seen with an IMSI ("" when the network did not say which)."""

    __tablename__ = "sighting"
    __table_args__ = (
        # The MSISDN of an IMSI as imported observations tell it. Partial: the agent's own
        # sightings carry no MSISDN (S13 and MAP never do), so its writes never touch it.
        Index("ix_sighting_imsi_msisdn", "imsi", sqlite_where=text("msisdn IS NOT NULL"),
              postgresql_where=text("msisdn IS NOT NULL")),
        {"sqlite_with_rowid": False},
    )

    imei: Mapped[str] = mapped_column(String(14), primary_key=True)
    imsi: Mapped[str] = mapped_column(String(15), primary_key=True)
    msisdn: Mapped[str | None] = mapped_column(String(15))
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)  # moved at most once a day (see observations.py)
    interface: Mapped[str | None] = mapped_column(String(8))  # of the last recorded sight: s13, map, import


class Notice(Base):
    """An SMS notice due to the owner of an IMEI used with an IMSI."""

    __tablename__ = "notice"
    __table_args__ = (UniqueConstraint("imei", "imsi", "event", name="notice_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    imei: Mapped[str] = mapped_column(String(14))
    imsi: Mapped[str] = mapped_column(String(15))
    msisdn: Mapped[str | None] = mapped_column(String(15))
    event: Mapped[str] = mapped_column(String(16))  # grey, reminder-7d, black
    deadline: Mapped[datetime | None] = mapped_column(DateTime)
    reason: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    exported_at: Mapped[datetime | None] = mapped_column(DateTime)


class Subscriber(Base):
    """An IMSI holding an MSISDN from ``valid_from`` (None: as far back as is known) until
    ``valid_until`` (None: it still does). An IMSI holds one MSISDN at a time and an MSISDN
    is held by one IMSI at a time; a change closes the old row and opens a new one."""

    __tablename__ = "subscriber"
    __table_args__ = (Index("ix_subscriber_imsi", "imsi", "valid_until"),
                      Index("ix_subscriber_msisdn", "msisdn", "valid_until"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    imsi: Mapped[str] = mapped_column(String(15))
    msisdn: Mapped[str] = mapped_column(String(15))
    valid_from: Mapped[datetime | None] = mapped_column(DateTime)
    valid_until: Mapped[datetime | None] = mapped_column(DateTime)
    source: Mapped[str] = mapped_column(String)  # e.g. "import:hlr.csv"
