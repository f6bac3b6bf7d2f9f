"""The retrieval model lives in :mod:`soundseek.models`; this module keeps the historical
import path ``from soundseek.model import RetrievalModel``."""
from soundseek.models.retrieval import RetrievalModel  # noqa: F401
