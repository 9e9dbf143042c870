"""A Discord community: member profiles, classes, quests, bot settings and its directory."""
