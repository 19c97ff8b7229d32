"""Hardware price table -> $ per million inferences, and replicas needed for a target QPS."""

import math
from typing import Dict, Optional


def cost_per_million(price_per_hour: float, throughput: float) -> float:
    """Dollars per 1M inferences for a machine at ``price_per_hour`` serving ``throughput`` samples/s."""
    return price_per_hour / (throughput * 3600.0) * 1e6


def replicas(target_qps: float, throughput: float, utilization: float = 0.7) -> int:
    """Replicas needed to serve ``target_qps`` with each one kept at ``utilization`` of its capacity."""
    return max(1, math.ceil(target_qps / (throughput * utilization)))


def price(price_per_hour: Optional[float], throughput: float) -> Dict[str, float]:
    """Cost figures of one variant; empty when the hardware has no price."""
    if price_per_hour is None or throughput <= 0:
        return {}
    return {"cost_per_million": cost_per_million(price_per_hour, throughput)}
