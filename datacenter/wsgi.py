"""WSGI entry point (HTTP only; the product runs on ASGI, see asgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datacenter.settings")

application = get_wsgi_application()
