"""Websocket URLs: core's /ws/live/ plus each app's `routing.websocket_urlpatterns`.

An app adds websockets by writing apps/<app>/routing.py with `websocket_urlpatterns = [...]`
(paths start with "ws/"); nothing here needs to change.
"""

import importlib
import importlib.util

from django.apps import apps

websocket_urlpatterns: list = []
for _config in apps.get_app_configs():
    _module = f"{_config.name}.routing"
    if _config.name.startswith("apps.") and importlib.util.find_spec(_module) is not None:
        websocket_urlpatterns += importlib.import_module(_module).websocket_urlpatterns
