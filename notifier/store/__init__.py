"""Persistence: the only package that imports SQLAlchemy.

The database is the queue. ``outbox`` owns every status transition of a
message; the other modules own their own tables.
"""
