"""Serving a trained run over HTTP (``vidseq serve RUN``; needs ``pip install 'vidseq[serve]'``): `create_app` builds
the FastAPI application, `Batcher` gathers concurrent requests' clips into one forward, `page.html` is the page at
``/`` (no external assets)."""

from vidseq.serve.app import INSTALL, create_app, need_fastapi
from vidseq.serve.batcher import Batcher, QueueFull
from vidseq.serve.client import post_video

__all__ = ["INSTALL", "Batcher", "QueueFull", "create_app", "need_fastapi", "post_video"]
