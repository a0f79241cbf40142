"""Filters every FilterSet uses, and the audit log's FilterSet.

DateTimeFilter: ISO 8601 or the browser's datetime-local value; an offset outside real time
zones or a date that leaves the calendar in UTC is a 400 naming the field, never a database 500.
IdFilter: a whole number within PostgreSQL's bigint. YesNoFilter: "Any / Yes / No".
"""

import datetime

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q

from .models import AuditEntry, AuditResult

# Real time zones span UTC-12:00 (Baker Island) to UTC+14:00 (Kiribati).
MIN_UTC_OFFSET = datetime.timedelta(hours=-12)
MAX_UTC_OFFSET = datetime.timedelta(hours=14)
BIGINT_MAX = 2**63 - 1


class BoundedDateTimeField(forms.DateTimeField):
    """A datetime whose offset is a real one, returned in UTC (the database's range is then safe)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))
        kwargs.setdefault("help_text", "ISO 8601, e.g. 2026-01-31T08:00:00+01:00 (UTC when no offset)")
        super().__init__(**kwargs)

    def to_python(self, value):
        result = super().to_python(value)
        if result is None:
            return None
        offset = result.utcoffset()
        if offset is not None and not MIN_UTC_OFFSET <= offset <= MAX_UTC_OFFSET:
            raise ValidationError(
                "UTC offset %(offset)s is out of range: real time zones go from -12:00 to +14:00.",
                code="offset_out_of_range", params={"offset": result.strftime("%z")},
            )
        try:
            return result.astimezone(datetime.UTC)
        except OverflowError:
            raise ValidationError("Date out of range: it must fall between 0001-01-01 and 9999-12-31 in UTC.",
                                  code="out_of_range") from None


class DateTimeFilter(django_filters.Filter):
    """The one date/time filter of every FilterSet (`created_after`, `created_before`...)."""

    field_class = BoundedDateTimeField


class IdFilter(django_filters.NumberFilter):
    """An id or a number compared with an integer column: a whole number PostgreSQL can hold."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(*args, **kwargs)

    def get_max_validator(self):
        return None  # the field's max_value already bounds it


# "Any" rather than django-filter's "Unknown" for an unset yes/no filter.
class YesNoFilter(django_filters.BooleanFilter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.Select(choices=[("", "Any"), ("true", "Yes"), ("false", "No")]))
        super().__init__(*args, **kwargs)


class AuditEntryFilterSet(django_filters.FilterSet):
    """The audit log's filters, shared by the page, the API and both CSV exports."""

    q = django_filters.CharFilter(method="search", label="Search")
    username = django_filters.CharFilter(method="by_user", label="User",
                                         help_text="A username: what they did, and failed logins as them.")
    token = django_filters.CharFilter(lookup_expr="icontains", label="Token")
    tenant = IdFilter(field_name="tenant_id", label="Tenant id")
    action = django_filters.CharFilter(lookup_expr="istartswith", label="Action starts with")
    target_type = django_filters.CharFilter(label="Object type")
    target_id = django_filters.CharFilter(label="Object id")
    target = django_filters.CharFilter(field_name="target_repr", lookup_expr="icontains", label="Object")
    result = django_filters.ChoiceFilter(choices=AuditResult.choices, label="Result", empty_label="Any")
    created_after = DateTimeFilter(field_name="created", lookup_expr="gte", label="From")
    created_before = DateTimeFilter(field_name="created", lookup_expr="lt", label="Until")

    class Meta:
        model = AuditEntry
        fields = ["q", "username", "token", "tenant", "action", "target_type", "target_id", "target", "result"]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(username__icontains=value) | Q(action__icontains=value) | Q(target_repr__icontains=value)
        )

    def by_user(self, queryset, name, value):
        # A failed login has no user: the name typed is in its detail.
        return queryset.filter(Q(username=value) | Q(user__isnull=True, detail__login_as=value))
