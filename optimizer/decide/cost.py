"""Hardware price table -> $ per million inferences, and replicas needed for a target QPS."""

import math
from typing import Dict, Optional

from optimizer.errors import RecipeError


def cost_per_million(price_per_hour: float, throughput: float) -> float:
    """Dollars per 1M inferences for a machine at ``price_per_hour`` serving ``throughput`` samples/s."""
    if throughput <= 0:
        raise ValueError(f"throughput must be positive, got {throughput}")
    return price_per_hour / (throughput * 3600.0) * 1e6


def replicas(target_qps: float, throughput: float, utilization: float = 0.7) -> int:
    """Replicas needed to serve ``target_qps`` with each one kept at ``utilization`` of its capacity."""
    if throughput <= 0 or not 0 < utilization <= 1:
        raise ValueError(f"need throughput > 0 and 0 < utilization <= 1, got {throughput}, {utilization}")
    return max(1, math.ceil(target_qps / (throughput * utilization)))


def scaling(target_qps: float, throughput: float, utilization: float = 0.7, burst_factor: float = 2.0) -> Dict:
    """Replica recommendation for an autoscaler: min serves ``target_qps``, max a burst of it, at ``utilization``."""
    low = replicas(target_qps, throughput, utilization)
    high = max(low, replicas(target_qps * burst_factor, throughput, utilization))
    return {"target_qps": target_qps, "utilization": utilization, "replicas": low,
            "min_replicas": low, "max_replicas": high,
            "capacity_qps": round(low * throughput * utilization, 1)}


def price(price_per_hour: Optional[float], throughput: float, serving=None) -> Dict[str, float]:
    """Cost figures of one variant: $/1M (needs a price) and replicas for ``serving.target_qps``."""
    out: Dict = {}
    if throughput is None or throughput <= 0:
        return out
    if price_per_hour is not None:
        out["cost_per_million"] = cost_per_million(price_per_hour, throughput)
    if serving is not None and serving.target_qps:
        out.update(scaling(serving.target_qps, throughput, serving.utilization, serving.burst_factor))
        if price_per_hour is not None:
            out["cost_per_hour_at_target"] = out["min_replicas"] * price_per_hour
    return out


def check(cfg) -> None:
    """Recipe settings cost depends on, checked before anything runs."""
    s, c, hw = cfg.serving, cfg.constraints, cfg.hardware
    if s.target_qps is not None and s.target_qps <= 0:
        raise RecipeError(f"serving.target_qps must be positive (requests/s at peak), got {s.target_qps}")
    if not 0 < s.utilization <= 1:
        raise RecipeError(f"serving.utilization must be in (0, 1], got {s.utilization}")
    if s.burst_factor < 1:
        raise RecipeError(f"serving.burst_factor must be at least 1, got {s.burst_factor}")
    needs_price = [why for why, yes in [("objective=cost", cfg.objective.value == "cost"),
                                        ("constraints.max_cost_per_million", c.max_cost_per_million is not None)]
                   if yes]
    if needs_price and hw.price_per_hour is None:
        raise RecipeError(f"hardware {hw.name!r} has no price_per_hour, but {' and '.join(needs_price)} needs one; "
                          f"pick a priced hardware entry (e.g. hardware=aws_c7i_large) or set hardware.price_per_hour")
    if hw.price_per_hour is not None and hw.price_per_hour <= 0:
        raise RecipeError(f"hardware.price_per_hour must be positive, got {hw.price_per_hour}")
