"""How good a model is: metrics, evaluation.json, screening on other sources, leave-one-source-out, heat maps against tumour boxes."""
