"""Guest actions, one package per concern (create, config, snapshots, clone, backups, backup_jobs,
migrate) laid out by role: validation / services / worker (what the Celery task runs) / views
(`urlpatterns`) / api (`api_urlpatterns`), each package's __init__ re-exporting its public names;
`common` holds the helpers they share."""
