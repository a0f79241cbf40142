"""Signals for the apps above operations (guests, gpus...) to react to their own operations
without operations importing them. Sent after the final state is saved."""

from django.dispatch import Signal

# kwargs: operation (Operation, final status already saved)
operation_finished = Signal()
