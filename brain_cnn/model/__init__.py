"""The network and the model folder: layers, the card, ensembles as one graph, the out-of-distribution gate, inference engines, export."""
