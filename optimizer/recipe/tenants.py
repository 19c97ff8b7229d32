"""``serving.tenants`` checked at plan time (``check``: exit 2 naming the key) and the QoS tiers tenants may name
(``tiers``); the manifests are ``triton.tenants``, the chargeback ``record.chargeback``."""

import re
from typing import List, Tuple

from optimizer.errors import RecipeError

DEFAULT_TIERS = ("premium", "standard", "batch")  # the tiers tenants may name when serving.tiers is empty
RESERVED = ("default", "kube-system", "kube-public", "kube-node-lease")  # namespaces a tenant's may not be
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def tiers(serving) -> List[Tuple[str, bool]]:
    """(name, has an SLA) of every tier in priority order (level 1 first): ``serving.tiers``, else premium, standard
    (both held to the SLA) and batch (none)."""
    if serving.tiers:
        return [(t.name, t.p99_ms is not None) for t in serving.tiers]
    return [(n, n != "batch") for n in DEFAULT_TIERS]


def check(serving) -> None:
    """``serving.tenants``: valid unique DNS-label names, known tiers, shares in (0, 1] summing to 1, quotas ≥ 0."""
    names = [n for n, _ in tiers(serving)]
    seen = set()
    for i, t in enumerate(serving.tenants):
        key = f"serving.tenants[{i}]"
        if not isinstance(t.name, str) or not DNS_LABEL.match(t.name):
            raise RecipeError(f"{key}.name {t.name!r} is not a DNS label (lowercase letters, digits and '-', "
                              f"starting and ending alphanumeric, at most 63 characters)")
        if t.name in RESERVED or t.name.startswith("kube-"):
            raise RecipeError(f"{key}.name {t.name!r} is a namespace Kubernetes keeps for itself; choose another")
        if t.name in seen:
            raise RecipeError(f"{key}.name {t.name!r}: duplicate tenant name")
        seen.add(t.name)
        if t.tier not in names:
            where = "serving.tiers" if serving.tiers else "the default tiers (serving.tiers is empty)"
            raise RecipeError(f"{key}.tier {t.tier!r} is not one of {where}: {', '.join(names)}")
        if not 0 < t.share <= 1:
            raise RecipeError(f"{key}.share must be in (0, 1], got {t.share}")
        for field in ("cpu", "memory_mb", "pods"):
            value = getattr(t.quota, field) if t.quota is not None else None
            if value is not None and value < 0:
                raise RecipeError(f"{key}.quota.{field} must be ≥ 0 (null: from the share), got {value}")
    total = sum(t.share for t in serving.tenants)
    if serving.tenants and abs(total - 1) > 1e-6:
        raise RecipeError(f"serving.tenants: the shares must sum to 1 (within 1e-6), got {total:.6g} "
                          f"({', '.join(f'{t.name} {t.share:g}' for t in serving.tenants)})")
