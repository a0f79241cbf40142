"""/metrics: operations per status, read from the database at scrape time."""

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from .choices import OperationStatus


class OperationCollector:
    def describe(self):
        return []  # no database access when registering

    def collect(self):
        from .models import Operation

        gauge = GaugeMetricFamily("datacenter_operations", "Operations by status.", labels=["status"])
        counts = dict(Operation.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
        for status in OperationStatus.values:
            gauge.add_metric([status], counts.get(status, 0))
        yield gauge
