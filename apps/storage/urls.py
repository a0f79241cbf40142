# UI routes, mounted at the site root by datacenter/urls.py: prefix each path (e.g. "storage/").
app_name = "storage"
urlpatterns: list = []
