"""pvesim: a Proxmox VE 9.1 API simulator.

A standalone HTTPS server that speaks /api2/json like a real Proxmox VE cluster: the
demo cluster and the test double of the control plane. It knows nothing of Django.
"""

__version__ = "0.1.0"
PVE_VERSION = {"version": "9.1.8", "release": "9.1", "repoid": "7e1c3c0e5a0d4b7f"}
