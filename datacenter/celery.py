"""Celery app: broker and settings from Django settings (CELERY_*), tasks from apps/*/tasks.py.

Run: celery -A datacenter worker -l info   and   celery -A datacenter beat -l info
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datacenter.settings")

app = Celery("datacenter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
