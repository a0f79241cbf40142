"""GET /version."""

from .. import PVE_VERSION
from ..router import api


@api.get("/version", params={})
def version(ctx, p):
    return dict(PVE_VERSION)
