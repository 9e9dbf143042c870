"""The Heliactyl API v3 face (``shared/seeds/000``), on 127.0.0.1:8081 by default."""
