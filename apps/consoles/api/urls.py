# Consoles have no REST endpoints: a console is a websocket (/ws/guests/<id>/console/).
urlpatterns: list = []
