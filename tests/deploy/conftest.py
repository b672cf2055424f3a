"""What the deployment tests share: the chart's files, and the environment
variable names Dockyard reads."""

from __future__ import annotations

import re
from pathlib import Path

from dockyard.config import Settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "dockyard"

# Settings other helpers are adding in parallel (storage, Redis): the names
# are fixed by issue 5. Remove each once config.py has it.
PENDING_SETTINGS = {
    "DOCKYARD_REDIS_URL",
    "DOCKYARD_STORAGE_URL",
    "DOCKYARD_S3_ENDPOINT_URL",
    "DOCKYARD_S3_REGION",
}


def known_variable(name: str) -> bool:
    """Whether Dockyard reads the `DOCKYARD_*` variable `name`."""
    top, _, nested = name.removeprefix("DOCKYARD_").lower().partition("__")
    field = Settings.model_fields.get(top)
    if field is None:
        return name in PENDING_SETTINGS
    if not nested:
        return True
    model = field.annotation
    return nested in getattr(model, "model_fields", {})


def dockyard_variables(text: str) -> set[str]:
    return set(re.findall(r"\bDOCKYARD_[A-Z0-9_]+\b", text))
