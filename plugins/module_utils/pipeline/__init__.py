# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Pipeline generator: one validated pipeline spec in, every object of its CI -> CT -> CD chain out.

Modules by stage: spec (schema validation and defaults), ci, ct, cd (WorkflowTemplates and
the Argo CD Application), events (EventSources and Sensors chaining the stages), rbac
(one ServiceAccount and Role per stage)."""
