"""Running a trained FlowFeat: Predictor (images in, features out), PCA colours, device choice."""
