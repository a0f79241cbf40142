"""For action APIs whose service may answer an ApprovalRequest instead of an Operation. Imports
nothing of DRF at load time: the action API modules that use it load while DRF is still importing."""


class ApprovalAwareMixin:
    """The request waits for an operator: 202 with {"approval_request": ...} instead of the operation."""

    def accepted(self, result):
        from rest_framework import status
        from rest_framework.response import Response

        from ..models import ApprovalRequest
        from .serializers import ApprovalRequestSerializer

        if isinstance(result, ApprovalRequest):
            data = ApprovalRequestSerializer(result, context={"request": self.request}).data
            return Response({"approval_request": data}, status=status.HTTP_202_ACCEPTED)
        return super().accepted(result)
