"""Use cases: what the CLI, the API, the worker and the demo all call.

Submitting a training job, starting a generation, asking for an index build, running an import:
each is one function here, so that the four entry points cannot drift apart (the CLI and the API
each used to build recipes, create jobs and enqueue on their own). Why a package inside
``foundry`` rather than a top-level ``app/``: a use case is business flow -- which rules run, in
which transaction, what happens after the commit -- and belongs with the domains it composes;
the edges (``api``, ``worker``, ``foundry.cli``) stay transport.

Use cases import domains and ``recipes`` (plain dataclasses), never ``training``, torch, diffusers,
Celery or FastAPI. What they need from an edge is handed in: a ``TaskQueue`` to enqueue on,
``Pipelines`` to render with.
"""
