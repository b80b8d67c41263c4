"""Unix cron adapter: crontab discovery, ``accord exec``, the host agent, cron's log.

Nothing is imported here: ``accord exec`` (``adapters.cron.wrapper``) runs on every cron
tick and must stay on the standard library. Import ``adapters.cron.adapter`` for the
adapter.
"""

__all__: list[str] = []
