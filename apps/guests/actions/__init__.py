"""Guest actions, one module per concern (create, config, snapshots, backups, migrate, clone): each a
thin vertical slice with its services, Celery tasks, forms, views, `urlpatterns` and `api_urlpatterns`."""
