# UI routes, mounted at the site root by datacenter/urls.py: prefix each path (e.g. "guests/").
app_name = "guests"
urlpatterns: list = []
