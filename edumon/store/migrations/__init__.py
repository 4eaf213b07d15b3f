"""Alembic migrations for the edumon database, run by ``open_store`` at start-up."""
