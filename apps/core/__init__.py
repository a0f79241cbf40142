"""Foundation shared by every app: model mixins, encrypted field, audit log, scoping, generic
views, API base classes, live updates (Channels), health and metrics."""
