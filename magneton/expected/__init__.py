"""Expected energy with no peer: features, calibration, regression, counterfactual replays, anomalies."""
