"""Analyses of a trained 3D-GAN's learned representations (the paper's Experiment 4); see ``gan3d explore``."""
