"""Support: modmail tickets and the bot runtime that opens their channels."""
