"""A fake Discord (REST v10 and the gateway) served for real on a loopback port."""
