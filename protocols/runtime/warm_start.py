"""Earlier campaigns as related tasks of a new one (``optimizer.warm_start`` in a protocol).

A chemist's second substrate is rarely the first one's twin: its optimum moves. So the
earlier campaigns' results reach the optimiser as a related task (one task per campaign,
``Optimizer.warm_start(..., task=...)``), whose correlation with this campaign the model
learns, rather than as this campaign's own results. Only results with the same variables,
inside this campaign's space and constraints, are used; failures are kept (they teach
where experiments fail).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select

from robochem.optimizer import Optimizer
from robochem.storage.models import Campaign

from ..model import Protocol

__all__ = ["WarmStartError", "related_observations"]

History = Callable[
    [Any, int, Mapping[str, Any]], tuple[list[dict[str, Any]], list[dict[str, Any]]]
]


class WarmStartError(ValueError):
    """A campaign named in ``optimizer.warm_start`` is not in the database."""


def _earlier_campaigns(session: Any, refs: list[int | str], own_id: int) -> list[Campaign]:
    """Campaigns by id, or every campaign of a protocol name; never the campaign itself."""
    found: dict[int, Campaign] = {}
    for ref in refs:
        if isinstance(ref, int):
            campaign = session.get(Campaign, ref)
            if campaign is None:
                raise WarmStartError(f"optimizer.warm_start: no campaign {ref} in the database")
            matches = [campaign]
        else:
            matches = list(session.scalars(select(Campaign).where(Campaign.name == ref)))
            matches = [c for c in matches if c.id != own_id]
            if not matches:
                raise WarmStartError(
                    f"optimizer.warm_start: no earlier campaign of protocol {ref!r} in the "
                    "database"
                )
        for campaign in matches:
            if campaign.id == own_id:
                raise WarmStartError(
                    f"optimizer.warm_start: campaign {campaign.id} is this campaign"
                )
            found[campaign.id] = campaign
    return [found[k] for k in sorted(found)]


def related_observations(
    session: Any, protocol: Protocol, campaign_id: int, optimizer: Optimizer, history: History
) -> list[dict[str, Any]]:
    """Observations (optimiser-state form, ``source`` "prior", ``task`` naming the earlier
    campaign) of the campaigns ``protocol.optimizer.warm_start`` names."""
    settings = protocol.optimizer.warm_start
    if settings is None:
        return []
    out: list[dict[str, Any]] = []
    for campaign in _earlier_campaigns(session, list(settings.campaigns), campaign_id):
        told, _ = history(session, campaign.id, protocol.objectives)
        task = f"campaign {campaign.id} ({campaign.name})"
        for item in told:
            point = item["point"]
            same_variables = set(point) == set(optimizer.space.names)
            if same_variables and optimizer.space.contains(point) and optimizer.feasible(point):
                out.append({**item, "source": "prior", "task": task})
    return out
