"""Publishing: the model cards, where a model came from, the push to the Hub."""
