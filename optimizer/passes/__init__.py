"""One module per pass; each registers itself with ``optimizer.registry.register``."""
