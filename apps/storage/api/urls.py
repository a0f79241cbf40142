# API routes, mounted at /api/v1/ by datacenter/urls.py: prefix each path (e.g. "storage/").
app_name = "storage-api"
urlpatterns: list = []
