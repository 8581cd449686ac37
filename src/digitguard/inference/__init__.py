"""Turning an input into an answer: MNIST-faithful preprocessing, prediction, abstention, explanation."""
