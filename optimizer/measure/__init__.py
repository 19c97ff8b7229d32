"""Measuring variants: task metrics and parity (evaluate), timing (benchmark), and the run over all variants."""
