"""gan-lab: a reproducible, distributed lab for generative adversarial networks.

Layering (data never flows backwards):
``stages -> pipeline.{train, evaluator, evaluate, sampling} -> pipeline.{families, metrics, tracking}
-> pipeline.{models, losses, augment, data, config}``.
"""

__version__ = "0.1.0"
