"""The bridge server: `BridgeServer` (ROUTER requests, PUB events, job queue, worker processes) and its settings."""

from .app import BridgeServer, JobError, ServerError
from .config import PathNotAllowed, ServerConfig

__all__ = ["BridgeServer", "JobError", "PathNotAllowed", "ServerConfig", "ServerError"]
