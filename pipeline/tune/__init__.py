"""Ray Tune hyperparameter search built on the same per-worker loop as training (DESIGN.md section 3,
step 5): ``search`` runs a tuning job, ``trials`` holds what each trial runs, ``results`` turns the
trials into ``best.json``/``trials.csv`` and MLflow statuses, ``apply`` writes the best config into
``params.yaml``. Only ``search``, ``trials`` and ``session`` import Ray.
"""
