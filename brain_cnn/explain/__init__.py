"""Where the network looked: one module per family of heat-map methods on a small base, overlays, the queue."""
