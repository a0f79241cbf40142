"""Django apps of the control plane; imports point one way (see docs/architecture.md)."""
