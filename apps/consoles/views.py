"""The console pages: a guest's console tab (and its pop-out window), a node's shell (operators).
The pages hold no secret: the browser opens /ws/guests/<id>/console/ and the relay does the rest."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.views import View

from apps.guests.models import Guest
from apps.nodes.models import Node
from apps.permissions import policy


class GuestConsoleView(View):
    def get(self, request, pk):
        guest = policy.visible(request.user, Guest.objects.select_related("cluster", "node")).filter(pk=pk).first()
        if guest is None or guest.template:
            raise Http404("No such guest.")
        policy.check(request, "guest.console", guest, request=request)
        popout = request.GET.get("popout") == "1"
        return render(request, "consoles/guest_console.html", {
            "guest": guest, "object": guest, "popout": popout, "kind": guest.type,
            "socket": f"/ws/guests/{guest.pk}/console/",
            "title": f"Console {guest}", "live_groups": [f"cluster-{guest.cluster_id}", f"guest-{guest.pk}"],
        })


class NodeConsoleView(View):
    def get(self, request, pk):
        node = policy.visible(request.user, Node.objects.select_related("cluster")).filter(pk=pk).first()
        if node is None:
            raise Http404("No such node.")
        policy.check(request, "node.console", node, request=request)
        return render(request, "consoles/node_console.html", {
            "node": node, "object": node, "popout": request.GET.get("popout") == "1", "kind": "node",
            "socket": f"/ws/nodes/{node.pk}/console/", "title": f"Shell {node.name}",
        })
