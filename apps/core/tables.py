import django_tables2 as tables

from .models import AuditEntry


class AuditEntryTable(tables.Table):
    created = tables.DateTimeColumn(format="Y-m-d H:i:s", linkify=("core:auditentry", {"pk": tables.A("pk")}))
    result = tables.TemplateColumn(
        '<span class="badge badge-{{ record.result }}">{{ record.get_result_display }}</span>'
    )

    class Meta:
        model = AuditEntry
        fields = ["created", "username", "action", "target_repr", "result", "remote_addr"]
        order_by = "-created"
        empty_text = "No audit entries match."
