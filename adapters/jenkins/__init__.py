"""Jenkins adapter: jobs, builds, the queue, stages and lineage through Jenkins' JSON API."""

from .adapter import JenkinsAdapter
from .config import JenkinsConfig

__all__ = ["JenkinsAdapter", "JenkinsConfig"]
