"""The Amaro Than platform's composition root: the ``amaro`` command and its roles, the settings
tree read once from the environment, the wiring of the parts (``parts.py``), process supervision
and the embedded services of ``amaro dev``. It holds no product logic: that lives in the parts
(``protocol``, ``realtime``, ``feed``, ``media``, ``nara``), which never import this package except
its low-level helpers (``amaro.infra``)."""
