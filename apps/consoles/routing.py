from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/guests/<int:pk>/console/", consumers.ConsoleConsumer.as_asgi()),
    path("ws/nodes/<int:pk>/console/", consumers.NodeConsoleConsumer.as_asgi()),
]
