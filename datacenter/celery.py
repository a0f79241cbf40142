"""Celery app: broker and settings from Django settings (CELERY_*), tasks from apps/*/tasks.py.

Run: celery -A datacenter beat -l info, and workers for the two queues (settings CELERY_TASK_ROUTES):
    celery -A datacenter worker -l info -Q celery                           operations
    celery -A datacenter worker -l info -Q sync --pool threads -c 8         syncs and refreshes
A worker without -Q consumes both (settings CELERY_TASK_QUEUES), as the test worker does.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datacenter.settings")

app = Celery("datacenter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
