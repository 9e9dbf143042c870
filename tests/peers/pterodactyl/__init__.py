"""A fake Pterodactyl panel (application API, v1.11) served for real on a loopback port."""
