"""nn.Modules only (they import nothing but torch): one file per family plus the evaluator."""
