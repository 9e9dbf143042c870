"""OAuth2 identity providers (Discord by default) for panel logins."""
