"""Pterodactyl: the game-server panel behind Heliactyl, over its application API."""
