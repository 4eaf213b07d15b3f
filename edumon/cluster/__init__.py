"""Several collectors sharing one broker and one database: schools in shards, shards on leases.

See docs/city-deployment.md. ``shards`` is pure (which school is in which shard, how many
shards a collector should hold, what to take and what to give back); ``leases`` keeps the
lease and member rows in the database; ``member`` runs the lease loop and tells the app which
shards this collector holds; ``ingests`` runs one MQTT ingest per held shard.
"""
