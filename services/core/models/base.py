"""The declarative base, its naming convention and the column types the tables share."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import BigInteger, MetaData, Numeric
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(20, 4)
# Sums of amounts: wide enough that no stream of valid events (each <= 1e15) can overflow a rollup row,
# which would make its batch fail on every retry.
MoneySum = Numeric(38, 4)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def counter() -> Mapped[int]:
    return mapped_column(BigInteger, nullable=False, server_default="0")


def seconds() -> Mapped[Decimal]:
    return mapped_column(Numeric(20, 3), nullable=False, server_default="0")
