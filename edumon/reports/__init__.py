"""Reports computed from state, store and schedule: what the exporters serve as JSON or CSV."""
