"""Offline export of CLIP to ONNX for AssetLens (needs torch, transformers, optimum)."""
