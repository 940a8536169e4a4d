"""Version 1 of the API, under one path prefix."""

PREFIX = "/api/v1"
