"""List actions answered from `.values()` rows: the serializer's JSON, without a model instance and a
DRF field walk per cell.

A page of 100 guests through a ModelSerializer built 300 model instances (guest, cluster, node:
~80 columns, 11 datetimes parsed per row) and made ~2,000 field calls (get_attribute with its
try/except per field, a `reverse()` and `build_absolute_uri()` for each row's `url`), for 21 plain
values a row (issue 11). A viewset with `ValuesListMixin` reads, for each field of its serializer,
one column with `.values()` and gives it to that same field's `to_representation`: the serializer
stays the one description of the output (OpenAPI schema, retrieve, and this list), and a test per
viewset compares the two answers.

What a column cannot give (a model property, a SerializerMethodField) the viewset computes in
`list_extra` from columns it names in `list_extra_columns`; any other field it cannot read is
refused (ValueError) rather than answered differently.
"""

from __future__ import annotations

from typing import Callable

from django.core.exceptions import FieldDoesNotExist
from django.urls import NoReverseMatch
from rest_framework import relations, serializers
from rest_framework.response import Response
from rest_framework.reverse import reverse

_PK_MARK = 987654321987654321


def detail_url_builder(view_name: str, request, format=None) -> Callable[[object], str]:
    """pk -> the absolute URL HyperlinkedIdentityField gives (scheme, host, script prefix, versioning,
    ?format= kept), from one reverse() for the whole page instead of one per row."""
    try:
        template = reverse(view_name, kwargs={"pk": _PK_MARK}, request=request, format=format)
    except NoReverseMatch:  # a lookup that takes no number
        template = ""
    head, mark, tail = template.partition(str(_PK_MARK))
    if not mark or str(_PK_MARK) in tail:  # not where a pk goes: the ordinary path
        return lambda pk: reverse(view_name, kwargs={"pk": pk}, request=request, format=format)
    return lambda pk: f"{head}{pk}{tail}"


def _identity(value):
    return value


class ValuesPlan:
    """For a serializer class: the `.values()` columns its list needs, and per output field (name,
    column, to_representation). A plain or dotted-source field reads its column through its own
    to_representation, a related field its key (or slug) column, a hyperlinked identity the pk (its
    URL is made per request: `urls`). Fields named in `computed` are the caller's."""

    def __init__(self, serializer_class, computed=()):
        serializer = serializer_class()
        model = serializer.Meta.model
        self.names = list(serializer.fields)
        self.columns, self.steps, self.urls = {"pk"}, [], {}
        # DRF's own fields read no request or context: one plan serves every request.
        self.shareable = True
        for name, field in serializer.fields.items():
            if name in computed:
                continue
            if isinstance(field, relations.HyperlinkedIdentityField) and field.lookup_field == "pk":
                self.urls[name] = field.view_name
                self.steps.append((name, "pk", None))
                continue
            if isinstance(field, (serializers.SerializerMethodField, serializers.BaseSerializer, serializers.ModelField,
                                  relations.ManyRelatedField, relations.HyperlinkedRelatedField)) \
                    or field.source == "*":
                raise ValueError(f"{serializer_class.__name__}.{name}: not readable from a column; compute it")
            path = field.source_attrs
            try:
                model._meta.get_field(path[0])
            except FieldDoesNotExist:
                raise ValueError(f"{serializer_class.__name__}.{name}: {field.source} is no model field; "
                                 "compute it") from None
            if isinstance(field, relations.SlugRelatedField):
                column, represent = "__".join([*path, field.slug_field]), _identity
            elif isinstance(field, relations.PrimaryKeyRelatedField) and field.pk_field is None:
                column, represent = "__".join(path), _identity  # .values("fk") is the key itself
            elif isinstance(field, relations.RelatedField):
                raise ValueError(f"{serializer_class.__name__}.{name}: {type(field).__name__} is not supported")
            else:
                column, represent = "__".join(path), field.to_representation
                self.shareable &= type(field).__module__ == "rest_framework.fields"
            self.columns.add(column)
            self.steps.append((name, column, represent))

    def bind(self, request, format=None) -> list[tuple]:
        """The steps with this request's URL builders."""
        urls = {name: detail_url_builder(view_name, request, format) for name, view_name in self.urls.items()}
        return [(name, column, urls[name] if name in urls else represent) for name, column, represent in self.steps]


_plans: dict = {}


def values_plan(serializer_class, computed=()) -> ValuesPlan:
    key = (serializer_class, tuple(sorted(computed)))
    plan = _plans.get(key)
    if plan is None:
        plan = ValuesPlan(serializer_class, computed)
        if plan.shareable:
            _plans[key] = plan
    return plan


class ValuesListMixin:
    """`list` from `.values()` of the filtered, ordered queryset, paginated as before: each row is
    what `get_serializer(many=True)` would answer (see the module docstring).

    list_extra_columns: more columns the computed fields need; list_extra() -> {name: function of a
    row}, called once per page (e.g. to read the clock once)."""

    list_extra_columns: tuple[str, ...] = ()

    def list_extra(self) -> dict[str, Callable[[dict], object]]:
        return {}

    def list(self, request, *args, **kwargs):
        extra = self.list_extra()
        plan = values_plan(self.get_serializer_class(), computed=extra)
        steps = plan.bind(request, self.format_kwarg)
        queryset = self.filter_queryset(self.get_queryset()).values(*sorted(plan.columns | {*self.list_extra_columns}))
        page = self.paginate_queryset(queryset)
        data = []
        for row in page if page is not None else queryset:
            item = {name: (None if (value := row[column]) is None else represent(value))
                    for name, column, represent in steps}
            for name, compute in extra.items():
                item[name] = compute(row)
            data.append({name: item[name] for name in plan.names})  # the serializer's order
        return self.get_paginated_response(data) if page is not None else Response(data)
