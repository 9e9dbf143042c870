"""Database access: the engine, the unit of work, the declarative base and migrations."""
