from django.db import models


class ApprovalStatus(models.TextChoices):
    WAITING = "waiting", "Waiting for an operator"
    APPROVED = "approved", "Approved"  # its operation was queued
    DECLINED = "declined", "Declined"
    WITHDRAWN = "withdrawn", "Withdrawn"


OPEN_STATUSES = (ApprovalStatus.WAITING,)
