"""HTTP service and web page over an index (needs ``pip install soundseek[serve]``)."""
from __future__ import annotations

from ..extras import require

for _m in ("fastapi", "uvicorn", "python_multipart"):
    require(_m)
