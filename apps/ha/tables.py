import django_tables2 as tables

from .models import HaEvent


class HaEventTable(tables.Table):
    at = tables.DateTimeColumn(format="Y-m-d H:i:s", verbose_name="When")
    kind = tables.TemplateColumn('<span class="badge ha-{{ record.level }}">{{ record.get_kind_display }}</span>',
                                 verbose_name="What")
    cluster = tables.Column(accessor="cluster__name", verbose_name="Cluster")
    sid = tables.TemplateColumn('{% if record.guest %}<a href="{{ record.guest.get_absolute_url }}">{{ record.sid }}</a>'
                                '{% else %}{{ record.sid|default:"—" }}{% endif %}', verbose_name="Guest")
    node = tables.Column(verbose_name="Node", default="—")
    message = tables.TemplateColumn('{{ record.message }}{% if record.why %}<div class="muted">why: {{ record.why }}</div>{% endif %}',
                                    orderable=False, verbose_name="Event")

    class Meta:
        model = HaEvent
        fields = ["at", "kind", "cluster", "sid", "node", "message"]
        order_by = "-at"
        empty_text = "No HA events yet: the sync records them as it sees them happen."
