# API routes, mounted at /api/v1/ by datacenter/urls.py: prefix each path (e.g. "nodes/").
app_name = "nodes-api"
urlpatterns: list = []
