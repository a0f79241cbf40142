"""The guest partials as tags: markup written once in apps.guests.html for the templates, the list
rows and the live fragments."""

from django import template

from .. import html

register = template.Library()


@register.simple_tag
def guest_status(guest, oob=False, gone=False):
    return html.status_html(guest, oob=bool(oob), gone=bool(gone))


@register.simple_tag
def guest_node(guest, oob=False):
    return html.node_html(guest, oob=bool(oob))
