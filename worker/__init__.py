"""The queue edge: the Celery app factory, the tasks, and the runners they hand ids to.

``app`` builds the Celery application (nothing happens at import); ``queue`` is the client half
the API and the CLI use to enqueue; ``tasks`` are thin wrappers that take ids; ``jobs`` runs a
training job (database on one side, ``training``'s engine on the other); ``attribution`` builds
and audits influence indexes; ``runtime`` is what one worker process keeps between tasks.
"""
