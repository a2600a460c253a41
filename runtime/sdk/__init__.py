"""What users write with: both authoring styles side by side.

``composition`` (``create_workflow``, Medusa style, with its recorded ``graph`` and
``refs``) and ``durable`` (``@workflow``, Sonamu style) share ``steps``
(``create_step``, ``StepContext``); ``definitions`` names the union of the two
definition classes, ``running`` runs either through a container, and ``specs``
holds subscriber and job configs.
"""
