"""Training: data, model, training, evaluation and export of the defect classifier."""
