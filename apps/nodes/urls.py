# UI routes, mounted at the site root by datacenter/urls.py: prefix each path (e.g. "nodes/").
app_name = "nodes"
urlpatterns: list = []
