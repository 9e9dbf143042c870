"""Plans: which package an account has, its extra resources, its renewal bypass.

Packages are defined by the operator's configuration and handed in as a
:class:`Catalogue`; an account whose package is unset (or no longer
configured) gets the default one. Each change updates only the columns it
names, so two concurrent changes of different resources both survive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall.core.accounts.service import AccountRef
from guildhall.core.actor import Actor
from guildhall.core.errors import Invalid, NotFound
from guildhall.core.plans.models import Plan
from guildhall.db.base import utcnow
from guildhall.db.prepared import Prepared
from guildhall.db.sql import insert_ignore
from guildhall.events import audit

RESOURCES = ("ram", "disk", "cpu", "servers")
MAX_RESOURCE = 999_999_999_999_999


@dataclass(frozen=True, slots=True)
class Resources:
    ram: int = 0
    disk: int = 0
    cpu: int = 0
    servers: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RESOURCES}


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The configured packages, by name, and which one is the default."""

    default: str
    packages: Mapping[str, Resources] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlanView:
    package_name: str
    package: Resources
    extra: Resources
    renewal_bypass: bool


_plans = Plan.__table__
PLAN_COLUMNS = (
    _plans.c.package,
    _plans.c.extra_ram,
    _plans.c.extra_disk,
    _plans.c.extra_cpu,
    _plans.c.extra_servers,
    _plans.c.renewal_bypass,
)
"""What :func:`view_of` reads, for a statement that reads a plan beside other things."""
_PLAN_OF = Prepared(select(*PLAN_COLUMNS).where(_plans.c.account_id == bindparam("owner")))


async def get(session: AsyncSession, account_id: int, catalogue: Catalogue) -> PlanView:
    return view_of(await _PLAN_OF.first(session, {"owner": account_id}), catalogue)


def view_of(plan: Sequence[Any] | None, catalogue: Catalogue) -> PlanView:
    """The plan that :data:`PLAN_COLUMNS` read (None: the account has no plan row yet)."""
    if plan is None or plan[-1] is None:  # no row, or a LEFT JOIN's nulls (bypass is NOT NULL)
        default = catalogue.default
        return PlanView(default, catalogue.packages[default], Resources(), False)
    package, ram, disk, cpu, servers, bypass = plan
    name = package if package in catalogue.packages else catalogue.default
    return PlanView(name, catalogue.packages[name], Resources(ram, disk, cpu, servers), bypass)


async def _update(session: AsyncSession, account_id: int, values: dict[str, Any]) -> None:
    await insert_ignore(session, Plan.__table__, {"account_id": account_id, "updated_at": utcnow()})
    await session.execute(
        update(Plan)
        .where(Plan.account_id == account_id)
        .values(**values, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def set_package(
    session: AsyncSession,
    account: AccountRef,
    package: str | None,
    catalogue: Catalogue,
    actor: Actor,
) -> None:
    """Assign a configured package, or ``None`` to fall back to the default."""
    if package is not None and package not in catalogue.packages:
        raise NotFound(f"no package is named {package!r}", code="package_not_found")
    await _update(session, account.id, {"package": package})
    what = f"package {package!r}" if package is not None else "no package (the default applies)"
    await audit.record(
        session,
        actor,
        "plan.package_set",
        f"{actor.name} gave {account.describe()} {what}",
        target_account_id=account.id,
        target=f"account:{account.id}",
    )


def check_resource(name: str, value: int) -> None:
    """Raise Invalid unless ``value`` is an allowed amount of resource ``name``."""
    if name not in RESOURCES:
        raise Invalid(f"unknown resource {name!r}", field=name)
    if not 0 <= value <= MAX_RESOURCE:
        raise Invalid(
            f"{name} must be between 0 and {MAX_RESOURCE}", code="out_of_range", field=name
        )


async def set_extra(
    session: AsyncSession, account: AccountRef, changes: Mapping[str, int], actor: Actor
) -> None:
    """Set some extra resources; the ones not named keep their value."""
    if not changes:
        raise Invalid("name at least one resource", code="no_resources")
    for name, value in changes.items():
        check_resource(name, value)
    await _update(session, account.id, {f"extra_{name}": value for name, value in changes.items()})
    listed = ", ".join(f"{name} {value}" for name, value in changes.items())
    await audit.record(
        session,
        actor,
        "plan.resources_set",
        f"{actor.name} set the extra resources of {account.describe()}: {listed}",
        target_account_id=account.id,
        target=f"account:{account.id}",
    )


async def set_renewal_bypass(
    session: AsyncSession, account: AccountRef, enabled: bool, actor: Actor
) -> None:
    await _update(session, account.id, {"renewal_bypass": enabled})
    verb = "granted renewal bypass to" if enabled else "removed renewal bypass from"
    await audit.record(
        session,
        actor,
        "plan.renewal_bypass_set",
        f"{actor.name} {verb} {account.describe()}",
        target_account_id=account.id,
        target=f"account:{account.id}",
    )
