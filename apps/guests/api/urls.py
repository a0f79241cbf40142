# API routes, mounted at /api/v1/ by datacenter/urls.py: prefix each path (e.g. "guests/").
app_name = "guests-api"
urlpatterns: list = []
