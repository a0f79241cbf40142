"""ASGI entry point: Django for HTTP, Channels for websockets (datacenter/routing.py).

Run: uvicorn datacenter.asgi:application   (or daphne datacenter.asgi:application)
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datacenter.settings")

# Django must be set up before anything imports models (consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from apps.core.websocket import websocket_application  # noqa: E402
from datacenter.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_application(websocket_urlpatterns),
    }
)
