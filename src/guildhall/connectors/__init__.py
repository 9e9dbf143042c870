"""The only code that talks to outside platforms or the operating system."""
