"""Items, their images, and what members hold."""
