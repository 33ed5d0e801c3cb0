"""Serving a personalized model: one service object behind ``repic serve`` (HTTP) and ``repic app`` (gradio).

``service`` holds the model (loaded once), the concept store and the batching queue; ``store`` is the
concept database with locked edits; ``batcher`` the queue that feeds ``repic.inference.generate_batched``;
``uploads`` checks images that arrive over the network; ``chat`` reads and writes OpenAI's chat format;
``api`` is the FastAPI app; ``defaults`` says what opens when nothing is named. FastAPI, gradio and their
servers are optional extras (``repic[serve]``, ``repic[app]``), imported only by ``api`` and ``repic.app``.
"""

from __future__ import annotations

from .batcher import BatchQueue
from .service import CaptionService, ServiceSettings
from .store import ConceptStore
from .uploads import ImageLimits, ServiceError

__all__ = ["BatchQueue", "CaptionService", "ConceptStore", "ImageLimits", "ServiceError", "ServiceSettings"]
