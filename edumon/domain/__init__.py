"""The pure core: models, IF-MIB parsing, rates, events and checks. No I/O here."""
