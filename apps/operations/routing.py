from django.urls import path

from .consumers import OperationConsumer

websocket_urlpatterns = [
    path("ws/operations/<uuid:pk>/", OperationConsumer.as_asgi()),
]
