# UI routes, mounted at the site root by datacenter/urls.py.
from django.urls import path

from . import views

app_name = "approvals"

urlpatterns = [
    path("approvals/", views.ApprovalListView.as_view(), name="approval_list"),
    path("approvals/<uuid:pk>/", views.ApprovalDetailView.as_view(), name="approval"),
    path("approvals/<uuid:pk>/approve/", views.ApprovalApproveView.as_view(), name="approval_approve"),
    path("approvals/<uuid:pk>/decline/", views.ApprovalDeclineView.as_view(), name="approval_decline"),
    path("approvals/<uuid:pk>/withdraw/", views.ApprovalWithdrawView.as_view(), name="approval_withdraw"),
]
